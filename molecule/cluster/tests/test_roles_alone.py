"""Roles through their own main entry points (issue 13), on the cluster scenario's hosts.

The monitoring host got the supervisor role alone besides its own role: supervisord runs there with nothing to run
and nothing of the workers. app2 got the workers role, whose worker answers without Flower on the host. (The
broker's vhost and users are checked on every node by test_cluster.py.)
"""

import json

APP = "myproject.celery_config:app"
WRAPPER = "/opt/celery/bin/celery-run"


def test_supervisor_alone_runs_no_program_behind_a_root_only_socket(monitor):
    assert monitor.service("supervisor").is_running
    assert monitor.check_output("supervisorctl status || true") == ""
    socket = monitor.file("/var/run/supervisor.sock")
    assert socket.is_socket
    assert socket.user == "root"
    assert socket.mode & 0o077 == 0
    assert not monitor.file("/opt/celery").exists


def test_the_workers_role_runs_its_worker_and_answers_without_flower(app2):
    assert app2.service("supervisor").is_running
    assert "RUNNING" in app2.check_output("supervisorctl status celery-default")
    reply = app2.run("%s --app=%s inspect ping --destination=celery@celery.app2 --timeout=10 --json", WRAPPER, APP)
    assert reply.rc == 0, reply.stderr
    assert json.loads(reply.stdout.strip().splitlines()[-1]) == {"celery@celery.app2": {"ok": "pong"}}
    assert not app2.file("/opt/flower").exists
