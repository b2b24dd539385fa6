"""The production example inventory (inventories/production) passes every check of every role it deploys.

A copy of the example gets what an operator adds: the vaulted secrets (here as extra variables, strong random
values) and the TLS files its group_vars/all/tls.yml names (tls/ca.crt, tls/<host>.crt, tls/<host>.key). Then
site.yml runs in check mode against the local machine standing in for every host, with only the argument
validation and the preflight tags of the rabbitmq, supervisor, workers, Flower and node exporter roles: each host's
checks must pass, and nothing changes. A broker contract the example gets wrong (two users of one name, Flower on
another user than the broker's, TLS on one side only) fails here.
"""

import json
import os
import pathlib
import re
import secrets
import shutil
import string
import subprocess
import sys

from tls_files import tls_variables

PROJECT = pathlib.Path(__file__).resolve().parents[2]
SITE = PROJECT / "playbooks" / "site.yml"
EXAMPLE = PROJECT / "inventories" / "production"
TAGS = "rabbitmq_preflight,supervisor_preflight,workers_preflight,flower_preflight,node_exporter_preflight"
VAULTED = [
    "vault_rabbitmq_app_password",
    "vault_rabbitmq_flower_password",
    "vault_rabbitmq_monitoring_password",
    "vault_rabbitmq_admin_password",
    "vault_flower_basic_auth_password",
]


def _secret(length=40):
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _index in range(length))


def _hosts(inventory):
    out = subprocess.run(
        ["ansible-inventory", "-i", str(inventory), "--list"],
        cwd=PROJECT,
        env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sorted(json.loads(out)["_meta"]["hostvars"])


def _run(tmp_path, overrides=None):
    """site.yml's checks on a completed copy of the example; (result, output, the vaulted secrets, the hosts)."""
    inventory_dir = tmp_path / "production"
    shutil.copytree(EXAMPLE, inventory_dir, ignore=shutil.ignore_patterns("credentials", "tls"))
    hosts = _hosts(inventory_dir / "hosts.yml")
    assert len(hosts) >= 3, hosts
    # The operator's PKI: one CA, a certificate and key per host (the test's CA signs a single one for all).
    files = tls_variables(tmp_path / "pki")
    (inventory_dir / "tls").mkdir(mode=0o700)
    shutil.copy(files["celeryops_tls_ca_file"], inventory_dir / "tls" / "ca.crt")
    for host in hosts:
        shutil.copy(files["celeryops_tls_cert_file"], inventory_dir / "tls" / f"{host}.crt")
        shutil.copy(files["celeryops_tls_key_file"], inventory_dir / "tls" / f"{host}.key")
    vaulted = {name: _secret() for name in VAULTED}
    vaulted["vault_rabbitmq_erlang_cookie"] = _secret(48)
    # Every host is the local machine.
    variables = {**vaulted, "ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    variables.update(overrides or {})
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps(variables))
    extra.chmod(0o600)
    result = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(inventory_dir / "hosts.yml"),
            str(SITE),
            "--check",
            "--tags",
            TAGS,
            "-e",
            f"@{extra}",
        ],  # fmt: skip
        cwd=PROJECT,
        env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return result, result.stdout + result.stderr, vaulted, hosts


def test_the_production_example_passes_every_preflight(tmp_path):
    result, output, vaulted, hosts = _run(tmp_path)
    assert result.returncode == 0, output[-4000:]
    recap = dict(re.findall(r"^(\S+)\s*:\s*ok=\d+\s+changed=(\d+)", output, re.M))
    assert sorted(recap) == hosts, output[-4000:]
    assert set(recap.values()) == {"0"}, recap
    # The checks that read the contract ran on the hosts they concern.
    for task in (
        "celeryops.stack.rabbitmq : Check the TLS files",
        "celeryops.stack.workers : Check that the workers use the vhost and user the broker is given",
        "celeryops.stack.flower : Check that Flower uses the vhost and users the broker is given",
        "celeryops.stack.node_exporter : Check the TLS files",
    ):
        assert f"TASK [{task}]" in output, task
    for name, secret in vaulted.items():
        assert secret not in output, f"{name} was printed"


def test_the_example_with_its_monitoring_user_named_flower_fails(tmp_path):
    """The twin: the example as it was before Flower had a user of its own (its monitoring user was named `flower`)
    is refused by the broker's checks, so the pass above comes from a consistent contract."""
    result, output, vaulted, _hosts_ = _run(tmp_path, {"celeryops_broker_monitoring_user": "flower"})
    assert result.returncode != 0, output[-4000:]
    flat = " ".join(output.split())
    assert "rabbitmq_monitoring_user and rabbitmq_flower_user must be four different names" in flat, output[-4000:]
    assert not re.search(r"changed=[1-9]", output), output[-4000:]
    for name, secret in vaulted.items():
        assert secret not in output, f"{name} was printed"
