"""Graceful, rolling restarts lose no task: playbooks/restart_workers.yml under load, and Flower's way.

A queue served by two hosts shows what a rolling restart is for, so the module first converges an extra worker
`shared` (queue `shared`, prefork on both app1 and app2) and removes it again at the end. Under about 500 tasks
in flight, `restart_workers.yml -e queues=shared` restarts `celery-shared` host by host; then every task sent is
in the completion ledgers exactly once, no worker reports a lost task, both main PIDs changed and the other
workers were left alone. A saturated prefork worker (every process busy with a long task, short tasks received
behind them) hands the short ones back during the quiesce, so its warm shutdown begins while the long tasks still
run. Flower's shutdown API stops a worker warmly and supervisor brings it back. A restart request for a queue
nobody serves fails before any worker is touched.
"""

import json
import re
import subprocess
import threading
import time

import pytest
from stack_helpers import (
    APP,
    FLOWER_URL,
    LEDGER_DIR,
    PROJECT,
    SITE,
    WRAPPER,
    ansible_env,
    handover_node,
    http_from,
    ledger_entries,
    run_playbook,
    running_pid,
    send_tasks,
    wait_completed,
    wait_new_pid,
    worker_lists,
)

RESTART = PROJECT / "playbooks" / "restart_workers.yml"

LOG_DIR = "/var/log/celery"

SHARED_QUEUE = "shared"
SHARED_PROGRAM = "celery-shared"
SHARED_WORKER = {"name": "shared", "queues": [SHARED_QUEUE], "pool": "prefork", "concurrency": 4, "startsecs": 5}
SHORT_TASKS = (450, 0.2)  # count, seconds
LONG_TASKS = (60, 5.0)
CUSTOMERS_NODE = "celery@customers.app1"


def converge_workers(inventory, extra_vars=None):
    """Apply the worker list: the role's preflight and service stages are all a new program needs (the code,
    virtualenv and environment file are in place already), which keeps this test within its time budget."""
    run_playbook(
        inventory, SITE, "--limit", "workers", "--tags", "workers_preflight,workers_service", extra_vars=extra_vars
    )


def ping(host, node, timeout=5):
    cmd = host.run("%s --app=%s inspect ping --destination=%s --timeout=%s --json", WRAPPER, APP, node, str(timeout))
    return cmd.rc == 0 and node in cmd.stdout and "pong" in cmd.stdout


def wait_ping(host, node, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(host, node):
            return
        time.sleep(2)
    pytest.fail(f"{node} does not answer a ping after {timeout} s")


def ledger_ids(host, node):
    return [entry["id"] for entry in ledger_entries(host, node)]


def log_size(host, program):
    out = host.run("stat -c %%s %s/%s.log 2>/dev/null || echo 0", LOG_DIR, program).stdout.strip()
    return int(out or 0)


def log_since(host, program, offset):
    return host.run("tail -c +%s %s/%s.log", str(offset + 1), LOG_DIR, program).stdout


def mixed_plan():
    """Short and long tasks interleaved, so that long ones are running whenever a drain begins."""
    short_count, short_seconds = SHORT_TASKS
    long_count, long_seconds = LONG_TASKS
    plan = []
    every = max(1, short_count // long_count)
    longs = 0
    for index in range(short_count):
        if index % every == 0 and longs < long_count:
            plan.append([long_seconds, SHARED_QUEUE])
            longs += 1
        plan.append([short_seconds, SHARED_QUEUE])
    plan.extend([long_seconds, SHARED_QUEUE] for _extra in range(long_count - longs))
    return plan


def summary_rows(stdout):
    """(host, program, pid, new pid, drained, seconds) rows of the playbook's summary table."""
    pattern = re.compile(r"\b(app\d)\s+(celery-[\w-]+)\s+(\d+|None)\s+(\d+|None)\s+(\d+|None)\s+([\d.]+)\b")
    return [match.groups() for match in pattern.finditer(stdout)]


@pytest.fixture(scope="module")
def programs(app1, app2):
    """The lab's normal programs and their hosts."""
    return {"app1": (app1, "celery-customers"), "app2": (app2, "celery-default")}


def normal_pids(programs):
    return {name: running_pid(host, program) for name, (host, program) in programs.items()}


@pytest.fixture(scope="module")
def shared_worker(inventory, app1, app2, tmp_path_factory):
    """Converge the extra worker `shared` on app1 and app2; converge back without it afterwards.

    Yields the extra-vars file that declares it: the restart playbook selects programs from the declared
    worker lists, so it gets the same file."""
    lists = worker_lists(inventory)
    override = tmp_path_factory.mktemp("restart") / "shared.json"
    override.write_text(
        json.dumps(
            {
                "celeryops_test_workers": {name: workers + [SHARED_WORKER] for name, workers in lists.items()},
                "workers_celery_workers": "{{ celeryops_test_workers[inventory_hostname] }}",
            }
        )
    )
    try:
        converge_workers(inventory, override)
        for host in (app1, app2):
            assert running_pid(host, SHARED_PROGRAM), host.run("supervisorctl status").stdout
            # A fresh ledger per run: every line in it must come from this test.
            host.run("rm -f %s/celery@shared[.-]*.jsonl", LEDGER_DIR)
        yield override
    finally:
        converge_workers(inventory)
        for host in (app1, app2):
            assert "celery-shared" not in host.run("supervisorctl status").stdout


def test_unknown_queue_fails_in_the_first_play_and_changes_nothing(inventory, programs):
    before = normal_pids(programs)
    result = run_playbook(inventory, RESTART, "-e", "queues=nosuchqueue", timeout=300, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "queues=nosuchqueue" in output
    assert "PLAY [Restart the Celery workers gracefully" not in output
    assert "TASK [Restart the selected workers" not in output
    assert normal_pids(programs) == before


@pytest.mark.reliability(
    "restart_workers.yml restarts a queue served by app1 and app2 while 510 tasks are in flight",
    "one host at a time, quiesce and warm shutdown; 0 lost, 0 duplicated; other workers untouched",
)
def test_rolling_restart_under_load_loses_no_task(inventory, app1, app2, programs, shared_worker, observe):
    hosts = {"app1": app1, "app2": app2}
    nodes = {name: f"celery@{SHARED_QUEUE}.{name}" for name in hosts}
    pids_before = {name: running_pid(host, SHARED_PROGRAM) for name, host in hosts.items()}
    others_before = normal_pids(programs)
    offsets = {name: log_size(host, SHARED_PROGRAM) for name, host in hosts.items()}

    plan = mixed_plan()
    sent = send_tasks(app1, plan)
    assert len(sent) == len(plan) >= 500
    assert len(set(sent)) == len(sent)

    restart = run_playbook(inventory, RESTART, "-e", f"queues={SHARED_QUEUE}", extra_vars=shared_worker, timeout=900)

    # Wait until every task is in a ledger, then a little longer so that a late duplicate would show.
    deadline = time.monotonic() + 150
    while True:
        done = [task for name, host in hosts.items() for task in ledger_ids(host, nodes[name])]
        if len(set(done) & set(sent)) == len(sent) or time.monotonic() > deadline:
            break
        time.sleep(3)
    time.sleep(3)
    done = {name: ledger_ids(host, nodes[name]) for name, host in hosts.items()}
    every = done["app1"] + done["app2"]
    counts = {}
    for task in every:
        counts[task] = counts.get(task, 0) + 1
    missing = set(sent) - set(counts)
    duplicated = {task: n for task, n in counts.items() if n > 1}
    unknown = set(counts) - set(sent)
    summary = (
        f"sent {len(sent)}, completed {len(counts)} "
        f"(app1 {len(done['app1'])}, app2 {len(done['app2'])}), duplicated {len(duplicated)}, "
        f"unknown {len(unknown)}, missing {len(missing)}"
    )
    print(summary)
    assert not missing, f"{len(missing)} of {len(sent)} tasks never completed"
    assert not duplicated, f"{len(duplicated)} tasks completed more than once"
    assert not unknown, f"{len(unknown)} ledger entries are not tasks this test sent"
    assert len(every) == len(sent)

    for name, host in hosts.items():
        log = log_since(host, SHARED_PROGRAM, offsets[name])
        assert "WorkerLostError" not in log, f"{name}: a task was lost:\n{log[-3000:]}"
        # A prefork worker is quiesced before its warm shutdown: it stops consuming, then starts what it had.
        assert f"Canceling queue {SHARED_QUEUE}" in log, f"{name}: no quiesce before the shutdown:\n{log[-3000:]}"

    pids_after = {name: running_pid(host, SHARED_PROGRAM) for name, host in hosts.items()}
    for name in hosts:
        assert pids_after[name], (name, pids_after)
        assert pids_after[name] != pids_before[name], (name, pids_before, pids_after)
    assert normal_pids(programs) == others_before, "only the workers of queue shared may restart"

    rows = summary_rows(restart.stdout)
    print("\n".join(" ".join(row) for row in rows))
    assert {(row[0], row[1]) for row in rows} == {("app1", SHARED_PROGRAM), ("app2", SHARED_PROGRAM)}, restart.stdout
    for host_name, _program, pid, new_pid, _drained, _seconds in rows:
        assert int(pid) == pids_before[host_name]
        assert int(new_pid) == pids_after[host_name]
    drained = [int(row[4]) for row in rows if row[4] != "None"]
    assert drained, f"no drain reported its running tasks: {rows}"
    assert max(drained) > 0, f"no drain had running tasks: {rows}"
    observe(f"{summary}; running tasks at each drain: {', '.join(map(str, drained))}")


def run_module(inventory, host, module, args):
    """One ad-hoc module run from the controller; its result (the JSON callback's)."""
    env = {**ansible_env(), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    result = subprocess.run(
        ["ansible", host, "-i", str(inventory), "-m", module, "-a", json.dumps(args)],
        cwd=PROJECT, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    return json.loads(result.stdout)["plays"][0]["tasks"][0]["hosts"][host]


def listed(host, action, node):
    cmd = host.run("%s --app=%s inspect %s --destination=%s --timeout=5 --json", WRAPPER, APP, action, node)
    replies = json.loads(cmd.stdout) if cmd.rc == 0 and cmd.stdout.strip() else {}
    if isinstance(replies, list):
        replies = {name: reply for item in replies for name, reply in item.items()}
    return replies.get(node) or []


@pytest.mark.reliability(
    "restart of a saturated prefork worker (4 x 20 s tasks running, short tasks received behind them)",
    "the waiting tasks are handed back at once; the warm shutdown begins while the long tasks run; 0 lost, 0 "
    "duplicated",
)
def test_saturated_prefork_worker_hands_back_what_it_could_not_start(inventory, app1, app2, shared_worker, observe):
    """Every process busy with a long task, short ones received behind them: the restart's quiesce hands the
    short ones back at once instead of waiting for a process to free up, the warm shutdown begins while the long
    tasks still run, and every task completes exactly once."""
    hosts = {"app1": app1, "app2": app2}
    nodes = {name: f"celery@{SHARED_QUEUE}.{name}" for name in hosts}
    concurrency = SHARED_WORKER["concurrency"]
    plan = [[20.0, SHARED_QUEUE]] * (2 * concurrency) + [[0.2, SHARED_QUEUE]] * 60
    sent = send_tasks(app1, plan)
    deadline = time.monotonic() + 60
    while not (len(listed(app2, "active", nodes["app2"])) == concurrency and listed(app2, "reserved", nodes["app2"])):
        assert time.monotonic() < deadline, "app2's shared worker never ran a full pool with tasks waiting behind it"
        time.sleep(1)
    offset = log_size(app2, SHARED_PROGRAM)

    result = run_module(
        inventory,
        "app2",
        "celeryops.stack.celery_worker",
        {"name": SHARED_PROGRAM, "state": "restarted", "quiesce_timeout": 120, "timeout": 300, "overlap": False},
    )
    (item,) = result["programs"]
    print(json.dumps({key: item[key] for key in ("quiesce_seconds", "handed_back", "drain_seconds", "shutdown")}))
    assert item["handed_back"], f"nothing handed back: {item}"
    assert set(item["handed_back"]) <= set(sent)
    assert item["shutdown"] == "warm"
    assert item["quiesce_seconds"] < 120

    deadline = time.monotonic() + 150
    while True:
        done = [task for name, host in hosts.items() for task in ledger_ids(host, nodes[name]) if task in set(sent)]
        if set(done) == set(sent) or time.monotonic() > deadline:
            break
        time.sleep(3)
    time.sleep(3)
    done = [task for name, host in hosts.items() for task in ledger_ids(host, nodes[name]) if task in set(sent)]
    missing = set(sent) - set(done)
    duplicated = sorted({task for task in done if done.count(task) > 1})
    assert not missing, f"{len(missing)} of {len(sent)} tasks never completed"
    assert not duplicated, f"{len(duplicated)} tasks completed more than once: {duplicated}"

    log = log_since(app2, SHARED_PROGRAM, offset)
    assert "WorkerLostError" not in log, log[-3000:]
    handed = log.find("Handed back")
    shutdown = log.find("Warm shutdown")
    first_long = re.search(r"Task core\.sleep\[[^\]]+\] succeeded in (?:19|2\d)\.\d+s", log)
    assert 0 <= handed < shutdown, f"no hand-back before the warm shutdown:\n{log[-3000:]}"
    assert first_long, f"app2's long tasks did not finish on the old process:\n{log[-3000:]}"
    assert shutdown < first_long.start(), f"the warm shutdown waited for a long task:\n{log[-3000:]}"
    observe(
        f"{len(item['handed_back'])} tasks handed back, quiesce {item['quiesce_seconds']} s, drain "
        f"{item['drain_seconds']} s; {len(sent)} sent, 0 lost, 0 duplicated"
    )


DEFAULT_PROGRAM = "celery-default"
DEFAULT_NODE = "celery@celery.app2"
CUSTOMERS_PROGRAM = "celery-customers"


def stream(host, queue, stop, sent, every=0.5):
    """Send a short task to ``queue`` from ``host`` about every ``every`` seconds until ``stop`` is set."""
    while not stop.is_set():
        sent.extend(send_tasks(host, [[0.1, queue]]))
        stop.wait(every)


def overlapping_restart(inventory, host, name, program, node, queue, observe, longs=8):
    """``longs`` tasks of 20 s running on ``node``, short tasks streaming into ``queue``: the module restarts
    ``program`` with its handover; checks and reports what the ledgers show."""
    long_ids = send_tasks(host, [[20.0, queue]] * longs)
    deadline = time.monotonic() + 60
    while set(long_ids) - {task["id"] for task in listed(host, "active", node)}:
        assert time.monotonic() < deadline, f"{node} never ran the {longs} long tasks at once"
        time.sleep(0.5)
    old_pid = running_pid(host, program)
    stop, short_ids = threading.Event(), []
    sender = threading.Thread(target=stream, args=(host, queue, stop, short_ids), daemon=True)
    sender.start()
    time.sleep(2)
    began = time.time()
    try:
        result = run_module(inventory, name, "celeryops.stack.celery_worker", {"name": program, "state": "restarted"})
        time.sleep(3)
    finally:
        stop.set()
        sender.join(30)
    (item,) = result["programs"]
    handover = item["handover"]
    print(json.dumps(item))
    assert handover, item
    assert handover["name"] == program + "-handover", item
    assert (item["shutdown"], handover["shutdown"]) == ("warm", "warm"), item
    assert item["pid_before"] == old_pid, item
    assert item["pid_after"] not in (None, old_pid), item
    assert "STOPPED" in host.run("supervisorctl status %s", handover["name"]).stdout

    sent = long_ids + short_ids
    done, _waited = wait_completed(host, node, sent, timeout=120)
    missing = set(sent) - set(done)
    duplicated = sorted({task for task in done if done.count(task) > 1})
    assert not missing, f"{len(missing)} of {len(sent)} tasks never completed"
    assert not duplicated, f"{len(duplicated)} tasks completed more than once: {duplicated}"

    entries = {entry["id"]: entry for entry in ledger_entries(host, node) if entry["id"] in set(sent)}
    ended = [entries[task] for task in long_ids]
    # The long tasks ran to their end on the old process, under its own node name.
    assert all(entry["loaded"] < began and entry["node"] == node for entry in ended), ended
    new_code = sorted(entry["start"] for entry in entries.values() if entry["loaded"] > began)
    on_handover = [entry for entry in entries.values() if entry["node"] == handover_node(node)]
    assert on_handover, "the handover ran no task"
    assert new_code, "no task ran on the new code"
    first_new = new_code[0] - began
    # No stall: the queue was served by the new code while every long task still ran on the old one.
    assert new_code[0] < min(entry["ts"] for entry in ended), (first_new, ended)
    # How soon after the handover's boot is measured by bench/overlap_bench.py, not asserted here (noisy hosts).
    observe(
        f"handover booted in {handover['boot_seconds']} s; first new-code task started {first_new:.1f} s after the "
        f"request; the {longs} long tasks ended {min(e['ts'] for e in ended) - began:.1f}-"
        f"{max(e['ts'] for e in ended) - began:.1f} s after it on the old process; {len(on_handover)} tasks on the "
        f"handover; {len(sent)} sent, 0 lost, 0 duplicated"
    )


@pytest.mark.reliability(
    "restart of app2's only `celery` worker (prefork 8) while 8 x 20 s tasks run and short tasks stream in "
    "(overlap, the default)",
    "its handover, started first, runs the short tasks on the new code while the old process finishes the long "
    "ones; a new-code task starts before any long task ends; 0 lost, 0 duplicated",
)
def test_overlapping_restart_keeps_the_queue_consumed(inventory, app2, observe):
    overlapping_restart(inventory, app2, "app2", DEFAULT_PROGRAM, DEFAULT_NODE, "celery", observe)


@pytest.mark.reliability(
    "restart of app1's `customers` worker (eventlet) while 8 x 20 s tasks run and short tasks stream in (overlap)",
    "the same with a green pool: new code runs before any long task ends, the long ones end on the old process; "
    "0 lost, 0 duplicated",
)
def test_overlapping_restart_of_a_green_worker(inventory, app1, observe):
    overlapping_restart(inventory, app1, "app1", CUSTOMERS_PROGRAM, CUSTOMERS_NODE, "customers", observe)


def test_flower_shutdown_brings_the_worker_back(app1, app2, flower_auth):
    old = running_pid(app1, "celery-customers")
    assert old
    answer = http_from(app2, f"{FLOWER_URL}/api/worker/shutdown/{CUSTOMERS_NODE}", "POST", flower_auth, 30)
    assert answer["status"] == 200, answer
    new = wait_new_pid(app1, "celery-customers", old)
    assert new != old
    wait_ping(app1, CUSTOMERS_NODE)
