"""Host side of the overlap benchmark (bench/overlap_bench.py): a busy worker with short tasks streaming in.

Runs ON an app host with the workers role's virtualenv, as root from the application directory, next to
restart_load.py and pool_bench.py. Every command prints one JSON document.

    overlap_load.py stream --queue Q --node NODE --out F    LONG tasks that fill the pool; once they all run, F.ready;
                                                            then a short task every EVERY seconds until F.stop
                                                            exists; then F (the ids and when each was sent)
    overlap_load.py count --ids F --node NODE --node NODE2  the ledger entries of those ids on both nodes, once
                                                            all are there (or TIMEOUT), lost and duplicated
"""

import argparse
import json
import os
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from pool_bench import ledger_entries  # noqa: E402
from restart_load import active, load_app  # noqa: E402


def stream(app, args):
    out = pathlib.Path(args.out)
    stop = pathlib.Path(args.out + ".stop")
    sent_at = {}
    with app.producer_or_acquire() as producer:

        def one(seconds):
            task_id = app.send_task(
                args.task, args=(seconds,), queue=args.queue, producer=producer, ignore_result=True
            ).id
            sent_at[task_id] = time.time()
            return task_id

        long_ids = [one(args.long_seconds) for _index in range(args.long)]
        deadline = time.monotonic() + 60
        while not set(long_ids) <= {task["id"] for task in active(app, args.node)}:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the long tasks did not all start on {args.node}")
            time.sleep(0.2)
        pathlib.Path(args.out + ".ready").write_text(json.dumps({"long_started": time.time()}), encoding="utf-8")
        short_ids = []
        while not stop.exists():
            short_ids.append(one(args.short_seconds))
            time.sleep(args.every)
    document = {"long_ids": long_ids, "short_ids": short_ids, "sent_at": sent_at}
    out.write_text(json.dumps(document), encoding="utf-8")
    return {"long": len(long_ids), "short": len(short_ids)}


def count(ledger_dir, args):
    document = json.loads(pathlib.Path(args.ids).read_text(encoding="utf-8"))
    sent = set(document["long_ids"]) | set(document["short_ids"])
    files = [ledger_dir / f"{node}.jsonl" for node in args.node]

    def read():
        return [entry for path in files for entry in ledger_entries(path) if entry["id"] in sent]

    deadline = time.monotonic() + args.timeout
    while {entry["id"] for entry in read()} != sent and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(args.settle)  # a late second run would show up here
    entries = read()
    ids = [entry["id"] for entry in entries]
    return {
        "sent": len(sent),
        "lost": len(sent - set(ids)),
        "duplicated": len(ids) - len(set(ids)),
        "entries": entries,
        "sent_at": document["sent_at"],
        "long_ids": document["long_ids"],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=os.getcwd())
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("stream")
    p.add_argument("--queue", required=True)
    p.add_argument("--node", required=True)
    p.add_argument("--task", default="core.sleep")
    p.add_argument("--long", type=int, default=8)
    p.add_argument("--long-seconds", type=float, default=20.0)
    p.add_argument("--short-seconds", type=float, default=0.1)
    p.add_argument("--every", type=float, default=0.2)
    p.add_argument("--out", required=True)
    p = sub.add_parser("count")
    p.add_argument("--ids", required=True)
    p.add_argument("--node", action="append", required=True)
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args(argv)
    app, ledger_dir = load_app(args.workdir)
    result = stream(app, args) if args.command == "stream" else count(ledger_dir, args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
