"""Pool benchmark, run ON an app host with the workers role's virtualenv: green pools versus prefork.

Models the way production traffic arrives: each throwaway worker is started first, as the worker user through
the role's wrapper and environment file, with events on (as the role runs workers), and only once it answers a
ping and the broker shows its consumer are tasks published to its queue (one of its own, never the
application's):

- steady: N tasks `core.sleep(D)` published at a fixed rate;
- burst: N tasks published back to back, as fast as this client can;
- prefilled (for comparison only, the kind setting of the first version of this bench): the consumer is
  cancelled, the N tasks are published, and the consumer is added again.

Per worker and pattern: the publish rate reached, tasks/s (completed tasks over the time from the first publish
to the last completion), the latency from publish to the start of the task body (median and p95, from the
ledger's `start`), the worker's CPU per task, and every task counted by id in the completion ledger.

Memory: total RSS (main process + children) of the green pool at concurrency 256 and prefork at concurrency 8,
at rest and at the peak under a steady stream of 1 s tasks.

A worker's AMQP heartbeat is passed as CELERY_BROKER_HEARTBEAT (the example project's settings read it, as the
workers role's README asks of an application): `--green-heartbeat` for the green pools as the role runs them,
and, for the comparison rows named "Celery default", no value at all (Celery's 120 s).

Prints one JSON document. Usage (as root, from the application directory):
    /opt/celery/venv/bin/python pool_bench.py --env-file /etc/celery/worker.env \
        --wrapper /opt/celery/bin/celery-run --app myproject.celery_config:app --user celery
"""

import argparse
import contextlib
import json
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
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

    def __init__(self, args, pool, concurrency, scratch, heartbeat=None):
        self.pool, self.concurrency = pool, concurrency
        self.queue = f"bench-{pool}-{concurrency}-{uuid.uuid4().hex[:8]}"
        self.node = f"{self.queue}@{os.uname().nodename}"
        ledger_dir = args.effective_ledger_dir or scratch
        self.ledger = pathlib.Path(ledger_dir) / f"{self.node}.jsonl"
        self.log = pathlib.Path(scratch) / f"{self.queue}.log"
        env = dict(os.environ, CELERYOPS_LEDGER_DIR=str(scratch))
        env.pop("CELERY_BROKER_HEARTBEAT", None)
        if heartbeat is not None:
            env["CELERY_BROKER_HEARTBEAT"] = str(heartbeat)
        # As the role runs a worker: events on, gossip, mingle and worker heartbeats left at Celery's defaults.
        command = [
            args.wrapper, f"--app={args.app}", "worker", f"--queues={self.queue}", f"--hostname={self.node}",
            f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=WARNING", "--events",
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
        return [entry["id"] for entry in ledger_entries(self.ledger)]

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


def publish(app, args, queue, count, seconds, rate=None):
    """Publish count tasks by name (the client needs neither Django nor the task modules), at rate per second
    when given, else back to back; {id: publish time}, and the publish rate reached.

    The messages are built first, with Celery's own message builder, and then sent with Celery's own sender:
    the same messages as `send_task`, but the stream costs this client about a third of the CPU (0.17 ms a task
    instead of 0.33 on the lab), which it would otherwise take from the worker, broker and Flower on the same
    CPUs. In production the publishers run elsewhere.
    """
    messages = []
    for _index in range(count):
        task_id = str(uuid.uuid4())
        messages.append((task_id, app.amqp.create_task_message(task_id, args.task, (seconds,), {})))
    sent = {}
    with app.producer_or_acquire() as producer:
        first = time.monotonic()
        for index, (task_id, message) in enumerate(messages):
            if rate:
                pause = first + index / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            sent[task_id] = time.time()
            app.amqp.send_task_message(producer, args.task, message, queue=queue)
        took = time.monotonic() - first
    return sent, round(count / took, 1) if took > 0 else float(count)


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
    """The time of the last look at the queue that still showed no consumer.

    A worker answers add_consumer at once but green pools run Celery's blocking loop, which applies it only
    when its drain_events call returns (up to 2 s on a quiet connection): a consumer counts when the broker
    shows it, not when the worker was asked.
    """
    deadline = time.monotonic() + timeout
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while True:
            before = time.time()
            if channel.queue_declare(queue, passive=True).consumer_count or time.monotonic() >= deadline:
                return before
            time.sleep(0.005)


def percentile(values, fraction):
    """The nearest-rank percentile of values (fraction 0.5 is the median); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(sent, entries, started_at=None):
    """Counts, throughput and latencies of one run from the ids sent ({id: publish time}) and the ledger.

    Throughput is completed tasks over the time from the first publish (or started_at, for a prefilled queue)
    to the last completion; latency is from a task's publish to the start of its body.
    """
    ids = [entry["id"] for entry in entries]
    mine = [entry for entry in entries if entry["id"] in sent]
    completed = len({entry["id"] for entry in mine})
    begin = started_at if started_at is not None else min(sent.values(), default=0.0)
    last = max((entry["ts"] for entry in mine), default=begin)
    elapsed = last - begin
    latencies = [entry["start"] - sent[entry["id"]] for entry in mine if "start" in entry]
    median, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
    return {
        "completed": completed,
        "lost": len(set(sent) - set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "unknown": len(set(ids) - set(sent)),
        "seconds": round(elapsed, 3),
        "tasks_per_second": round(completed / elapsed, 1) if elapsed > 0 else 0.0,
        "latency_p50_ms": None if median is None else round(median * 1000, 1),
        "latency_p95_ms": None if p95 is None else round(p95 * 1000, 1),
    }


@contextlib.contextmanager
def bench_worker(args, app, pool, concurrency, heartbeat=None):
    scratch = pathlib.Path(tempfile.mkdtemp(prefix="bench-pool-"))
    shutil.chown(scratch, user=args.user, group=args.group)
    worker = BenchWorker(args, pool, concurrency, scratch, heartbeat)
    try:
        worker.wait_ready(app)
        wait_consuming(app, worker.queue)
        yield worker
    finally:
        worker.stop(app)
        shutil.rmtree(scratch, ignore_errors=True)


def wait_done(worker, count, timeout):
    deadline = time.monotonic() + timeout
    while ledger_lines(worker.ledger) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def run_pattern(args, app, worker, pattern, count):
    """One pattern's load of count tasks on a running worker; its row (without the worker's description)."""
    seconds = args.seconds
    lines_before = ledger_lines(worker.ledger)
    cpu_before, load_before = worker.cpu(), os.getloadavg()[0]
    started_at = None
    if pattern == "prefilled":
        worker.control(app, "cancel_consumer")
        sent, rate = publish(app, args, worker.queue, count, seconds)
        wait_queued(app, worker.queue, count, lambda: ledger_lines(worker.ledger) - lines_before)
        worker.control(app, "add_consumer")
        started_at = wait_consuming(app, worker.queue)
    else:
        sent, rate = publish(app, args, worker.queue, count, seconds, args.rate if pattern == "steady" else None)
    wait_done(worker, lines_before + count, count * seconds / worker.concurrency * 3 + 120)
    cpu_used, load_after = worker.cpu() - cpu_before, os.getloadavg()[0]
    time.sleep(min(2.0, seconds * 10))  # a late duplicate would show up here
    entries = ledger_entries(worker.ledger)[lines_before:]
    row = {"pattern": pattern, "tasks": count, "task_seconds": seconds, "publish_rate": rate}
    row.update(summarize(sent, entries, started_at))
    row.update(
        worker_cpu_ms_per_task=round(cpu_used * 1000 / max(row["completed"], 1), 2),
        loadavg=[round(load_before, 2), round(load_after, 2)],
        cpus=os.cpu_count(),
    )
    return row


def throughput(args, app, pool, concurrency, heartbeat, label, as_role, patterns, tasks):
    """Each pattern, one after the other, on one worker started once; a row per pattern.

    as_role: the worker runs as the workers role runs this pool (False for the Celery default comparison rows).
    """
    rows = []
    with bench_worker(args, app, pool, concurrency, heartbeat) as worker:
        for pattern in patterns:
            row = {"pool": pool, "concurrency": concurrency, "heartbeat": label, "as_role": as_role}
            row.update(run_pattern(args, app, worker, pattern, tasks))
            rows.append(row)
    return rows


def memory(args, app, pool, concurrency, heartbeat):
    """RSS at rest and the peak under a steady stream of twice the concurrency in 1 s tasks."""
    with bench_worker(args, app, pool, concurrency, heartbeat) as worker:
        time.sleep(3)
        at_rest = worker.rss()
        load = concurrency * 2
        peak = [at_rest]
        stop = threading.Event()

        def sample():
            while not stop.is_set():
                peak.append(worker.rss())
                stop.wait(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            sent, _rate = publish(app, args, worker.queue, load, args.memory_task_seconds, args.memory_rate)
            wait_done(worker, load, load * args.memory_task_seconds / concurrency * 3 + 120)
        finally:
            stop.set()
            sampler.join()
        return {
            "pool": pool,
            "concurrency": concurrency,
            "tasks": load,
            "task_seconds": args.memory_task_seconds,
            "publish_rate": args.memory_rate,
            "completed": len(set(worker.ledger_ids()) & set(sent)),
            "rss_rest_kib": at_rest,
            "rss_load_kib": max(peak),
        }


def parse_worker(text):
    """POOL:CONCURRENCY[:default] — ":default" leaves the AMQP heartbeat at Celery's default."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "default"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected POOL:CONCURRENCY or POOL:CONCURRENCY:default")
    return parts[0], int(parts[1]), len(parts) == 3


GREEN_POOLS = ("eventlet", "gevent")


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
    parser.add_argument("--rate", type=float, default=600.0, help="publish rate of the steady pattern, tasks/s")
    parser.add_argument("--patterns", nargs="+", default=["steady", "burst", "prefilled"])
    parser.add_argument(
        "--workers", nargs="+", type=parse_worker,
        default=[parse_worker(w) for w in
                 ("eventlet:100", "gevent:100", "threads:100", "prefork:2", "prefork:8", "eventlet:100:default")],
    )  # fmt: skip
    parser.add_argument("--default-tasks", type=int, default=300, help="tasks of the Celery default rows")
    parser.add_argument("--green-heartbeat", type=int, default=0, help="the AMQP heartbeat the role gives green pools")
    parser.add_argument("--memory-task-seconds", type=float, default=1.0)
    parser.add_argument("--memory-rate", type=float, default=200.0)
    parser.add_argument("--green-pool", default="eventlet", help="the green pool of the memory comparison")
    parser.add_argument("--green-memory-concurrency", type=int, default=256)
    parser.add_argument("--prefork-memory-concurrency", type=int, default=8)
    parser.add_argument("--no-memory", action="store_true", help="throughput rows only (bench/run_cluster_bench.py)")
    args = parser.parse_args(argv)
    args.group = args.group or args.user

    environment = read_env_file(args.env_file)
    os.environ.update(environment)
    args.effective_ledger_dir = environment.get("CELERYOPS_LEDGER_DIR")
    sys.path.insert(0, args.workdir)
    from celery import __version__ as celery_version  # noqa: PLC0415 - needs the environment loaded first
    from myproject.celery_config import app  # noqa: PLC0415

    def heartbeat_of(pool, celery_default):
        if celery_default or pool not in GREEN_POOLS:
            return None, "Celery default"
        return args.green_heartbeat, f"{args.green_heartbeat} (role)"

    rows = []
    for pool, concurrency, celery_default in args.workers:
        heartbeat, label = heartbeat_of(pool, celery_default)
        # A throttled green worker takes about ten tasks a second: its comparison rows get the steady pattern
        # and fewer tasks, or they alone would take minutes.
        patterns = ["steady"] if celery_default else args.patterns
        tasks = args.default_tasks if celery_default else args.tasks
        rows += throughput(args, app, pool, concurrency, heartbeat, label, not celery_default, patterns, tasks)
    green_heartbeat, _label = heartbeat_of(args.green_pool, False)
    memory_rows = (
        []
        if args.no_memory
        else [
            memory(args, app, args.green_pool, args.green_memory_concurrency, green_heartbeat),
            memory(args, app, "prefork", args.prefork_memory_concurrency, None),
        ]
    )
    result = {
        "celery": celery_version,
        "python": sys.version.split()[0],
        "host": os.uname().nodename,
        "debian": debian_release(),
        # What the workers' environment tells Celery to declare (the workers role: quorum with a cluster).
        "queue_type": environment.get("CELERYOPS_BROKER_QUEUE_TYPE", "classic"),
        "brokers": environment.get("CELERY_BROKER_URL", "").count(";") + 1,
        "throughput": rows,
        "memory": memory_rows,
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
