"""Pool benchmark, run ON an app host with the workers role's virtualenv: green pool versus prefork.

Starts throwaway Celery workers on queues of their own (never the application's queues), with the versions
the role pinned, the role's wrapper and environment file, as the worker user:

- throughput: N tasks that each sleep D seconds, on eventlet at concurrency 100 and on prefork at
  concurrency 2, measured in one run; each task is counted by id in the completion ledger;
- memory: total RSS (main process + children) of eventlet at concurrency 256 and prefork at concurrency 8,
  at rest and at the peak under load.

Throughput is timed from the moment the worker starts consuming a queue that already holds every message
(the consumer is cancelled while the messages are published, the broker is asked until its queue holds them
all, then the consumer is added again), to the last completion in the ledger: neither the worker's boot, nor
the publishing speed of this client, nor the broker's time to take the messages in is in the number.

The wrapper loads the environment file itself (`set -a; . worker.env`), so a CELERYOPS_LEDGER_DIR set there
wins over the one this script passes; the ledger of a throwaway worker is then `<that dir>/<node>.jsonl`,
a file of its own (the node name is unique), which is removed afterwards.

Prints one JSON document. Usage (as root, from the application directory):
    /opt/celery/venv/bin/python pool_bench.py --env-file /etc/celery/worker.env \
        --wrapper /opt/celery/bin/celery-run --app myproject.celery_config:app --user celery
"""

import argparse
import contextlib
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid


def read_env_file(path):
    """KEY=VALUE lines of the workers' environment file, as the wrapper's `set -a; . file` reads them."""
    values = {}
    for raw in pathlib.Path(path).read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def debian_release():
    """The host's Debian release, e.g. "12.13 (bookworm)"."""
    try:
        version = pathlib.Path("/etc/debian_version").read_text(encoding="utf-8").strip()
        os_release = read_env_file("/etc/os-release")
    except OSError:
        return "unknown"
    return f"{version} ({os_release.get('VERSION_CODENAME', '?')})"


def descendants(pid):
    """pid and every process below it."""
    children = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def rss_kib(pids):
    total = 0
    for pid in pids:
        try:
            for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def cpu_seconds(pids):
    """User + system CPU time of the processes, in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def ledger_lines(path):
    """How many complete lines a ledger file has (cheap enough to poll often)."""
    try:
        return pathlib.Path(path).read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def ledger_entries(path):
    """Complete lines of one ledger file (a line still being written has no newline yet and is skipped)."""
    try:
        text = pathlib.Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


class BenchWorker:
    """One throwaway worker on its own queue, started as the worker user through the role's wrapper."""

    def __init__(self, args, pool, concurrency, scratch):
        self.pool, self.concurrency = pool, concurrency
        self.queue = f"bench-{pool}-{concurrency}-{uuid.uuid4().hex[:8]}"
        self.node = f"{self.queue}@{os.uname().nodename}"
        ledger_dir = args.effective_ledger_dir or scratch
        self.ledger = pathlib.Path(ledger_dir) / f"{self.node}.jsonl"
        self.log = pathlib.Path(scratch) / f"{self.queue}.log"
        env = dict(os.environ, CELERYOPS_LEDGER_DIR=str(scratch))
        command = [
            args.wrapper, f"--app={args.app}", "worker", f"--queues={self.queue}", f"--hostname={self.node}",
            f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                command, env=env, user=args.user, group=args.group, extra_groups=[],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=args.workdir,
            )  # fmt: skip

    def log_tail(self):
        return self.log.read_text(encoding="utf-8", errors="replace")[-2000:]

    def wait_ready(self, app, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.node} exited: {self.log_tail()}")
            if app.control.ping(destination=[self.node], timeout=1.0):
                return
        raise RuntimeError(f"{self.node} did not answer a ping within {timeout} s: {self.log_tail()}")

    def control(self, app, method):
        """cancel_consumer or add_consumer on this worker's queue, waiting for the worker's reply."""
        for _attempt in range(10):
            replies = getattr(app.control, method)(self.queue, destination=[self.node], reply=True, timeout=5.0)
            if replies:
                return
        raise RuntimeError(f"{self.node} did not answer {method}")

    def ledger_ids(self):
        entries = ledger_entries(self.ledger)
        return [entry["id"] for entry in entries], max((entry["ts"] for entry in entries), default=0.0)

    def rss(self):
        return rss_kib(descendants(self.proc.pid))

    def cpu(self):
        return cpu_seconds(descendants(self.proc.pid))

    def stop(self, app):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                for pid in descendants(self.proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.proc.wait()
        for pid in descendants(self.proc.pid)[1:]:  # prefork children left behind by a cold shutdown
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(Exception), app.connection_for_write() as connection:
            connection.default_channel.queue_delete(self.queue)
        self.ledger.unlink(missing_ok=True)


def send(app, args, queue, count, seconds):
    """Publish count tasks by name (the client needs neither Django nor the task modules); their ids."""
    with app.producer_or_acquire() as producer:
        return {
            app.send_task(args.task, args=(seconds,), queue=queue, producer=producer, ignore_result=True).id
            for _index in range(count)
        }


def wait_queued(app, queue, expected, done, timeout=60.0):
    """Block until the broker has taken in every published message: ready in the queue plus already done.

    Publishing returns once the messages are on the wire; the queue process may still be writing them when the
    consumer is added, and that would count the broker's intake as the worker's time. A passive declare is
    answered by the queue itself after the publishes before it. Returns the ready count (a count that stops
    moving for a second also ends the wait: a message taken before the consumer was cancelled is running).
    """
    deadline = time.monotonic() + timeout
    last, stable_since = None, time.monotonic()
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while True:
            ready = channel.queue_declare(queue, passive=True).message_count
            now = time.monotonic()
            if ready != last:
                last, stable_since = ready, now
            if ready + done() >= expected or now - stable_since >= 1.0 or now >= deadline:
                return ready
            time.sleep(0.05)


def wait_consuming(app, queue, timeout=30.0):
    """The time of the last look at the queue that still showed no consumer (the start of the clock).

    A worker answers add_consumer at once but green pools run Celery's blocking loop, which applies it only
    when its drain_events call returns (up to 2 s on a quiet connection): the clock starts when the broker
    shows the consumer, not when the worker was asked.
    """
    deadline = time.monotonic() + timeout
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while True:
            before = time.time()
            if channel.queue_declare(queue, passive=True).consumer_count or time.monotonic() >= deadline:
                return before
            time.sleep(0.005)


@contextlib.contextmanager
def bench_worker(args, app, pool, concurrency):
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="bench-pool-"))
    shutil.chown(scratch, user=args.user, group=args.group)
    worker = BenchWorker(args, pool, concurrency, scratch)
    try:
        worker.wait_ready(app)
        yield worker
    finally:
        worker.stop(app)
        shutil.rmtree(scratch, ignore_errors=True)


def throughput(args, app, pool, concurrency):
    with bench_worker(args, app, pool, concurrency) as worker:
        worker.control(app, "cancel_consumer")
        sent = send(app, args, worker.queue, args.tasks, args.seconds)
        wait_queued(app, worker.queue, args.tasks, lambda: ledger_lines(worker.ledger))
        cpu_before, load_before = worker.cpu(), os.getloadavg()[0]
        worker.control(app, "add_consumer")
        start = wait_consuming(app, worker.queue)
        deadline = time.monotonic() + args.tasks * args.seconds / concurrency * 3 + 120
        while ledger_lines(worker.ledger) < args.tasks and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu_used, load_after = worker.cpu() - cpu_before, os.getloadavg()[0]
        time.sleep(min(2.0, args.seconds * 10))  # a late duplicate would show up here
        ids, last = worker.ledger_ids()
        completed = len(set(ids) & sent)
        elapsed = last - start
        return {
            "pool": pool,
            "concurrency": concurrency,
            "tasks": args.tasks,
            "task_seconds": args.seconds,
            "completed": completed,
            "lost": len(sent - set(ids)),
            "duplicates": len(ids) - len(set(ids)),
            "unknown": len(set(ids) - sent),
            "seconds": round(elapsed, 3),
            "tasks_per_second": round(completed / elapsed, 1) if elapsed > 0 else 0.0,
            # CPU the worker spent per task, and how busy the machine was (1-minute load average, before/after).
            "worker_cpu_ms_per_task": round(cpu_used * 1000 / max(completed, 1), 2),
            "loadavg": [round(load_before, 2), round(load_after, 2)],
            "cpus": os.cpu_count(),
        }


def memory(args, app, pool, concurrency):
    with bench_worker(args, app, pool, concurrency) as worker:
        time.sleep(3)
        at_rest = worker.rss()
        load = concurrency * 2
        send(app, args, worker.queue, load, args.memory_task_seconds)
        peak = at_rest
        deadline = time.monotonic() + load * args.memory_task_seconds / concurrency * 3 + 120
        while time.monotonic() < deadline:
            peak = max(peak, worker.rss())
            if len(worker.ledger_ids()[0]) >= load:
                break
            time.sleep(0.2)
        return {
            "pool": pool,
            "concurrency": concurrency,
            "tasks": load,
            "task_seconds": args.memory_task_seconds,
            "completed": len(set(worker.ledger_ids()[0])),
            "rss_rest_kib": at_rest,
            "rss_load_kib": peak,
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env-file", required=True)
    parser.add_argument("--wrapper", required=True)
    parser.add_argument("--app", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--group", help="default: the user's name")
    parser.add_argument("--workdir", default=os.getcwd())
    parser.add_argument("--task", default="core.sleep")
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=0.1)
    parser.add_argument("--memory-task-seconds", type=float, default=1.0)
    parser.add_argument("--green-pool", default="eventlet")
    parser.add_argument("--green-concurrency", type=int, default=100)
    parser.add_argument("--prefork-concurrency", type=int, default=2)
    parser.add_argument("--green-memory-concurrency", type=int, default=256)
    parser.add_argument("--prefork-memory-concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    args.group = args.group or args.user

    environment = read_env_file(args.env_file)
    os.environ.update(environment)
    args.effective_ledger_dir = environment.get("CELERYOPS_LEDGER_DIR")
    sys.path.insert(0, args.workdir)
    from celery import __version__ as celery_version  # noqa: PLC0415 - needs the environment loaded first
    from myproject.celery_config import app  # noqa: PLC0415

    green = throughput(args, app, args.green_pool, args.green_concurrency)
    prefork = throughput(args, app, "prefork", args.prefork_concurrency)
    green_memory = memory(args, app, args.green_pool, args.green_memory_concurrency)
    prefork_memory = memory(args, app, "prefork", args.prefork_memory_concurrency)
    result = {
        "celery": celery_version,
        "python": sys.version.split()[0],
        "host": os.uname().nodename,
        "debian": debian_release(),
        "throughput": [green, prefork],
        "memory": [green_memory, prefork_memory],
        "ratio": round(green["tasks_per_second"] / prefork["tasks_per_second"], 1)
        if prefork["tasks_per_second"]
        else 0.0,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
