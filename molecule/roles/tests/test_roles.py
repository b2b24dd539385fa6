"""Each role deploys through its own main entry point, without playbooks/site.yml (issue 13).

broker got the rabbitmq role alone, app1 the supervisor role alone, app2 the workers role alone (which includes
the supervisor role after its own checks). Each host has what its role promises and nothing of the others.
"""

import json

import pytest

APP = "myproject.celery_config:app"
WRAPPER = "/opt/celery/bin/celery-run"


@pytest.fixture
def broker(host):
    if host.backend.get_hostname() != "broker":
        pytest.skip("broker only")
    return host


@pytest.fixture
def app1(host):
    if host.backend.get_hostname() != "app1":
        pytest.skip("app1 only")
    return host


@pytest.fixture
def app2(host):
    if host.backend.get_hostname() != "app2":
        pytest.skip("app2 only")
    return host


def test_the_broker_has_the_application_vhost_and_no_guest(broker):
    vhosts = broker.check_output("rabbitmqctl list_vhosts --formatter json --quiet")
    assert "myproject" in [item["name"] for item in json.loads(vhosts)]
    users = [
        item["user"] for item in json.loads(broker.check_output("rabbitmqctl list_users --formatter json --quiet"))
    ]
    assert "guest" not in users
    assert "myproject" in users


def test_supervisor_alone_runs_no_program_behind_a_root_only_socket(app1):
    assert app1.service("supervisor").is_running
    assert app1.check_output("supervisorctl status || true") == ""
    socket = app1.file("/var/run/supervisor.sock")
    assert socket.is_socket
    assert socket.user == "root"
    assert socket.mode & 0o077 == 0
    assert not app1.file("/opt/celery").exists


def test_the_workers_role_alone_runs_its_worker_and_answers(app2):
    assert app2.service("supervisor").is_running
    assert "RUNNING" in app2.check_output("supervisorctl status celery-default")
    reply = app2.run("%s --app=%s inspect ping --destination=celery@celery.app2 --timeout=10 --json", WRAPPER, APP)
    assert reply.rc == 0, reply.stderr
    assert json.loads(reply.stdout.strip().splitlines()[-1]) == {"celery@celery.app2": {"ok": "pong"}}
    assert not app2.file("/opt/flower").exists
