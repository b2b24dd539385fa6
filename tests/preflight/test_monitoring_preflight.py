"""Bad input to celeryops.stack.monitoring fails before anything changes, naming the variable.

No lab: ansible-playbook applies the role to localhost in check mode with one bad variable at a time, beside a
broker and a Flower host in the inventory (their variables as the inventory gives them). The argument specs or the
preflight asserts must stop the run, say which variable is wrong, and leave the host untouched (changed=0).
"""

import pytest
from role_runner import changed, refused, run_role
from tls_files import tls_variables

INVENTORY = "[rabbitmq]\nmq\n[flower]\nweb\n"

BAD_VARS = [
    ("monitoring_scrape_interval", "30"),
    ("monitoring_queue_no_consumers_for", "two minutes"),
    ("monitoring_worker_offline_for", "2M"),
    ("monitoring_fd_ratio", 1.5),
    ("monitoring_fd_ratio", 0),
    ("monitoring_task_failure_rate", -1),
    ("monitoring_queue_growth_min_ready", "many"),
    ("monitoring_prometheus_port", 0),
    ("monitoring_alertmanager_port", 70000),
    ("monitoring_rabbitmq_port", "https"),
    ("monitoring_prometheus_address", "0.0.0.0/0"),
    ("monitoring_tls_cert_file", "/nonexistent/monitor.crt"),
    ("monitoring_tls_ca_file", ""),
    ("monitoring_alertmanager_receiver", "webhook"),
    ("monitoring_rabbitmq_hosts", [["mq"]]),
]


def _run(tmp_path, extra_vars, *args, inventory=INVENTORY):
    variables = {**tls_variables(tmp_path / "tls"), **extra_vars}
    return run_role(tmp_path, "monitoring", variables, *args, inventory=inventory)


def _refused(result, *names):
    return refused(result, "monitoring", *names)


def test_valid_variables_pass_the_preflight(tmp_path):
    result = _run(tmp_path, {}, "--tags", "monitoring_preflight")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert changed(output) == 0


@pytest.mark.parametrize(("name", "value"), BAD_VARS, ids=[f"{n}={v!r}" for n, v in BAD_VARS])
def test_bad_variable_fails_before_any_change(tmp_path, name, value):
    _refused(_run(tmp_path, {name: value}), name)


def test_nothing_to_watch_fails(tmp_path):
    _refused(_run(tmp_path, {}, inventory=""), "monitoring_rabbitmq_hosts", "monitoring_flower_hosts")


def test_a_scrape_over_tls_of_a_broker_without_tls_fails_naming_both_sides(tmp_path):
    result = _run(tmp_path, {}, inventory="[rabbitmq]\nmq rabbitmq_tls=false\n[flower]\nweb\n")
    _refused(result, "mq has rabbitmq_tls=false", "monitoring_rabbitmq_tls is True")


def test_plain_metrics_on_the_brokers_loopback_fail(tmp_path):
    result = _run(tmp_path, {"monitoring_rabbitmq_tls": False, "monitoring_rabbitmq_port": 15692},
                  inventory="[rabbitmq]\nmq rabbitmq_tls=false\n[flower]\nweb\n")  # fmt: skip
    _refused(result, "rabbitmq_prometheus_address", "127.0.0.1")


def test_plain_metrics_on_an_address_the_scrape_reaches_pass(tmp_path):
    inventory = "[rabbitmq]\nmq rabbitmq_tls=false rabbitmq_prometheus_address=10.0.0.5\n[flower]\nweb\n"
    result = _run(tmp_path, {"monitoring_rabbitmq_tls": False, "monitoring_rabbitmq_port": 15692},
                  "--tags", "monitoring_preflight", inventory=inventory)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]


def test_the_node_scrape_needs_the_client_certificate_without_broker_tls(tmp_path):
    inventory = "[rabbitmq]\nmq rabbitmq_tls=false rabbitmq_prometheus_address=10.0.0.5\n[flower]\nweb\n"
    variables = {
        "monitoring_rabbitmq_tls": False,
        "monitoring_rabbitmq_port": 15692,
        "monitoring_tls_cert_file": "/nonexistent/monitor.crt",
    }
    _refused(_run(tmp_path, variables, inventory=inventory), "monitoring_node_hosts", "/nonexistent/monitor.crt")
    # The twin: without node exporters to scrape, nothing asks for the client certificate.
    result = _run(tmp_path, {**variables, "monitoring_node_hosts": []}, "--tags", "monitoring_preflight",
                  inventory=inventory)  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
