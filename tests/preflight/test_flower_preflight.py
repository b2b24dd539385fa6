"""Bad input to celeryops.stack.flower fails before anything changes, naming the variable.

No lab: ansible-playbook applies the role to localhost (local connection, no facts) with one bad variable
at a time. The argument specs or the preflight asserts must stop the run, say which variable is wrong,
and leave the host untouched (changed=0).
"""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest
from tls_files import tls_variables

PROJECT = pathlib.Path(__file__).resolve().parents[2]

PLAYBOOK = """\
- name: Apply the Flower role to localhost
  hosts: localhost
  gather_facts: false
  roles:
    - role: celeryops.stack.flower
"""

BAD_VARS = [
    ("flower_tls_cert_file", ""),
    ("flower_tls_key_file", "/nonexistent/flower.key"),
    ("flower_broker_ca_file", "relative/ca.crt"),
    ("flower_port", 0),
    ("flower_port", 70000),
    ("flower_port", "http"),
    ("flower_address", "0.0.0.0/0"),
    ("flower_url_prefix", "/flower"),
    ("flower_url_prefix", "flower/"),
    ("flower_url_prefix", "my flower"),
    ("flower_basic_auth_password", "short-secret"),
    ("flower_basic_auth_password", "Password1234567!"),
    ("flower_broker_password", "aaaaaaaaaaaaaaaaaaaa"),
    ("flower_broker_api_password", "qwertyuiopasdfgh"),
    ("flower_data_dir", "/var/lib"),
    ("flower_config_dir", "/etc"),
    ("flower_home_dir", "/root/flower"),
    ("flower_basic_auth_user", "ad:min"),
    ("flower_max_tasks", 0),
    ("flower_max_workers", 0),
    ("flower_purge_offline_workers", -1),
    ("flower_state_save_interval", -5),
    ("flower_log_level", "verbose"),
    ("flower_broker_api_scheme", "ftp"),
    ("flower_broker_port", 99999),
    ("flower_broker_vhost", ""),
    ("flower_program_priority", 50),
    ("flower_program_priority", 100),
    ("flower_version", "1.2.0"),
    ("flower_celery_version", "4.4.7"),
    ("flower_user", "root"),
    ("flower_venv_dir", "opt/flower/venv"),
    ("flower_wait_queues", "customers"),
    ("flower_wait_queues", ["my queue"]),
    ("flower_wait_workers_timeout", -1),
]


def _ansible_playbook():
    beside = pathlib.Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    assert found, "ansible-playbook not found"
    return found


def _run(tmp_path, extra_vars, *args, broker_vars=""):
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    (tmp_path / "vars.json").write_text(json.dumps({**tls_variables(tmp_path / "tls"), **extra_vars}))
    (tmp_path / "hosts.ini").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n"
        + (f"[rabbitmq]\nmq {broker_vars}\n" if broker_vars else "")
    )
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(PROJECT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(PROJECT / "collections"),
        ANSIBLE_ROLES_PATH=str(PROJECT / "roles"),
        ANSIBLE_FACT_CACHING="memory",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    link = PROJECT / "collections" / "ansible_collections" / "celeryops" / "stack"
    assert link.exists(), "run `make collection-link` first"
    # --check: should a check let bad input through, nothing here is changed (the refusal is asserted anyway).
    cmd = [_ansible_playbook(), "--check", "-i", str(tmp_path / "hosts.ini"), "-e", "@" + str(tmp_path / "vars.json")]
    cmd += [*args, str(tmp_path / "play.yml")]
    return subprocess.run(cmd, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300, check=False)


def _changed(output):
    match = re.search(r"^localhost\s*:.*\bchanged=(\d+)", output, re.M)
    assert match, output[-2000:]
    return int(match.group(1))


def test_valid_variables_pass_the_preflight(tmp_path):
    result = _run(tmp_path, {"flower_basic_auth_password": "a-long-enough-passphrase"}, "--tags", "flower_preflight")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert _changed(output) == 0


@pytest.mark.parametrize(("name", "value"), BAD_VARS, ids=[f"{n}={v!r}" for n, v in BAD_VARS])
def test_bad_variable_fails_before_any_change(tmp_path, name, value):
    result = _run(tmp_path, {name: value})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert name in output, output[-3000:]
    assert _changed(output) == 0, output[-3000:]
    if name.endswith("_password"):
        assert value not in output, f"the rejected {name} was printed"
    # The failure comes from the argument specs or the preflight asserts, not from a later stage.
    # A task fails with "fatal:", a loop item of the looped preflight assert with "failed: [localhost] (item=".
    failure = re.search(r"^(fatal|failed): \[localhost\]", output, re.M)
    assert failure, output[-3000:]
    failed_task = re.findall(r"^TASK \[([^\]]*)\]", output[: failure.start()], re.M)[-1]
    assert re.match(r"celeryops\.stack\.flower : (Validating arguments|Check )", failed_task), failed_task


def test_a_monitoring_user_other_than_the_brokers_fails_naming_both_variables(tmp_path):
    result = _run(tmp_path, {"flower_basic_auth_password": "a-long-enough-passphrase"},
                  broker_vars="rabbitmq_monitoring_user=grafana")  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "flower_broker_api_user (monitoring)" in output, output[-3000:]
    assert "rabbitmq_monitoring_user (grafana)" in output, output[-3000:]
    assert _changed(output) == 0


def test_the_application_user_as_flowers_broker_user_fails_naming_both_variables(tmp_path):
    extra = {"flower_basic_auth_password": "a-long-enough-passphrase", "flower_broker_user": "celery"}
    result = _run(tmp_path, extra, broker_vars="rabbitmq_app_user=celery")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "flower_broker_user (celery)" in output, output[-3000:]
    assert "rabbitmq_flower_user (flower)" in output, output[-3000:]
    assert _changed(output) == 0


def test_https_to_a_broker_without_tls_fails_naming_both_sides(tmp_path):
    broker_vars = "rabbitmq_tls=false rabbitmq_amqp_address=10.0.0.5 rabbitmq_management_address=10.0.0.5"
    result = _run(tmp_path, {"flower_basic_auth_password": "a-long-enough-passphrase"}, broker_vars=broker_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "flower_broker_tls (True)" in output, output[-3000:]
    assert "TLS off (rabbitmq_tls)" in output, output[-3000:]
    assert _changed(output) == 0


def test_plain_links_to_a_broker_on_its_addresses_pass(tmp_path):
    extra = {"flower_basic_auth_password": "a-long-enough-passphrase", "celeryops_broker_tls": False}
    result = _run(tmp_path, extra, "--tags", "flower_preflight",
                  broker_vars="rabbitmq_amqp_address=10.0.0.5 rabbitmq_management_address=10.0.0.5")  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Check that Flower speaks the broker's protocols on its ports" in output, output[-3000:]


def test_the_broker_contract_sets_both_sides(tmp_path):
    extra = {"flower_basic_auth_password": "a-long-enough-passphrase", "celeryops_broker_monitoring_user": "grafana",
             "celeryops_broker_flower_user": "dashboard"}  # fmt: skip
    broker_vars = "celeryops_broker_monitoring_user=grafana celeryops_broker_flower_user=dashboard"
    result = _run(tmp_path, extra, "--tags", "flower_preflight", broker_vars=broker_vars)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
