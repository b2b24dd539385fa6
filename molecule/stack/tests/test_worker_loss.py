"""A worker's main process killed (SIGKILL) while it runs tasks: the idempotent tasks survive, the others may not.

app2's prefork worker serves the queue `celery` (tasks acknowledged when they start, Celery's default) and the
queue `imports`, whose tasks are acknowledged when they end and sent again when their worker is lost
(examples/myproject/imports/tasks.py). Both kinds run side by side when the main process is SIGKILLed; supervisor
brings the worker back. Every imports task must complete (the ones that ran at the kill included), and only tasks
that ran at the kill may be missing among the others: that is the trade-off docs/task-safety.md explains.
"""

import json
import time

import pytest
from stack_helpers import APP, WRAPPER, ledger_entries, running_pid, send_tasks, wait_new_pid

NODE = "celery@celery.app2"
PROGRAM = "celery-default"
TASK_SECONDS = 6
EACH = 16


def active_by_name(host):
    """{task name: [ids]} of the tasks the node runs now."""
    cmd = host.run("%s --app=%s inspect active --destination=%s --timeout=5 --json", WRAPPER, APP, NODE)
    replies = json.loads(cmd.stdout) if cmd.rc == 0 and cmd.stdout.strip() else {}
    if isinstance(replies, list):
        replies = {name: reply for item in replies for name, reply in item.items()}
    active = {}
    for task in replies.get(NODE) or []:
        active.setdefault(task["name"], []).append(task["id"])
    return active


@pytest.mark.reliability(
    "SIGKILL of a prefork worker's main process while default and idempotent (imports) tasks run",
    "supervisor brings it back; every imports task completes; only default tasks running at the kill are lost",
)
def test_a_killed_worker_loses_no_idempotent_task(app2, observe):
    plan = []
    for _index in range(EACH):
        plan.append([TASK_SECONDS, "imports", "imports.sleep"])
        plan.append([TASK_SECONDS, "celery"])
    ids = send_tasks(app2, plan)
    safe = set(ids[0::2])
    plain = set(ids[1::2])

    deadline = time.monotonic() + 60
    while True:
        active = active_by_name(app2)
        if active.get("imports.sleep") and active.get("core.sleep"):
            break
        assert time.monotonic() < deadline, f"the two kinds never ran side by side: {active}"
        time.sleep(0.5)
    old_pid = running_pid(app2, PROGRAM)
    assert app2.run("kill -KILL %s", str(old_pid)).rc == 0
    active_safe = set(active["imports.sleep"]) & safe
    active_plain = set(active["core.sleep"]) & plain
    wait_new_pid(app2, PROGRAM, old_pid)

    deadline = time.monotonic() + 180
    while True:
        done = [entry["id"] for entry in ledger_entries(app2, NODE) if entry["id"] in safe | plain]
        if safe <= set(done) and plain - active_plain <= set(done):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(2)
    time.sleep(TASK_SECONDS + 2)  # a late second run of an imports task would show now
    done = [entry["id"] for entry in ledger_entries(app2, NODE) if entry["id"] in safe | plain]
    missing_safe = safe - set(done)
    lost_plain = plain - set(done)
    twice_safe = {task for task in safe if done.count(task) > 1}
    summary = (
        f"killed while {len(active_safe)} imports and {len(active_plain)} default tasks ran: "
        f"imports {len(safe - missing_safe)}/{len(safe)} completed ({len(twice_safe)} twice), "
        f"default {len(plain - lost_plain)}/{len(plain)} completed ({len(lost_plain)} lost)"
    )
    print(summary)
    observe(summary)
    assert active_safe, "no imports task ran when the worker was killed: the check proved nothing"
    assert not missing_safe, f"{len(missing_safe)} imports tasks never completed ({len(active_safe)} ran at the kill)"
    assert lost_plain <= active_plain, "a plain task that did not run at the kill was lost"
    assert all(done.count(task) <= 1 for task in plain), "a plain task ran twice"


@pytest.fixture(autouse=True)
def _worker_back(app2):
    """Whatever happens, leave app2's worker running for the tests after this one."""
    yield
    deadline = time.monotonic() + 60
    while not running_pid(app2, PROGRAM) and time.monotonic() < deadline:
        time.sleep(1)
