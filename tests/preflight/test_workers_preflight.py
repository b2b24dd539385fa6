"""Bad input to the workers role fails in its preflight, before any change, naming the variable.

Each case runs the role for real against localhost (no lab): preflight must stop the play before the first
task that would change the machine, so nothing gets installed here.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
from tls_files import tls_variables

PROJECT = pathlib.Path(__file__).resolve().parents[2]

PLAYBOOK = """---
- name: Apply the workers role with bad input
  hosts: local
  gather_facts: false
  roles:
    - celeryops.stack.workers
"""

INVENTORY = """---
all:
  hosts:
    local:
      ansible_connection: local
      ansible_python_interpreter: {python}
"""

GOOD = {"name": "default", "queues": ["celery"], "pool": "prefork", "concurrency": 8}

CASES = {
    "unknown pool": ([{**GOOD, "pool": "fork"}], ["workers_celery_workers", "pool", "prefork, eventlet"]),
    "concurrency zero": ([{**GOOD, "concurrency": 0}], ["workers_celery_workers", "concurrency"]),
    "max tasks per child with a green pool": (
        [{**GOOD, "pool": "gevent", "concurrency": 100, "max_tasks_per_child": 100}],
        ["workers_celery_workers", "max_tasks_per_child"],
    ),
    "autoscale with threads": (
        [{**GOOD, "pool": "threads", "autoscale": "10,2"}],
        ["workers_celery_workers", "autoscale"],
    ),
    "queue name with spaces": ([{**GOOD, "queues": ["my queue"]}], ["workers_celery_workers", "queues"]),
    "queue name with a comma": ([{**GOOD, "queues": ["a,b"]}], ["workers_celery_workers", "queues"]),
    # The argument spec accepts a string for a list without changing the variable: the preflight refuses it.
    "queues given as a string": ([{**GOOD, "queues": "celery"}], ["workers_celery_workers", "queues"]),
    "environment given as a string": ([{**GOOD, "environment": "A=1"}], ["workers_celery_workers", "environment"]),
    "stopwaitsecs below the hard time limit": (
        [{**GOOD, "time_limit": 600, "stopwaitsecs": 60}],
        ["workers_celery_workers", "stopwaitsecs", "time_limit"],
    ),
    "stopwaitsecs equal to the hard time limit": (
        [{**GOOD, "time_limit": 600, "stopwaitsecs": 600}],
        ["workers_celery_workers", "stopwaitsecs", "above the hard time limit"],
    ),
    "worker listed twice": ([GOOD, {**GOOD, "concurrency": 2}], ["workers_celery_workers", "more than once"]),
    "a worker named like a handover": (
        [GOOD, {**GOOD, "name": "default-handover", "queues": ["other"]}],
        ["workers_celery_workers[1] (default-handover)", "must not end with '-handover'"],
    ),
    "overlap with beat in the worker": (
        [{**GOOD, "overlap": True, "extra_args": ["--beat"]}],
        ["workers_celery_workers[0] (default)", "overlap: true", "second scheduler"],
    ),
    "overlap with beat among short options": (
        [{**GOOD, "overlap": True, "extra_args": ["-EB"]}],
        ["workers_celery_workers[0] (default)", "overlap: true"],
    ),
    "AMQP heartbeat on an eventlet worker with Celery 5.7": (
        [{**GOOD, "pool": "eventlet", "concurrency": 256, "broker_heartbeat": 60}],
        ["workers_celery_workers[0]", "broker_heartbeat", "workers_celery_version", "ten tasks a second"],
    ),
    "AMQP heartbeat on a gevent worker through its environment": (
        [{**GOOD, "pool": "gevent", "concurrency": 100, "environment": {"CELERY_BROKER_HEARTBEAT": "60"}}],
        ["workers_celery_workers[0]", "environment.CELERY_BROKER_HEARTBEAT"],
    ),
    "an --include of its own in extra_args": (
        [{**GOOD, "extra_args": ["--without-gossip", "--include=proj.signals"]}],
        ["workers_celery_workers[0]", "extra_args", "--include=proj.signals", "imports"],
    ),
    "a short -I in extra_args": ([{**GOOD, "extra_args": ["-I", "proj.signals"]}], ["extra_args", "-I"]),
    "negative AMQP heartbeat": (
        [{**GOOD, "broker_heartbeat": -1}],
        ["workers_celery_workers[0]", "broker_heartbeat", "integer >= 0"],
    ),
}

# Role settings an operator gets wrong (with a valid worker list).
ROLE_CASES = {
    "TLS to the broker without its CA": ({"workers_broker_ca_file": ""}, ["workers_broker_ca_file is empty"]),
    "broker CA that is no certificate": (
        {"workers_broker_ca_file": "/etc/hostname"},
        ["workers_broker_ca_file (/etc/hostname) holds no PEM certificate"],
    ),
    "home in a system directory": ({"workers_home": "/var/lib"}, ["workers_home (/var/lib)", "system's own layout"]),
    "environment file directly in /etc": (
        {"workers_env_file": "/etc/worker.env"},
        ["workers_env_file (/etc)", "top-level directory"],
    ),
    "logs in a tree emptied at boot": ({"workers_log_dir": "/run/celery"}, ["workers_log_dir (/run/celery)", "boot"]),
    "application directory not absolute": ({"workers_app_dir": "srv/app"}, ["workers_app_dir (srv/app)", "absolute"]),
    "virtualenv with a trailing slash": (
        {"workers_venv_dir": "/opt/celery/venv/"},
        ["workers_venv_dir (/opt/celery/venv/)", "write /opt/celery/venv"],
    ),
    "wrapper in /usr/bin": ({"workers_wrapper_path": "/usr/bin/celery-run"}, ["workers_wrapper_path (/usr/bin)"]),
    "home and logs in one directory": (
        {"workers_home": "/var/lib/celery", "workers_log_dir": "/var/lib/celery"},
        ["workers_log_dir and workers_home are the same directory (/var/lib/celery)"],
    ),
    "environment file name that is no shell name": (
        {"workers_environment": {"SENTRY-DSN": "x", "GOOD_NAME": "y"}},
        ["workers_environment.SENTRY-DSN", "letters, digits and '_'"],
    ),
    "broker password that is a common one padded": (
        {"workers_broker_password": "changemechangeme"},
        ["workers_broker_password", "built around a common password (changeme)"],
    ),
    "weak password for supervisord's inet server": (
        {"supervisor_inet_http_server_enabled": True, "supervisor_inet_http_server_password": "1234567890123456"},
        ["supervisor_inet_http_server_password", "strong secret"],
    ),
    "supervisord's stop timeout below the workers' warm shutdowns": (
        {"supervisor_systemd_stop_timeout": 200},
        ["sum of", "supervisor_systemd_stop_timeout", "300 seconds"],
    ),
    "worker environment name starting with a digit": (
        {"workers_celery_workers": [{**GOOD, "environment": {"1ST": "x"}}]},
        ["workers_celery_workers[0].environment.1ST"],
    ),
}

# The first task of the install stage: it must never be reached.
FIRST_CHANGE = "Install Python's virtualenv support"


@pytest.fixture
def workdir(tmp_path):
    (tmp_path / "inventory").mkdir()
    (tmp_path / "inventory" / "hosts.yml").write_text(INVENTORY.format(python=sys.executable))
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    return tmp_path


@pytest.mark.parametrize(("workers", "expected"), list(CASES.values()), ids=list(CASES))
def test_bad_input_fails_in_preflight(workdir, workers, expected):
    run_and_expect_refusal(workdir, {"workers_celery_workers": workers}, expected)


@pytest.mark.parametrize(("variables", "expected"), list(ROLE_CASES.values()), ids=list(ROLE_CASES))
def test_bad_role_settings_fail_in_preflight(workdir, variables, expected):
    run_and_expect_refusal(workdir, {"workers_celery_workers": [GOOD], **variables}, expected)


def test_an_empty_worker_list_is_refused(workdir):
    """An empty list would remove every worker of the host; a misnamed host_vars file gives one too."""
    run_and_expect_refusal(
        workdir,
        {"workers_celery_workers": []},
        ["workers_celery_workers is empty for local", "workers_allow_no_workers"],
    )


def test_an_empty_worker_list_passes_when_meant(workdir):
    result = run_play(workdir, {"workers_celery_workers": [], "workers_allow_no_workers": True}, True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Check that the host declares workers, or that an empty list is meant" in output, output


@pytest.mark.parametrize("app", ["", "proj celery", "proj.celery:app:x"])
def test_a_missing_or_malformed_celery_app_fails(workdir, app):
    run_and_expect_refusal(
        workdir, {"workers_celery_workers": [GOOD], "workers_celery_app": app}, ["workers_celery_app", "required"]
    )


def test_a_heartbeat_in_the_environment_file_fails(workdir):
    """The wrapper loads the environment file after supervisor's program environment, so it would override the
    green workers' heartbeat."""
    run_and_expect_refusal(
        workdir,
        {
            "workers_celery_workers": [{**GOOD, "pool": "gevent"}],
            "workers_environment": {"CELERY_BROKER_HEARTBEAT": 60},
        },
        ["workers_celery_workers[0]", "workers_environment.CELERY_BROKER_HEARTBEAT"],
    )


# The broker host of the inventory is given another vhost than the workers use (here Celery's "celery" default).
BROKER_ELSEWHERE = """---
all:
  hosts:
    local:
      ansible_connection: local
      ansible_python_interpreter: {python}
  children:
    rabbitmq:
      hosts:
        mq:
          rabbitmq_app_vhost: billing
"""


def test_a_vhost_other_than_the_brokers_fails_naming_both_variables(workdir):
    (workdir / "inventory" / "hosts.yml").write_text(BROKER_ELSEWHERE.format(python=sys.executable))
    run_and_expect_refusal(
        workdir,
        {"workers_celery_workers": [GOOD]},
        ["workers_broker_vhost (celery)", "rabbitmq_app_vhost (billing)", "celeryops_broker_vhost"],
    )


# The broker's listeners as its own variables set them, the workers' variables, and what the refusal names.
BROKER_LINK_CASES = {
    "TLS off on the broker only": (
        "          rabbitmq_tls: false\n          rabbitmq_amqp_address: 10.0.0.5\n",
        {},
        ["workers_broker_tls (True)", "TLS off (rabbitmq_tls)", "celeryops_broker_tls"],
    ),
    "broker's AMQPS on another port": (
        "          rabbitmq_amqps_port: 5999\n",
        {},
        ["workers_broker_port (5671)", "port 5999"],
    ),
    "plain AMQP to a broker that serves it on loopback only": (
        "          rabbitmq_tls: false\n",
        {"celeryops_broker_tls": False},
        ["workers_broker_tls (False)", "port 5672", "rabbitmq_amqp_address", "(127.0.0.1)", "not loopback"],
    ),
    # Classic queues declared on a broker whose task queues are quorum queues (and the reverse would be refused
    # by the broker itself, PRECONDITION_FAILED on the first declaration).
    "classic queues on a quorum broker": (
        "          rabbitmq_default_queue_type: quorum\n",
        {"workers_broker_queue_type": "classic"},
        ["workers_broker_queue_type (classic)", "rabbitmq_default_queue_type of mq (quorum)"],
    ),
    "the broker host among its own failover hosts": (
        "",
        {"workers_broker_failover_hosts": ["mq"]},
        ["workers_broker_failover_hosts (['mq'])", "without workers_broker_host (mq)"],
    ),
}


def _broker_elsewhere(broker_vars):
    return BROKER_ELSEWHERE.replace("          rabbitmq_app_vhost: billing\n", broker_vars).format(
        python=sys.executable
    )


@pytest.mark.parametrize(
    ("broker_vars", "variables", "expected"), list(BROKER_LINK_CASES.values()), ids=list(BROKER_LINK_CASES)
)
def test_a_link_the_broker_does_not_serve_is_refused(workdir, broker_vars, variables, expected):
    (workdir / "inventory" / "hosts.yml").write_text(_broker_elsewhere(broker_vars))
    run_and_expect_refusal(workdir, {"workers_celery_workers": [GOOD], **variables}, expected)


def test_plain_amqp_to_a_broker_that_serves_it_on_its_address_passes(workdir):
    """The good twin of the loopback case: the same plain link once the broker listens on an address."""
    broker_vars = "          rabbitmq_tls: false\n          rabbitmq_amqp_address: 10.0.0.5\n"
    (workdir / "inventory" / "hosts.yml").write_text(_broker_elsewhere(broker_vars))
    result = run_play(workdir, {"workers_celery_workers": [GOOD], "celeryops_broker_tls": False}, True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Check that the workers speak the broker's protocol on its port" in output, output


def test_the_broker_contract_sets_both_sides(workdir):
    """celeryops_broker_vhost given to every host: the broker's and the workers' vhost agree, the preflight
    passes (run alone, by its tag)."""
    inventory = BROKER_ELSEWHERE.replace("          rabbitmq_app_vhost: billing\n", "").format(python=sys.executable)
    (workdir / "inventory" / "hosts.yml").write_text(inventory)
    result = run_play(workdir, {"workers_celery_workers": [GOOD], "celeryops_broker_vhost": "billing"}, True)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Check that the workers use the vhost and user the broker is given" in output, output
    assert "rabbitmq_app_vhost (" not in output, output


def run_play(workdir, variables, preflight_only=False):
    """The role on localhost with variables, and the one every inventory must set (workers_celery_app)."""
    extra = workdir / "vars.json"
    extra.write_text(
        json.dumps({"workers_celery_app": "proj.celery:app", **tls_variables(workdir / "tls"), **variables})
    )
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    return subprocess.run(
        [
            "ansible-playbook",
            # Should a check let bad input through, nothing here is changed (the refusal is asserted anyway).
            "--check",
            "-i",
            str(workdir / "inventory" / "hosts.yml"),
            str(workdir / "play.yml"),
            "-e",
            f"@{extra}",
            *(["--tags", "workers_preflight"] if preflight_only else []),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_and_expect_refusal(workdir, variables, expected):
    result = run_play(workdir, variables)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    for text in expected:
        assert text in output, output
    assert FIRST_CHANGE not in output, "preflight let the play reach the install stage:\n" + output
    for name, value in variables.items():
        if name.endswith("_password"):
            assert value not in output, f"the rejected {name} was printed"
    assert "changed=0" in output, output
