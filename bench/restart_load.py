"""Host side of the restart benchmark (bench/restart_bench.py): load, readiness and the ledger count.

Runs ON an app host with the workers role's virtualenv, as root from the application directory, next to
pool_bench.py (for the environment file reader). Every command prints one JSON document.

    restart_load.py ready --node NODE [--old-pid PID]     wait until NODE answers with a pid other than PID (and
                                                          say when PID was gone)
    restart_load.py send --queue Q --node NODE ...        the load: long tasks first, then the short flood
    restart_load.py count --queue Q --node NODE --ids F   lost / duplicated ids once the queue is drained
    restart_load.py purge --queue Q                       delete the bench queue on the broker
"""

import argparse
import json
import os
import pathlib
import sys
import threading
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from pool_bench import ledger_entries, read_env_file  # noqa: E402

ENV_FILE = "/etc/celery/worker.env"


def load_app(workdir):
    environment = read_env_file(ENV_FILE)
    os.environ.update(environment)
    sys.path.insert(0, workdir)
    from myproject.celery_config import app  # noqa: PLC0415 - needs the environment first

    return app, pathlib.Path(environment.get("CELERYOPS_LEDGER_DIR", "/var/lib/celery/ledger"))


def stats_pid(app, node, timeout=0.5):
    replies = app.control.inspect(destination=[node], timeout=timeout).stats() or {}
    info = replies.get(node)
    return info.get("pid") if info else None


def watch_exit(pid, found):
    """Record in found["old_gone"] when process pid no longer exists (checked every 50 ms)."""
    while os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    found["old_gone"] = time.time()


def ready(app, args):
    found = {"old_gone": None}
    if args.old_pid:
        threading.Thread(target=watch_exit, args=(args.old_pid, found), daemon=True).start()
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        try:
            pid = stats_pid(app, args.node)
        except Exception:  # noqa: BLE001 - the broker connection may blip while the worker restarts
            pid = None
        if pid and pid != args.old_pid:
            return {"ts": time.time(), "pid": pid, "old_gone": found["old_gone"]}
        time.sleep(0.1)
    return {"ts": None, "pid": None, "old_gone": found["old_gone"]}


def active(app, node):
    replies = app.control.inspect(destination=[node], timeout=1.0).active() or {}
    return replies.get(node, [])


def send(app, args):
    with app.producer_or_acquire() as producer:

        def one(seconds):
            return app.send_task(args.task, args=(seconds,), queue=args.queue, producer=producer, ignore_result=True).id

        long_ids = [one(args.long_seconds) for _index in range(args.long)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            running = {task["id"] for task in active(app, args.node)}
            if set(long_ids) <= running:
                break
        else:
            raise RuntimeError(f"the long tasks did not start on {args.node}")
        long_started = time.time()
        short_ids = [one(args.short_seconds) for _index in range(args.short)]
    document = {
        "long_ids": long_ids,
        "short_ids": short_ids,
        "long_seconds": args.long_seconds,
        "short_seconds": args.short_seconds,
        "long_started": long_started,
        "sent": time.time(),
    }
    pathlib.Path(args.out).write_text(json.dumps(document), encoding="utf-8")
    return {"long_started": long_started, "sent": document["sent"], "tasks": args.long + args.short}


def queue_depth(app, queue):
    with app.connection_for_write() as connection:
        return connection.default_channel.queue_declare(queue=queue, passive=True).message_count


def count(app, ledger_dir, args):
    document = json.loads(pathlib.Path(args.ids).read_text(encoding="utf-8"))
    sent = set(document["long_ids"]) | set(document["short_ids"])
    ledger = ledger_dir / f"{args.node}.jsonl"
    deadline = time.monotonic() + args.timeout
    quiet_since = None
    while time.monotonic() < deadline:
        done = {entry["id"] for entry in ledger_entries(ledger)} & sent
        if done == sent:
            break
        try:
            idle = queue_depth(app, args.queue) == 0 and not active(app, args.node)
        except Exception:  # noqa: BLE001 - keep waiting while the worker or the broker connection comes back
            idle = False
        quiet_since = (quiet_since or time.monotonic()) if idle else None
        if quiet_since and time.monotonic() - quiet_since > args.settle:
            break
        time.sleep(0.5)
    time.sleep(args.settle)  # a late duplicate would show up here
    # One read of the ledger, so that the counts and the times below describe the same lines.
    entries = [entry for entry in ledger_entries(ledger) if entry["id"] in sent]
    ids = [entry["id"] for entry in entries]
    last = max((entry["ts"] for entry in entries), default=None)
    long_ids = set(document["long_ids"])
    last_long = max((entry["ts"] for entry in entries if entry["id"] in long_ids), default=None)
    return {
        "sent": len(sent),
        "completed": len(set(ids)),
        "lost": len(sent - set(ids)),
        "lost_long": len(set(document["long_ids"]) - set(ids)),
        "duplicates": len(ids) - len(set(ids)),
        "last_completion": last,
        "last_long_completion": last_long,
    }


def purge(app, args):
    with app.connection_for_write() as connection:
        connection.default_channel.queue_delete(args.queue)
    return {"deleted": args.queue}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.getcwd())
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ready")
    p.add_argument("--node", required=True)
    p.add_argument("--old-pid", type=int)
    p.add_argument("--timeout", type=float, default=600)
    p = sub.add_parser("send")
    p.add_argument("--queue", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--task", default="core.sleep")
    p.add_argument("--long", type=int, default=3)
    p.add_argument("--long-seconds", type=float, default=15.0)
    p.add_argument("--short", type=int, default=297)
    p.add_argument("--short-seconds", type=float, default=0.2)
    p.add_argument("--out", required=True)
    p = sub.add_parser("count")
    p.add_argument("--queue", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--ids", required=True)
    p.add_argument("--timeout", type=float, default=300)
    p.add_argument("--settle", type=float, default=3.0)
    p = sub.add_parser("purge")
    p.add_argument("--queue", required=True)
    args = parser.parse_args(argv)
    app, ledger_dir = load_app(args.workdir)
    if args.command == "ready":
        result = ready(app, args)
    elif args.command == "send":
        result = send(app, args)
    elif args.command == "count":
        result = count(app, ledger_dir, args)
    else:
        result = purge(app, args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
