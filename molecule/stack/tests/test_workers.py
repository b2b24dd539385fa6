"""The Celery workers as deployed by celeryops.stack.supervisor + celeryops.stack.workers.

Behaviour, observed from the hosts: tasks reach the worker of their queue (and only that one), workers answer
pings under their node names, run as the non-root user, come back after a crash, and a change of one worker's
settings restarts that worker only. The broker password stays out of supervisor files and argv.
"""

import json
import os
import pathlib
import subprocess
import time

import pytest

PROJECT = pathlib.Path(__file__).resolve().parents[3]
PLAYBOOK = os.environ.get("CELERYOPS_WORKERS_PLAYBOOK", str(PROJECT / "playbooks" / "site.yml"))

APP = "myproject.celery_config:app"
WRAPPER = "/opt/celery/bin/celery-run"
ENV_FILE = "/etc/celery/worker.env"
VENV_PYTHON = "/opt/celery/venv/bin/python"
APP_DIR = "/srv/myproject"
LEDGER_DIR = "/var/lib/celery/ledger"
CUSTOMERS_NODE = "celery@customers.app1"
DEFAULT_NODE = "celery@celery.app2"

# Sends one task by name through the project's own Celery app (so its router decides the queue) and prints
# {"id": ..., "result": ...} once the worker has answered through the rpc:// result backend.
SEND = """
import json, sys
from myproject.celery_config import app
result = app.send_task(sys.argv[1], args=json.loads(sys.argv[2]))
print(json.dumps({"id": result.id, "result": result.get(timeout=90)}))
"""


def send_task(host, name, args=()):
    """Run SEND on ``host`` with the workers' environment file loaded (as root, who may read it)."""
    script = f'set -a; . {ENV_FILE}; set +a; cd {APP_DIR}; exec {VENV_PYTHON} -c "$0" "$1" "$2"'
    cmd = host.run("sh -c %s %s %s %s", script, SEND, name, json.dumps(list(args)))
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout.strip().splitlines()[-1])


def program_pid(host, program):
    cmd = host.run("supervisorctl status %s", program)
    assert "RUNNING" in cmd.stdout, cmd.stdout
    return int(cmd.stdout.split("pid", 1)[1].split(",", 1)[0])


def wait_running(host, program, old_pid=None, timeout=90):
    """Wait until ``program`` is RUNNING (with a PID other than ``old_pid``) and return its PID."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        cmd = host.run("supervisorctl status %s", program)
        last = cmd.stdout
        if "RUNNING" in last:
            pid = int(last.split("pid", 1)[1].split(",", 1)[0])
            if pid != old_pid:
                return pid
        time.sleep(2)
    pytest.fail(f"{program} is not RUNNING with a new PID after {timeout} s: {last}")


def ping_nodes(host):
    cmd = host.run("%s --app=%s inspect ping --timeout=10 --json", WRAPPER, APP)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return cmd.stdout


def run_playbook(inventory, extra_vars=None):
    argv = ["ansible-playbook", "-i", str(inventory), PLAYBOOK, "--limit", "workers", "--tags", "workers"]
    if extra_vars is not None:
        argv += ["-e", f"@{extra_vars}"]
    env = {**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(argv, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    return result.stdout


def worker_lists(inventory):
    """The worker list of each host in the inventory (workers_celery_workers from host or group vars)."""
    lists = {}
    for name in ("app1", "app2"):
        out = subprocess.run(
            ["ansible-inventory", "-i", str(inventory), "--host", name],
            cwd=PROJECT,
            env={**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg")},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        lists[name] = json.loads(out)["workers_celery_workers"]
    return lists


def test_customers_task_runs_on_the_customers_worker_only(app1, app2):
    results = [send_task(app2, "customers.whoami") for _attempt in range(5)]
    assert {r["result"]["node"] for r in results} == {CUSTOMERS_NODE}
    sleeper = send_task(app2, "customers.sleep", [0.2])
    assert sleeper["result"]["node"] == CUSTOMERS_NODE
    ledger = app1.file(f"{LEDGER_DIR}/{CUSTOMERS_NODE}.jsonl")
    assert ledger.exists
    ids = [json.loads(line)["id"] for line in ledger.content_string.splitlines() if line.strip()]
    assert ids.count(sleeper["id"]) == 1
    other = app2.file(f"{LEDGER_DIR}/{DEFAULT_NODE}.jsonl")
    assert not other.exists or sleeper["id"] not in other.content_string


def test_other_tasks_run_on_the_default_worker(app1):
    results = [send_task(app1, "core.whoami") for _attempt in range(5)]
    assert {r["result"]["node"] for r in results} == {DEFAULT_NODE}
    assert send_task(app1, "core.add", [2, 3])["result"] == 5


def test_both_workers_answer_ping_by_node_name(app1, app2):
    for host in (app1, app2):
        out = ping_nodes(host)
        assert CUSTOMERS_NODE in out, out
        assert DEFAULT_NODE in out, out


@pytest.mark.parametrize(("host_name", "program"), [("app1", "celery-customers"), ("app2", "celery-default")])
def test_workers_run_as_the_celery_user(request, host_name, program):
    host = request.getfixturevalue(host_name)
    pid = program_pid(host, program)
    assert host.run("ps -o user= -p %s", str(pid)).stdout.strip() == "celery"
    children = host.run("ps -o user= --ppid %s", str(pid)).stdout.split()
    assert all(user == "celery" for user in children), children
    if program == "celery-default":
        assert len(children) >= 1  # prefork children


def test_env_file_is_private_to_the_worker_group(app1, app2):
    for host in (app1, app2):
        env = host.file(ENV_FILE)
        assert env.user == "root"
        assert env.group == "celery"
        assert env.mode == 0o640


def test_broker_password_not_in_supervisor_files_or_argv(app1, app2, credentials_dir):
    password = (credentials_dir / "rabbitmq_myproject.password").read_text().split()[0]
    assert len(password) >= 20
    for host in (app1, app2):
        conf_files = host.run("find /etc/supervisor -type f").stdout.split()
        assert conf_files
        for path in conf_files:
            assert password not in host.file(path).content_string, path
        argv = host.run("ps -eo args").stdout
        assert "celery" in argv
        assert password not in argv
        wrapper = host.file(WRAPPER)
        assert wrapper.mode == 0o755
        assert password not in wrapper.content_string


def test_killed_worker_comes_back_with_a_new_pid(app1):
    old = program_pid(app1, "celery-customers")
    app1.run("kill -KILL %s", str(old))
    new = wait_running(app1, "celery-customers", old_pid=old)
    assert new != old
    # And it serves again.
    assert send_task(app1, "customers.whoami")["result"]["node"] == CUSTOMERS_NODE


def test_changing_one_worker_restarts_only_that_worker(app1, app2, inventory, tmp_path):
    lists = worker_lists(inventory)
    changed = [dict(worker) for worker in lists["app2"]]
    changed[0]["concurrency"] = int(changed[0].get("concurrency", 8)) + 1
    override = tmp_path / "override.json"
    override.write_text(
        json.dumps(
            {
                "celeryops_test_workers": {"app1": lists["app1"], "app2": changed},
                "workers_celery_workers": "{{ celeryops_test_workers[inventory_hostname] }}",
            }
        )
    )
    pid1 = program_pid(app1, "celery-customers")
    pid2 = program_pid(app2, "celery-default")
    try:
        run_playbook(inventory, override)
        assert program_pid(app1, "celery-customers") == pid1
        new2 = wait_running(app2, "celery-default", old_pid=pid2)
        argv = app2.run("ps -o args= -p %s", str(new2)).stdout
        assert f"--concurrency={changed[0]['concurrency']}" in argv
    finally:
        run_playbook(inventory)
    assert program_pid(app1, "celery-customers") == pid1
    assert send_task(app1, "core.whoami")["result"]["node"] == DEFAULT_NODE
