"""Green pools run their tasks concurrently under streamed traffic, not only on a backlog (issue 12).

Tasks are published one by one at a steady rate to the worker that is already running, the way production
traffic arrives: 300 tasks of 1 s to `customers` (eventlet, 256) and to `reports` (gevent, 256). From the
completion ledger's start and end time of each task, at least 100 of them ran at the same moment, every task
ran exactly once. With Celery 5.7's default AMQP heartbeat a green worker takes in about ten messages a second,
so at most about ten of these tasks overlap; the workers role turns the heartbeat off for green pools, which the
running workers' configuration shows (and the prefork worker keeps Celery's default), and warns when an
application does not read the setting.
"""

import json
import re
import time

import pytest
from stack_helpers import (
    APP,
    APP_DIR,
    ENV_FILE,
    SITE,
    VENV_PYTHON,
    WRAPPER,
    ledger_entries,
    run_playbook,
    worker_lists,
)

TASKS = 300
TASK_SECONDS = 1.0
PUBLISH_RATE = 400.0  # tasks per second
MIN_OVERLAP = 100

# Runs on app1 with the workers' environment: publishes argv[2] tasks argv[1] (by name, so the project's router
# picks the queue) of argv[3] seconds, one by one at argv[4] per second; prints their ids as one JSON list.
STREAM = """
import json, sys, time
from myproject.celery_config import app
name, count, seconds, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
ids = []
with app.producer_or_acquire() as producer:
    first = time.monotonic()
    for index in range(count):
        pause = first + index / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        ids.append(app.send_task(name, args=(seconds,), producer=producer, ignore_result=True).id)
print(json.dumps(ids))
"""


def max_overlap(intervals):
    """The largest number of (start, end) intervals open at one moment (an end before a start at a tie)."""
    edges = sorted([(end, -1) for _start, end in intervals] + [(start, 1) for start, _end in intervals])
    running = best = 0
    for _moment, step in edges:
        running += step
        best = max(best, running)
    return best


def test_max_overlap_counts_intervals_open_together():
    assert max_overlap([]) == 0
    assert max_overlap([(0, 1), (1, 2)]) == 1
    assert max_overlap([(0, 3), (1, 2), (1.5, 4), (5, 6)]) == 3


def stream(host, task):
    script = f'set -a; . {ENV_FILE}; set +a; cd {APP_DIR}; exec {VENV_PYTHON} -c "$0" "$@"'
    cmd = host.run("sh -c %s %s %s %s %s %s", script, STREAM, task, str(TASKS), str(TASK_SECONDS), str(PUBLISH_RATE))
    assert cmd.rc == 0, cmd.stderr[-3000:]
    return json.loads(cmd.stdout.strip().splitlines()[-1])


def wait_for(host, node, ids, timeout):
    """The ledger entries of the given ids once all are there (or the timeout passed), plus 2 s for late ones."""
    deadline = time.monotonic() + timeout
    wanted = set(ids)
    while time.monotonic() < deadline and not wanted <= {entry["id"] for entry in ledger_entries(host, node)}:
        time.sleep(1)
    time.sleep(2)
    return [entry for entry in ledger_entries(host, node) if entry["id"] in wanted]


@pytest.mark.parametrize(
    ("task", "node"),
    [("customers.sleep", "celery@customers.app1"), ("reports.sleep", "celery@reports.app1")],
    ids=["eventlet", "gevent"],
)
def test_streamed_tasks_run_concurrently_on_the_running_green_worker(app1, task, node):
    with app1.sudo():
        ids = stream(app1, task)
        # Throttled (about ten tasks a second) the stream needs about 30 s; running together, about 2 s.
        entries = wait_for(app1, node, ids, timeout=120)
    done = [entry["id"] for entry in entries]
    assert len(done) == len(set(done)), f"{len(done) - len(set(done))} tasks ran twice"
    assert set(done) == set(ids), f"{len(set(ids) - set(done))} of {len(ids)} tasks did not complete on {node}"
    overlap = max_overlap([(entry["start"], entry["ts"]) for entry in entries])
    span = max(entry["ts"] for entry in entries) - min(entry["start"] for entry in entries)
    assert overlap >= MIN_OVERLAP, (
        f"{node}: at most {overlap} of {TASKS} streamed {TASK_SECONDS:g} s tasks ran at the same moment "
        f"(goal >= {MIN_OVERLAP}); they took {span:.1f} s from the first start to the last end"
    )


@pytest.mark.parametrize(
    ("node", "heartbeat"),
    [("celery@customers.app1", 0), ("celery@reports.app1", 0), ("celery@celery.app2", 120)],
)
def test_running_workers_use_the_heartbeat_of_their_pool(app1, node, heartbeat):
    with app1.sudo():
        cmd = app1.run("%s --app=%s inspect conf --destination=%s --timeout=10 --json", WRAPPER, APP, node)
    assert cmd.rc == 0, cmd.stdout + cmd.stderr
    conf = json.loads(cmd.stdout.strip().splitlines()[-1])[node]
    assert conf["CELERY_BROKER_HEARTBEAT"] == heartbeat


def _converge_app1_workers(inventory, reports_concurrency, tmp_path):
    """site.yml's workers stage on app1 with the `reports` worker at another concurrency (its program changes)."""
    lists = worker_lists(inventory)
    workers = [dict(worker, concurrency=reports_concurrency) if worker["name"] == "reports" else worker
               for worker in lists["app1"]]  # fmt: skip
    override = tmp_path / f"reports-{reports_concurrency}.json"
    override.write_text(json.dumps({"workers_celery_workers": workers}))
    out = run_playbook(inventory, SITE, "--limit", "app1", "--tags", "workers", extra_vars=override).stdout
    return re.sub(r"\x1b\[[0-9;]*m", "", out)


def test_the_role_warns_when_the_application_ignores_the_heartbeat(app1, inventory, tmp_path):
    """A re-applied green worker is asked for the heartbeat it runs with: no warning with the example project's
    settings, a warning naming the node once its settings stop reading CELERY_BROKER_HEARTBEAT."""
    settings = f"{APP_DIR}/myproject/settings.py"
    warning = "celery@reports.app1 (gevent) runs with AMQP heartbeat 120, not 0"
    concurrency = next(w["concurrency"] for w in worker_lists(inventory)["app1"] if w["name"] == "reports")
    with app1.sudo():
        original = app1.file(settings).content_string
    try:
        out = _converge_app1_workers(inventory, concurrency - 1, tmp_path)
        assert "Read the AMQP heartbeat the green worker runs with, celery-reports" in out, out[-3000:]
        assert "WARNING: celery@reports.app1" not in out, out[-3000:]
        with app1.sudo():
            app1.run_test("sed -i %s %s", r"s/^CELERY_BROKER_HEARTBEAT = .*/CELERY_BROKER_HEARTBEAT = 120/", settings)
        out = _converge_app1_workers(inventory, concurrency - 2, tmp_path)
        assert warning in out, out[-3000:]
    finally:
        with app1.sudo():
            app1.run_test("printf '%%s' %s > %s", original, settings)
        _converge_app1_workers(inventory, concurrency, tmp_path)
