"""One broker against a cluster of three, side by side: the lab's tasks streamed to a worker that already runs.

Two converged labs of one Debian release up at once: the stack (one broker, classic queues) and the cluster
(three nodes, quorum queues with a member on each, publisher confirms, CELERY_BROKER_URL listing every node), each
as its roles deploy it. In alternating rounds (the order swapped each round), bench/pool_bench.py runs on each
lab's app host: a throwaway prefork worker on a queue of its own, declared as the workers role tells Celery to
(classic or quorum), answering before its tasks are published; then N short tasks `core.sleep(S)` published at a
steady rate, then N back to back; every task counted by id in the worker's ledger. After the rounds, each broker
node's memory (beam.smp RSS) and the size of its data directory.

    python bench/run_cluster_bench.py --single INVENTORY --cluster INVENTORY [--host app2] [--rounds 3] \
        [--json docs/bench-cluster-bookworm.json] [--output docs/bench-cluster.md] [-- ARGS]

Arguments after `--` go to pool_bench.py. The figures are information, not a bar. Exit status: 0 when every task of
every round ran exactly once and each lab declared the queue type it should; 1 otherwise; 2 when the bench could
not run.
"""

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import sys

from run_pool_bench import REPO, ansible, run_bench

DEFAULT_BENCH_ARGS = [
    "--workers", "prefork:8", "--patterns", "steady", "burst", "--tasks", "1000", "--seconds", "0",
    "--rate", "200", "--no-memory",
]  # fmt: skip
LABS = ("single", "cluster")
EXPECTED_QUEUE_TYPE = {"single": "classic", "cluster": "quorum"}
NODE_PROBE = "ps -C beam.smp -o rss= | awk '{ s += $1 } END { print s + 0 }'; du -sk /var/lib/rabbitmq/mnesia | cut -f1"


def broker_hosts(inventory):
    """The hosts of the inventory's group `rabbitmq`."""
    proc = subprocess.run(
        ["ansible-inventory", "-i", inventory, "--list"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return sorted(json.loads(proc.stdout)["rabbitmq"]["hosts"])


def node_footprint(inventory):
    """{host: {"rss_mib": .., "data_mib": ..}} of each broker node: beam.smp's RSS and the data directory's size."""
    found = {}
    for host in broker_hosts(inventory):
        result = ansible(inventory, host, "ansible.builtin.shell", NODE_PROBE)
        rss_kib, data_kib = (int(value) for value in result["stdout"].split())
        found[host] = {"rss_mib": round(rss_kib / 1024, 1), "data_mib": round(data_kib / 1024, 1)}
    return found


def run(inventories, host, rounds, bench_args):
    """Alternating rounds on the two labs; {"rounds": [{lab: pool_bench result}], "nodes": {lab: footprint}}."""
    results = []
    for number in range(rounds):
        order = LABS if number % 2 == 0 else tuple(reversed(LABS))
        results.append({lab: run_bench(inventories[lab], host, bench_args) for lab in order})
    nodes = {lab: node_footprint(inventories[lab]) for lab in LABS}
    return {"rounds": results, "nodes": nodes, "bench_args": bench_args, "date": datetime.date.today().isoformat()}


def rows(result, lab, pattern):
    return [row for one in result["rounds"] for row in one[lab]["throughput"] if row["pattern"] == pattern]


def median(values):
    values = [value for value in values if value is not None]
    return round(statistics.median(values), 1) if values else None


def problems(result):
    """What makes the run fail: a task lost, run twice or unknown, or a lab that declared the wrong queue type."""
    found = []
    for number, one in enumerate(result["rounds"], start=1):
        for lab in LABS:
            if one[lab]["queue_type"] != EXPECTED_QUEUE_TYPE[lab]:
                found.append(f"round {number}, {lab}: queue type {one[lab]['queue_type']}")
            for row in one[lab]["throughput"]:
                if row["lost"] or row["duplicates"] or row["unknown"] or row["completed"] != row["tasks"]:
                    found.append(
                        f"round {number}, {lab}, {row['pattern']}: {row['completed']} of {row['tasks']} completed, "
                        f"{row['lost']} lost, {row['duplicates']} twice, {row['unknown']} unknown"
                    )
    return found


def summary_table(result):
    lines = [
        "| Pattern | Lab | Tasks/s (median) | Publish rate/s | Publish → start p50 | p95 | Cluster ÷ one node |",
        "|---|---|---|---|---|---|---|",
    ]
    for pattern in ("steady", "burst"):
        single = median(row["tasks_per_second"] for row in rows(result, "single", pattern))
        for lab in LABS:
            found = rows(result, lab, pattern)
            if not found:
                continue
            tps = median(row["tasks_per_second"] for row in found)
            ratio = f"{tps / single:.2f}" if lab == "cluster" and single else ""
            lines.append(
                f"| {pattern} | {lab} | {tps} | {median(row['publish_rate'] for row in found)} | "
                f"{median(row['latency_p50_ms'] for row in found)} ms | "
                f"{median(row['latency_p95_ms'] for row in found)} ms | {ratio} |"
            )
    return lines


def nodes_table(result):
    lines = ["| Lab | Node | beam.smp RSS | Data directory |", "|---|---|---|---|"]
    for lab in LABS:
        for host, values in result["nodes"][lab].items():
            lines.append(f"| {lab} | {host} | {values['rss_mib']} MiB | {values['data_mib']} MiB |")
    return lines


def markdown(results):
    """docs/bench-cluster.md from the results of each Debian release."""
    lines = [
        "# One broker against a cluster of three",
        "",
        "Written by `bench/run_cluster_bench.py` (see `bench/README.md`). Two converged labs of one Debian release run",
        "at once on the same machine: the stack (one broker, classic queues) and the cluster (three nodes, quorum",
        "queues with a member on each node, publisher confirms). In alternating rounds a throwaway prefork worker",
        "(concurrency 8) is started on each lab's app host on a queue of its own, and only once it answers are the",
        "lab's tasks (`core.sleep(0)`) published to it: first at a steady rate, then back to back. Every task is",
        "counted by id. Medians over the rounds; the latency is from a task's publish to the start of its body.",
    ]
    for _source, result in sorted(results.items()):
        first = result["rounds"][0]
        lines += [
            "",
            f"## Debian {first['single']['debian']} (measured {result['date']}, {len(result['rounds'])} rounds, Celery "
            f"{first['single']['celery']})",
            "",
            f"Bench arguments: `{' '.join(result['bench_args'])}`; queue types declared: single "
            f"{first['single']['queue_type']}, cluster {first['cluster']['queue_type']} "
            f"({first['cluster']['brokers']} broker URLs).",
            "",
            *summary_table(result),
            "",
            "Each broker node after the rounds:",
            "",
            *nodes_table(result),
        ]
        found = problems(result)
        lines += ["", f"Problems: {'; '.join(found)}." if found else "Every task of every round ran exactly once."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    bench_args = argv[argv.index("--") + 1 :] if "--" in argv else DEFAULT_BENCH_ARGS
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", help="inventory of the converged one-broker lab")
    parser.add_argument("--cluster", help="inventory of the converged cluster lab")
    parser.add_argument("--host", default="app2")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the raw result here")
    parser.add_argument("--output", default=str(REPO / "docs" / "bench-cluster.md"))
    parser.add_argument("--include", nargs="*", default=[], help="results written earlier (--json) to report too")
    args = parser.parse_args(own)
    results = {path: json.loads(pathlib.Path(path).read_text(encoding="utf-8")) for path in args.include}
    failures = []
    if args.single and args.cluster:
        try:
            result = run({"single": args.single, "cluster": args.cluster}, args.host, args.rounds, bench_args)
        except RuntimeError as error:
            print(f"cluster bench: {error}", file=sys.stderr)
            return 2
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
            results[args.json] = result
        else:
            results["this run"] = result
        failures = problems(result)
    pathlib.Path(args.output).write_text(markdown(results), encoding="utf-8")
    for failure in failures:
        print(f"cluster bench: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
