"""The lab hosts are real systemd machines that see each other and the package registries."""

import pytest

HOSTS = ("broker", "app1", "app2")


def test_systemd_is_pid_1_and_booted(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running")
    assert state.stdout.strip() in ("running", "degraded"), state.stdout


def test_no_failed_units(host):
    failed = host.run("systemctl list-units --failed --no-legend --plain")
    assert failed.stdout.strip() == "", failed.stdout


@pytest.mark.parametrize("peer", HOSTS)
def test_hosts_resolve_each_other(host, peer):
    resolved = host.run(f"getent hosts {peer}")
    assert resolved.rc == 0, resolved.stderr
    address = resolved.stdout.split()[0]
    ping = host.run(f"timeout 5 bash -c 'echo > /dev/tcp/{address}/22' ; echo $?")
    # Nothing listens on 22: a refusal (not a timeout, exit 124) proves the address is reachable.
    assert ping.stdout.strip().splitlines()[-1] != "124"


def test_apt_package_installed(host):
    assert host.package("python3-venv").is_installed


def test_pip_package_importable(host):
    out = host.check_output("/opt/harness-venv/bin/python -c 'import six; print(six.__version__)'")
    assert out == "1.16.0"


def test_hostname_matches_inventory(host):
    assert host.check_output("hostname") == host.backend.get_hostname()
