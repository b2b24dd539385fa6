"""The Celery workers as deployed by celeryops.stack.supervisor + celeryops.stack.workers.

Behaviour, observed from the hosts: tasks reach the worker of their queue (and only that one), workers answer
pings under their node names, run as the non-root user, come back after a crash, and a change of one worker's
settings restarts that worker only, while a change of supervisord.conf restarts supervisord itself. The broker
password stays out of supervisor files and argv.
"""

import json
import os
import re

import pytest
from stack_helpers import (
    APP,
    APP_DIR,
    ENV_FILE,
    LEDGER_DIR,
    PROJECT,
    VENV_PYTHON,
    WRAPPER,
    running_pid,
    wait_new_pid,
    worker_lists,
)
from stack_helpers import run_playbook as run_playbook_from

PLAYBOOK = os.environ.get("CELERYOPS_WORKERS_PLAYBOOK", str(PROJECT / "playbooks" / "site.yml"))

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


def ping_nodes(host):
    cmd = host.run("%s --app=%s inspect ping --timeout=10 --json", WRAPPER, APP)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    return cmd.stdout


def run_playbook(inventory, extra_vars=None):
    return run_playbook_from(
        inventory, PLAYBOOK, "--limit", "workers", "--tags", "workers", extra_vars=extra_vars
    ).stdout


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
    pid = running_pid(host, program)
    assert host.run("ps -o user= -p %s", str(pid)).stdout.strip() == "celery"
    children = host.run("ps -o user= --ppid %s", str(pid)).stdout.split()
    assert all(user == "celery" for user in children), children
    if program == "celery-default":
        assert len(children) >= 1  # prefork children


def test_a_percent_in_extra_args_reaches_celery_as_written(app2):
    """The inventory gives app2's worker `--statedb=/var/lib/celery/%h.state`: supervisord must accept the program
    (the role doubles the % for it), Celery must receive the argument as written and expand %h itself."""
    pid = running_pid(app2, "celery-default")
    argv = app2.file(f"/proc/{pid}/cmdline").content_string.split("\0")
    assert "--statedb=/var/lib/celery/%h.state" in argv, argv
    assert "%%h.state" in app2.file("/etc/supervisor/conf.d/celery-default.conf").content_string
    # Celery opens it with shelve: Python 3.11's dbm adds ".db" to the name, 3.13's (sqlite3) does not.
    owners = app2.run("stat -c %%U %s/celery.app2.state*", "/var/lib/celery").stdout.split()
    assert owners, "Celery did not expand %h into its state file's name"
    assert set(owners) == {"celery"}, owners


@pytest.mark.reliability("an unprivileged account reads worker logs or the application code", "refused")
def test_logs_and_code_are_not_for_every_account(app1, app2):
    """Worker logs, supervisord's logs (Flower's among them) and the application's code: an account outside the
    groups adm and celery reads none of them; the workers still read their code."""
    for host, log in ((app1, "/var/log/celery/celery-customers.log"), (app2, "/var/log/celery/celery-default.log")):
        for path, group in (("/var/log/celery", "adm"), ("/var/log/supervisor", "adm"), (APP_DIR, "celery")):
            directory = host.file(path)
            assert (directory.user, directory.group, directory.mode) == ("root", group, 0o750), path
        assert host.file(log).exists
        denied = host.run("runuser -u nobody -- cat %s", log)
        assert denied.rc != 0, f"nobody reads {log}"
        assert host.run("runuser -u nobody -- ls %s", APP_DIR).rc != 0
        assert host.run("runuser -u celery -- ls %s/myproject", APP_DIR).rc == 0


def test_env_file_is_private_to_the_worker_group(app1, app2):
    for host in (app1, app2):
        env = host.file(ENV_FILE)
        assert env.user == "root"
        assert env.group == "celery"
        assert env.mode == 0o640


@pytest.mark.reliability("the broker password in supervisor files, argv or the wrapper", "none")
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
    old = running_pid(app1, "celery-customers")
    app1.run("kill -KILL %s", str(old))
    new = wait_new_pid(app1, "celery-customers", old)
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
    pid1 = running_pid(app1, "celery-customers")
    pid2 = running_pid(app2, "celery-default")
    try:
        run_playbook(inventory, override)
        assert running_pid(app1, "celery-customers") == pid1
        new2 = wait_new_pid(app2, "celery-default", pid2)
        argv = app2.run("ps -o args= -p %s", str(new2)).stdout
        assert f"--concurrency={changed[0]['concurrency']}" in argv
    finally:
        run_playbook(inventory)
    assert running_pid(app1, "celery-customers") == pid1
    assert send_task(app1, "core.whoami")["result"]["node"] == DEFAULT_NODE


def supervisord_pid(host):
    """supervisord's main PID as systemd reports it (0 when it does not run)."""
    return int(host.run("systemctl show --property=MainPID --value supervisor").stdout.strip() or 0)


def test_supervisord_restarts_for_its_own_config_only(app2, inventory, tmp_path):
    """A supervisord.conf change restarts supervisord (the handler), and its workers run again afterwards; a run
    that changes nothing leaves the same supervisord in place."""
    override = tmp_path / "loglevel.json"
    override.write_text(json.dumps({"supervisor_loglevel": "debug"}))
    before = supervisord_pid(app2)
    assert before
    try:
        run_playbook_from(inventory, PLAYBOOK, "--limit", "app2", extra_vars=override)
        changed = supervisord_pid(app2)
        assert changed
        assert changed != before
        assert "loglevel=debug" in app2.file("/etc/supervisor/supervisord.conf").content_string
        assert running_pid(app2, "celery-default")
    finally:
        run_playbook_from(inventory, PLAYBOOK, "--limit", "app2")
    restored = supervisord_pid(app2)
    assert restored
    assert restored != changed
    assert "loglevel=info" in app2.file("/etc/supervisor/supervisord.conf").content_string
    run_playbook_from(inventory, PLAYBOOK, "--limit", "app2")
    assert supervisord_pid(app2) == restored
    assert running_pid(app2, "celery-default")


def task_statuses(output):
    """``{task name: ok|changed|skipping|failed|fatal}`` from the default output of a run on one host.

    Colour codes are dropped: molecule's environment forces colours, which ANSIBLE_NOCOLOR does not override.
    """
    statuses, task = {}, None
    for line in re.sub(r"\x1b\[[0-9;]*m", "", output).splitlines():
        header = re.match(r"TASK \[(.+)\] \*+$", line)
        if header:
            task = header.group(1)
            continue
        result = re.match(r"(ok|changed|skipping|failed|fatal): \[", line)
        if result and task and task not in statuses:
            statuses[task] = result.group(1)
    return statuses


# The tasks that write files on an app host of the workers group (celeryops.stack.file_set, the code archive),
# skipped when the install probes found nothing to change.
FILE_TASKS = [
    "celeryops.stack.supervisor : Create the program and log directories, render supervisord.conf and the unit's "
    "drop-in",
    "celeryops.stack.workers : Create the role's directories",
    "Deploy the application code",
    "celeryops.stack.workers : Write the worker environment file, the broker's CA and the wrapper",
]
# The worker's program file: a plain template task, which compares the file itself.
PROGRAM_TASKS = ["celeryops.stack.workers : Render the program file of celery-default"]


def test_an_unchanged_host_gets_no_file_task(app2, inventory):
    """The install probes read the directories, the archive's and the files' checksums: a run that has nothing to
    change writes nothing and does not even call the file module; the program file's template finds it equal."""
    statuses = task_statuses(run_playbook_from(inventory, PLAYBOOK, "--limit", "app2").stdout)
    found = {name: status for name, status in statuses.items() if name.endswith(tuple(FILE_TASKS))}
    assert len(found) == len(FILE_TASKS), statuses
    assert set(found.values()) == {"skipping"}, found
    programs = {name: status for name, status in statuses.items() if name.endswith(tuple(PROGRAM_TASKS))}
    assert list(programs.values()) == ["ok"], statuses


def test_fixing_a_directory_does_not_restart_supervisord(app2, inventory):
    """A program directory with the wrong mode is fixed by the configure stage's one file call; supervisord (and so
    every worker) keeps running, since its handler acts on a changed supervisord.conf only."""
    conf_dir = "/etc/supervisor/conf.d"
    supervisord, worker = supervisord_pid(app2), running_pid(app2, "celery-default")
    assert supervisord
    assert worker
    try:
        assert app2.run("chmod 0700 %s", conf_dir).rc == 0
        statuses = task_statuses(run_playbook_from(inventory, PLAYBOOK, "--limit", "app2").stdout)
    finally:
        app2.run("chmod 0755 %s", conf_dir)
    assert statuses[FILE_TASKS[0]] == "changed", statuses
    assert app2.file(conf_dir).mode == 0o755
    assert supervisord_pid(app2) == supervisord
    assert running_pid(app2, "celery-default") == worker
