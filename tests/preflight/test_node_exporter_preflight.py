"""Bad input to celeryops.stack.node_exporter fails before anything changes, naming the variable.

No lab: ansible-playbook applies the role to localhost in check mode with one bad variable at a time. The argument
specs or the preflight asserts must stop the run, say which variable is wrong, and leave the host untouched
(changed=0).
"""

import pytest
from role_runner import changed, refused, run_role
from tls_files import tls_variables

BAD_VARS = [
    ("node_exporter_web_listen_address", "9100"),
    ("node_exporter_web_listen_address", "0.0.0.0:"),
    ("node_exporter_web_listen_address", "0.0.0.0:70000"),
    ("node_exporter_web_listen_address", "10.0.0.0/8:9100"),
    ("node_exporter_web_listen_address", "::1:9100"),
    ("node_exporter_tls", "sometimes"),
    ("node_exporter_tls_ca_file", ""),
    ("node_exporter_tls_cert_file", "/nonexistent/host.crt"),
    ("node_exporter_tls_key_file", "/nonexistent/host.key"),
]


def _run(tmp_path, extra_vars, *args):
    return run_role(tmp_path, "node_exporter", {**tls_variables(tmp_path / "tls"), **extra_vars}, *args)


def _passed(result):
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert changed(output) == 0, output[-3000:]


def _refused(result, *names):
    return refused(result, "node_exporter", *names)


def test_valid_variables_pass_the_preflight(tmp_path):
    _passed(_run(tmp_path, {}, "--tags", "node_exporter_preflight"))


@pytest.mark.parametrize(("name", "value"), BAD_VARS, ids=[f"{n}={v!r}" for n, v in BAD_VARS])
def test_bad_variable_fails_before_any_change(tmp_path, name, value):
    _refused(_run(tmp_path, {name: value}), name)


@pytest.mark.parametrize("address", ["0.0.0.0:9100", ":9100", "10.0.0.5:9100", "[::]:9100", "monitor:9100"])
def test_plain_http_outside_loopback_fails_naming_both_variables(tmp_path, address):
    result = _run(tmp_path, {"node_exporter_tls": False, "node_exporter_web_listen_address": address})
    output = _refused(result, "node_exporter_tls", "node_exporter_web_listen_address", "loopback")
    assert address in output


@pytest.mark.parametrize("address", ["127.0.0.1:9100", "localhost:9100", "[::1]:9100"])
def test_plain_http_on_loopback_passes_without_tls_files(tmp_path, address):
    variables = {"node_exporter_tls": False, "node_exporter_web_listen_address": address}
    variables |= {f"node_exporter_tls_{kind}_file": "" for kind in ("ca", "cert", "key")}
    _passed(run_role(tmp_path, "node_exporter", variables, "--tags", "node_exporter_preflight"))


def test_a_key_of_another_certificate_fails(tmp_path):
    other = tls_variables(tmp_path / "other")
    result = _run(tmp_path, {"node_exporter_tls_key_file": other["celeryops_tls_key_file"]})
    _refused(result, "node_exporter_tls_key_file", "node_exporter_tls_cert_file")
