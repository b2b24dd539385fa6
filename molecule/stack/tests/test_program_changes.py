"""Every way a converge stops a worker goes through the quiesce and loses or repeats no task (issue 13).

A prefork worker `changes` (queue `changes`) runs on app1 and app2. While app1 publishes long and short tasks to
both, batch after batch for as long as the converge runs (as an application keeps publishing during a deploy),
`site.yml --limit app2` changes the worker's concurrency (twice), `site.yml` changes supervisord.conf
on both app hosts (and back: supervisord restarts one host at a time), and finally `site.yml --limit app2` removes
the worker from app2 (twice: it is declared again in between). After each round every
task sent is in the completion ledgers exactly once, app2's worker log shows the quiesce (`Canceling queue
changes`) followed by tasks that finished during the warm shutdown, and the worker runs as declared (or is gone).
"""

import json
import re
import threading
import time

import pytest
from stack_helpers import (
    SITE,
    ledger_entries,
    run_playbook,
    running_pid,
    send_tasks,
    worker_lists,
)

QUEUE = "changes"
PROGRAM = "celery-changes"
WORKER = {"name": "changes", "queues": [QUEUE], "pool": "prefork", "concurrency": 4, "startsecs": 3}
LOG = f"/var/log/celery/{PROGRAM}.log"
# One batch: 14 s of work, 10 s of it in two long tasks, so that one nearly always runs. A batch leaves every 4-5 s
# (3 s of pause, the rest publishing) for as long as the converge runs, and the first one before it starts: tasks
# run whenever the converge reaches the program, however long it takes to get there. That keeps under half of the two
# workers' 8 processes busy, and under 80 % of the 4 left while one stops: no backlog for the test's end to drain.
LONG_TASKS = (2, 5.0)  # count, seconds
SHORT_TASKS = (20, 0.2)
BATCH_PAUSE = 3.0  # seconds between the end of one batch's publishing and the next


def plan():
    """One batch: long tasks spread among the short ones, so that long ones run whenever a worker stops."""
    long_count, long_seconds = LONG_TASKS
    short_count, short_seconds = SHORT_TASKS
    every = short_count // long_count
    tasks = []
    for index in range(short_count):
        if index % every == 0:
            tasks.append([long_seconds, QUEUE])
        tasks.append([short_seconds, QUEUE])
    return tasks


class Publisher:
    """Publishes a batch from ``host``, then one every BATCH_PAUSE seconds in a thread until stopped; ``sent`` holds
    every task id sent."""

    def __init__(self, host):
        self.host = host
        self.sent = []
        self.failure = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _publish(self):
        batch = send_tasks(self.host, plan())
        assert len(set(batch)) == len(batch) == LONG_TASKS[0] + SHORT_TASKS[0]
        self.sent.extend(batch)

    def _run(self):
        try:
            while not self._stop.wait(BATCH_PAUSE):
                self._publish()
        except Exception as error:  # noqa: BLE001 - reported by stop(), in the test's thread
            self.failure = error

    def __enter__(self):
        self._publish()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        if self.failure is not None and exc[0] is None:
            raise AssertionError(f"publishing stopped with {self.failure!r}") from self.failure
        return False


def restart_window(host):
    """(left active, active again) of supervisord's last restart, in the kernel's monotonic microseconds (one clock
    for every lab host: they share the kernel)."""
    out = host.check_output(
        "systemctl show supervisor --property=ActiveExitTimestampMonotonic --property=ActiveEnterTimestampMonotonic"
    )
    values = dict(line.split("=", 1) for line in out.splitlines())
    return int(values["ActiveExitTimestampMonotonic"]), int(values["ActiveEnterTimestampMonotonic"])


def log_size(host):
    return int(host.run("stat -c %%s %s 2>/dev/null || echo 0", LOG).stdout.strip() or 0)


def log_since(host, offset):
    return host.run("tail -c +%s %s", str(offset + 1), LOG).stdout


def main_cmdline(host):
    pid = running_pid(host, PROGRAM)
    assert pid, host.run("supervisorctl status").stdout
    return host.run("tr '\\0' ' ' < /proc/%s/cmdline", str(pid)).stdout


class Stack:
    """The lab with the extra worker: writes the extra-vars file of each round and runs site.yml with it."""

    def __init__(self, inventory, app1, app2, directory):
        self.inventory = inventory
        self.hosts = {"app1": app1, "app2": app2}
        self.lists = worker_lists(inventory)
        self.directory = directory
        self.rounds = 0
        self.summary = ""

    def converge(self, *args, app2_worker=None, on_app2=True, with_worker=True, extra=None):
        """site.yml with `changes` on app1 (as WORKER) and on app2 (as app2_worker or WORKER, unless not on_app2)."""
        self.rounds += 1
        workers = {
            "app1": self.lists["app1"] + ([WORKER] if with_worker else []),
            "app2": self.lists["app2"] + ([app2_worker or WORKER] if with_worker and on_app2 else []),
        }
        variables = {
            "celeryops_test_workers": workers,
            "workers_celery_workers": "{{ celeryops_test_workers[inventory_hostname] }}",
            **(extra or {}),
        }
        path = self.directory / f"round{self.rounds}.json"
        path.write_text(json.dumps(variables))
        return run_playbook(self.inventory, SITE, *args, extra_vars=path, timeout=900)

    def under_load(self, *args, limit="app2", quiesced=("app2",), **kwargs):
        """Converge `limit` while tasks are published, wait for every task sent; returns app2's log of it.

        Each host of ``quiesced`` must have quiesced its worker, and one of them while tasks ran: when the converge
        goes host by host, the stream may be over before it reaches the last one."""
        offsets = {name: log_size(self.hosts[name]) for name in quiesced}
        for host in self.hosts.values():
            host.run("rm -f /var/lib/celery/ledger/celery@%s.*.jsonl", QUEUE)
        with Publisher(self.hosts["app1"]) as publisher:
            self.converge("--limit", limit, *args, **kwargs)
        sent = publisher.sent
        counts = self.wait_done(sent)
        missing = set(sent) - set(counts)
        duplicated = {task: n for task, n in counts.items() if n > 1}
        unknown = set(counts) - set(sent)
        self.summary = (
            f"sent {len(sent)}, completed {len(counts)}, lost {len(missing)}, duplicated {len(duplicated)}, "
            f"unknown {len(unknown)}"
        )
        print(self.summary)
        assert not missing, f"{len(missing)} of {len(sent)} tasks never completed"
        assert not duplicated, f"{len(duplicated)} tasks completed more than once: {duplicated}"
        assert not unknown, f"{len(unknown)} ledger entries are not tasks of this round"
        logs = {name: log_since(self.hosts[name], offset) for name, offset in offsets.items()}
        for name, log in logs.items():
            assert "WorkerLostError" not in log, f"{name}:\n{log[-3000:]}"
            assert f"Canceling queue {QUEUE}" in log, f"{name}: no quiesce:\n{log[-3000:]}"
        # The quiesce, then tasks that were running when it began finishing during the warm shutdown.
        under_load = [name for name, log in logs.items() if re.search(rf"Canceling queue {QUEUE}[\s\S]*succeeded", log)]
        assert under_load, "no quiesce under load:\n" + "\n".join(f"{n}:\n{log[-2000:]}" for n, log in logs.items())
        return logs.get("app2")

    def wait_done(self, sent, timeout=240):
        """Task id -> completions, once every task sent completed (and a little longer, for late duplicates)."""
        deadline = time.monotonic() + timeout
        while True:
            done = [
                entry["id"]
                for name, host in self.hosts.items()
                for entry in ledger_entries(host, f"celery@{QUEUE}.{name}")
            ]
            if set(sent) <= set(done) or time.monotonic() > deadline:
                break
            time.sleep(3)
        time.sleep(3)
        counts = {}
        for name, host in self.hosts.items():
            for entry in ledger_entries(host, f"celery@{QUEUE}.{name}"):
                counts[entry["id"]] = counts.get(entry["id"], 0) + 1
        return counts


@pytest.fixture(scope="module")
def stack(inventory, app1, app2, tmp_path_factory):
    """The worker `changes` on app1 and app2 for the module's tests; the lab as declared again afterwards."""
    lab = Stack(inventory, app1, app2, tmp_path_factory.mktemp("changes"))
    try:
        lab.converge("--limit", "workers", "--tags", "workers_preflight,workers_service")
        for host in lab.hosts.values():
            assert running_pid(host, PROGRAM), host.run("supervisorctl status").stdout
        yield lab
    finally:
        lab.converge("--limit", "workers", "--tags", "workers_preflight,workers_service", with_worker=False)
        for host in lab.hosts.values():
            assert PROGRAM not in host.run("supervisorctl status").stdout


@pytest.mark.parametrize("concurrency", [3, 4])
@pytest.mark.reliability(
    "site.yml changes a worker's concurrency on app2 while tasks are published throughout",
    "quiesce and warm shutdown first, then the new settings; 0 lost, 0 duplicated, no WorkerLostError",
)
def test_a_settings_change_drains_the_worker_first(stack, concurrency, observe):
    before = running_pid(stack.hosts["app2"], PROGRAM)
    stack.under_load(app2_worker={**WORKER, "concurrency": concurrency})
    assert running_pid(stack.hosts["app2"], PROGRAM) != before
    assert f"--concurrency={concurrency}" in main_cmdline(stack.hosts["app2"])
    observe(f"concurrency {concurrency}: {stack.summary}")


@pytest.mark.parametrize("loglevel", ["debug", "info"])
@pytest.mark.reliability(
    "site.yml changes supervisord.conf on both app hosts (supervisord restarts) while tasks are published throughout",
    "every worker quiesced and stopped warm before supervisord restarts, one host at a time (the two restarts do "
    "not overlap); 0 lost, 0 duplicated",
)
def test_a_supervisord_restart_drains_the_workers_first(stack, loglevel, observe):
    before = {name: running_pid(host, PROGRAM) for name, host in stack.hosts.items()}
    stack.under_load(limit="workers", quiesced=("app1", "app2"), extra={"supervisor_loglevel": loglevel})
    windows = {}
    for name, host in stack.hosts.items():
        assert f"loglevel={loglevel}" in host.file("/etc/supervisor/supervisord.conf").content_string
        # The module stopped the worker (quiesce, warm shutdown) before supervisord's own shutdown; under_load saw
        # that in app2's worker log.
        assert running_pid(host, PROGRAM) != before[name], name
        windows[name] = restart_window(host)
    (first, first_window), (second, second_window) = sorted(windows.items(), key=lambda item: item[1])
    gap = (second_window[0] - first_window[1]) / 1e6
    observe(f"loglevel {loglevel}: {stack.summary}; {second}'s supervisord stopped {gap:.1f} s after {first}'s was up")
    assert first_window[0] < first_window[1], windows
    assert gap > 0, f"supervisord restarts overlapped: {windows}"


@pytest.mark.parametrize("attempt", [1, 2])
@pytest.mark.reliability(
    "site.yml removes a worker from app2 while tasks are published throughout",
    "the worker is quiesced and stopped warm, then removed; 0 lost, 0 duplicated",
)
def test_removing_the_worker_drains_it_first(stack, attempt, observe):
    app2 = stack.hosts["app2"]
    if not running_pid(app2, PROGRAM):
        # Declared again after the previous attempt removed it.
        stack.converge("--limit", "app2", "--tags", "workers_preflight,workers_service")
    assert running_pid(app2, PROGRAM), f"attempt {attempt}: {PROGRAM} does not run before its removal"
    stack.under_load(on_app2=False)
    assert PROGRAM not in app2.run("supervisorctl status").stdout
    assert not app2.file(f"/etc/supervisor/conf.d/{PROGRAM}.conf").exists
    observe(f"attempt {attempt}: {stack.summary}")
