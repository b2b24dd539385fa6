"""A wrong type or an unknown choice in an inventory fails in argument validation on the playbooks/site.yml path.

ansible-core validates a role's meta/argument_specs.yml only for the entry point that runs, so each case runs
site.yml itself against localhost, the host in the one group whose role is under test, and expects the role's
"Validating arguments against arg spec" task to fail naming the variable, with nothing changed. The runs use
--check as a second guard: a validation that let the input through must not install anything here.
"""

import json
import sys

import pytest
from role_runner import PROJECT, run_playbook
from tls_files import tls_variables

SITE = PROJECT / "playbooks" / "site.yml"

INVENTORY = """---
all:
  children:
    {group}:
      hosts:
        local:
          ansible_connection: local
          ansible_python_interpreter: {python}
"""

# What an app host needs so that the workers role's own checks pass (the supervisor case fails after them).
WORKERS_OK = {
    "workers_celery_app": "proj.celery:app",
    "workers_celery_workers": [{"name": "default", "queues": ["celery"]}],
}

CASES = {
    "rabbitmq: a port that is no integer": ("rabbitmq", {"rabbitmq_amqp_port": "amqp"}, "rabbitmq_amqp_port"),
    "rabbitmq: Erlang's listeners on an address other than loopback or every interface": (
        "rabbitmq",
        {"rabbitmq_distribution_address": "10.0.0.5"},
        "rabbitmq_distribution_address",
    ),
    "supervisor: an unknown log level": (
        "workers",
        {**WORKERS_OK, "supervisor_loglevel": "loud"},
        "supervisor_loglevel",
    ),
    "supervisor: an unknown timeout action": (
        "workers",
        {**WORKERS_OK, "supervisor_worker_stop_on_timeout": "wait"},
        "supervisor_worker_stop_on_timeout",
    ),
    "workers: an unknown default pool": (
        "workers",
        {**WORKERS_OK, "workers_default_pool": "fork"},
        "workers_default_pool",
    ),
    "workers: a worker list that is a string": (
        "workers",
        {**WORKERS_OK, "workers_celery_workers": "default"},
        "workers_celery_workers",
    ),
    "workers: an unknown pool of one worker": (
        "workers",
        {**WORKERS_OK, "workers_celery_workers": [{"name": "default", "queues": ["celery"], "pool": "fork"}]},
        "pool",
    ),
    "flower: a port that is no integer": ("flower", {"flower_port": "http"}, "flower_port"),
    "flower: an unknown log level": ("flower", {"flower_log_level": "loud"}, "flower_log_level"),
    "node_exporter: a TLS switch that is no boolean": (
        "monitoring",
        {"node_exporter_tls": "sometimes"},
        "node_exporter_tls",
    ),
}


@pytest.mark.parametrize(("group", "variables", "name"), list(CASES.values()), ids=list(CASES))
def test_site_refuses_a_wrong_type_in_argument_validation(tmp_path, group, variables, name):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY.format(group=group, python=sys.executable))
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({**tls_variables(tmp_path / "tls"), **variables}))
    result = run_playbook(["-i", str(inventory), str(SITE), "--check", "-e", f"@{extra}"])
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    failed = [block for block in output.split("TASK [") if "fatal:" in block]
    assert len(failed) == 1, output
    assert "Validating arguments against arg spec" in failed[0], output
    assert name in failed[0], output
    assert "changed=0" in output, output
