"""A reboot of an app host while its worker runs long tasks loses and repeats nothing.

`systemctl reboot` on app2 while its worker (queue `celery`, the queue's only consumer) runs long tasks and holds
short ones: systemd's orderly shutdown stops supervisord (the supervisor role's drop-in lets it wait), supervisord
stops the worker with TERM, and the warm shutdown lets the running tasks finish before the host goes down; the
messages the worker had reserved go back to the queue. The lab's hosts are containers: the reboot ends the
container, and the test starts it again (as the machine's firmware would). After the boot supervisord starts the
worker, which runs what was handed back. Every task completes exactly once, counted by id in the ledger.
"""

import collections
import json
import subprocess
import time

import pytest
from stack_helpers import active_ids, ledger_entries, running_pid, send_tasks, wait_completed, wait_new_pid

NODE = "celery@celery.app2"
PROGRAM = "celery-default"
LOG = "/var/log/celery/celery-default.log"
LONG_TASKS = (6, 20.0)  # count, seconds: they run when the reboot begins
SHORT_TASKS = (60, 0.5)


def docker(*args, timeout=60):
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout, check=False)


def container_state(name):
    out = docker("inspect", "--format", "{{json .State}}", name).stdout
    return json.loads(out) if out.strip() else {}


def wait_booted(name, timeout=180):
    """Wait until systemd in the container says the boot is over (running, or degraded by a unit of no concern)."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = docker("exec", name, "systemctl", "is-system-running").stdout.strip()
        if state in ("running", "degraded"):
            return
        time.sleep(1)
    raise AssertionError(f"{name} did not finish booting: {state}")


@pytest.mark.reliability(
    "systemctl reboot of app2 while its worker runs long tasks and holds short ones",
    "the running tasks finish before the host goes down, the reserved ones are handed back; the worker is back "
    "after the boot; every task completes once (0 lost, 0 duplicated), no WorkerLostError",
)
def test_a_reboot_lets_running_tasks_finish_and_loses_nothing(app2, observe):
    name = app2.ansible.get_variables().get("ansible_host", "app2")
    state = container_state(name)
    assert state.get("Running"), f"container {name} of app2 is not running"
    old_pid = running_pid(app2, PROGRAM)
    offset = int(app2.run("stat -c %%s %s", LOG).stdout.strip() or 0)
    sent = send_tasks(app2, [[LONG_TASKS[1], "celery"]] * LONG_TASKS[0] + [[SHORT_TASKS[1], "celery"]] * SHORT_TASKS[0])
    deadline = time.monotonic() + 60
    while len(active_ids(app2, NODE)) < LONG_TASKS[0]:
        assert time.monotonic() < deadline, "the long tasks never all ran on app2"
        time.sleep(1)

    began = time.time()
    app2.run("systemctl reboot")
    deadline = time.monotonic() + 600
    # Down, or already up again (a restart policy): started at another time.
    while (now := container_state(name)).get("Running") and now.get("StartedAt") == state.get("StartedAt"):
        assert time.monotonic() < deadline, "app2 did not go down"
        time.sleep(0.5)
    down = time.time()
    # A container is not restarted by its own reboot (unless a restart policy did it already).
    if not container_state(name).get("Running"):
        result = docker("start", name)
        assert result.returncode == 0, result.stderr
    wait_booted(name)
    new_pid = wait_new_pid(app2, PROGRAM, old_pid, timeout=180)
    back = time.time()

    done, _waited = wait_completed(app2, NODE, sent, 300)
    counts = collections.Counter(done)
    lost = set(sent) - set(counts)
    duplicated = [task for task, n in counts.items() if n > 1]
    long_ids = set(sent[: LONG_TASKS[0]])
    long_before_down = [e for e in ledger_entries(app2, NODE) if e["id"] in long_ids and e["ts"] <= down]
    observe(
        f"went down {down - began:.0f} s after the reboot began, worker back (pid {new_pid}) {back - began:.0f} s "
        f"after it; {len(long_before_down)}/{LONG_TASKS[0]} long tasks finished before the host went down; "
        f"sent {len(sent)}, completed {len(counts)}, lost {len(lost)}, duplicated {len(duplicated)}"
    )
    assert not lost, f"{len(lost)} of {len(sent)} tasks never completed"
    assert not duplicated, f"tasks completed more than once: {duplicated}"
    assert len(long_before_down) == LONG_TASKS[0], "a running task did not finish before the host went down"
    log = app2.run("tail -c +%s %s", str(offset + 1), LOG).stdout
    assert "WorkerLostError" not in log, log[-3000:]
