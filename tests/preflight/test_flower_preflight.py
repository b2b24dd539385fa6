"""Bad input to celeryops.stack.flower fails before anything changes, naming the variable.

No lab: ansible-playbook applies the role to localhost (local connection, no facts) with one bad variable
at a time. The argument specs or the preflight asserts must stop the run, say which variable is wrong,
and leave the host untouched (changed=0).
"""

import re

import pytest
from role_runner import changed, failed_task, run_role
from tls_files import tls_variables

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


def _run(tmp_path, extra_vars, *args, broker_vars=""):
    inventory = f"[rabbitmq]\nmq {broker_vars}\n" if broker_vars else ""
    variables = {**tls_variables(tmp_path / "tls"), **extra_vars}
    return run_role(tmp_path, "flower", variables, *args, inventory=inventory)


def test_valid_variables_pass_the_preflight(tmp_path):
    result = _run(tmp_path, {"flower_basic_auth_password": "a-long-enough-passphrase"}, "--tags", "flower_preflight")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert changed(output) == 0


@pytest.mark.parametrize(("name", "value"), BAD_VARS, ids=[f"{n}={v!r}" for n, v in BAD_VARS])
def test_bad_variable_fails_before_any_change(tmp_path, name, value):
    result = _run(tmp_path, {name: value})
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert name in output, output[-3000:]
    assert changed(output) == 0, output[-3000:]
    if name.endswith("_password"):
        assert value not in output, f"the rejected {name} was printed"
    # The failure comes from the argument specs or the preflight asserts, not from a later stage.
    task = failed_task(output)
    assert re.match(r"celeryops\.stack\.flower : (Validating arguments|Check )", task), task


def test_a_monitoring_user_other_than_the_brokers_fails_naming_both_variables(tmp_path):
    result = _run(tmp_path, {"flower_basic_auth_password": "a-long-enough-passphrase"},
                  broker_vars="rabbitmq_monitoring_user=grafana")  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "flower_broker_api_user (monitoring)" in output, output[-3000:]
    assert "rabbitmq_monitoring_user (grafana)" in output, output[-3000:]
    assert changed(output) == 0


def test_the_application_user_as_flowers_broker_user_fails_naming_both_variables(tmp_path):
    extra = {"flower_basic_auth_password": "a-long-enough-passphrase", "flower_broker_user": "celery"}
    result = _run(tmp_path, extra, broker_vars="rabbitmq_app_user=celery")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "flower_broker_user (celery)" in output, output[-3000:]
    assert "rabbitmq_flower_user (flower)" in output, output[-3000:]
    assert changed(output) == 0


def test_https_to_a_broker_without_tls_fails_naming_both_sides(tmp_path):
    broker_vars = "rabbitmq_tls=false rabbitmq_amqp_address=10.0.0.5 rabbitmq_management_address=10.0.0.5"
    result = _run(tmp_path, {"flower_basic_auth_password": "a-long-enough-passphrase"}, broker_vars=broker_vars)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "flower_broker_tls (True)" in output, output[-3000:]
    assert "TLS off (rabbitmq_tls)" in output, output[-3000:]
    assert changed(output) == 0


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
