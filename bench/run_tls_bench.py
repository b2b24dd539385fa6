"""TLS bench: what TLS on the broker link costs a prefork worker and the broker, plain AMQP beside it in one run.

The workers reach the broker over AMQPS only (issue 14); this measures the price. For the run, the broker's plain
AMQP listener is opened to the lab's network (a converge of the broker with rabbitmq_amqp_address=0.0.0.0; the
listener goes back to loopback at the end, whatever happened). Then pool_bench.py runs on app1 alternately over
AMQPS (as deployed) and plain AMQP: a throwaway prefork worker at concurrency 8, started before its tasks arrive,
tasks streamed at a steady rate and then back to back (burst), every task counted by id; its publisher uses the
same transport. Rounds alternate (TLS, plain, TLS, plain, ...) so that the machine's drift falls on both. Besides
the bench's own figures (throughput, publish-to-start latency, the worker's CPU per task), the broker's CPU per
task is read from its Erlang VM's /proc counters around each run.

Usage (a converged lab; from the checkout, with the virtualenv's ansible on PATH):

    python bench/run_tls_bench.py -i inventories/lab [--rounds 2] [--output docs/bench-tls.md] [-- ARGS]

Arguments after `--` go to pool_bench.py. Exit status: 0 when every task of every run completed exactly once,
1 otherwise, 2 when the bench could not run. The ratios are information, not a goal.
"""

import argparse
import datetime
import json
import pathlib
import statistics
import subprocess
import sys

from run_pool_bench import REPO, ansible, run_bench

PLAIN_PORT = 5672
POOL_ARGS = ["--workers", "prefork:8", "--patterns", "steady", "burst", "--tasks", "1500", "--seconds", "0.005",
             "--rate", "400", "--no-memory"]  # fmt: skip
# The broker's Erlang VM: user and system CPU ticks, from /proc (no tool that boots another VM).
BROKER_CPU = "cat /proc/$(pgrep -o -x beam.smp)/stat | cut -d' ' -f14,15; getconf CLK_TCK"


def broker_cpu_seconds(inventory, broker):
    result = ansible(inventory, broker, "ansible.builtin.shell", BROKER_CPU)
    if result.get("rc") != 0:
        raise RuntimeError(f"reading the broker's CPU failed: {result.get('stderr')}")
    ticks, hertz = result["stdout"].splitlines()
    return sum(int(value) for value in ticks.split()) / int(hertz)


def converge_broker(inventory, broker, address):
    """The rabbitmq role on the broker with its plain AMQP listener on ``address``."""
    command = ["ansible-playbook", "playbooks/site.yml", "-i", inventory, "--limit", broker,
               "-e", f"rabbitmq_amqp_address={address}"]  # fmt: skip
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"converging {broker} with rabbitmq_amqp_address={address} failed: {proc.stdout[-2000:]}")


def rows(result, transport, round_number, broker_ms):
    for row in result["throughput"]:
        yield {**row, "transport": transport, "round": round_number, "broker_cpu_ms_per_task": broker_ms}


def measure(inventory, host, broker, rounds, extra):
    measured = []
    converge_broker(inventory, broker, "0.0.0.0")  # noqa: S104 - the lab's plain listener, for this run only
    try:
        for round_number in range(1, rounds + 1):
            for transport in ("amqps", "amqp"):
                args = [*extra] + (["--plain-port", str(PLAIN_PORT)] if transport == "amqp" else [])
                before = broker_cpu_seconds(inventory, broker)
                result = run_bench(inventory, host, args)
                used = broker_cpu_seconds(inventory, broker) - before
                if result.get("transport") != transport:
                    raise RuntimeError(f"asked for {transport}, the bench ran over {result.get('transport')}")
                tasks = sum(row["tasks"] for row in result["throughput"])
                measured += rows(result, transport, round_number, round(used * 1000 / max(tasks, 1), 3))
                print(f"round {round_number} {transport}: done", file=sys.stderr)
    finally:
        converge_broker(inventory, broker, "127.0.0.1")
    return measured


def ratio_of(measured, pattern, key):
    """Median over the rounds of plain / TLS for ``key`` of ``pattern``; None when a value is missing."""
    ratios = []
    for round_number in sorted({row["round"] for row in measured}):
        pair = {row["transport"]: row.get(key) for row in measured
                if row["round"] == round_number and row["pattern"] == pattern}  # fmt: skip
        if pair.get("amqps") and pair.get("amqp"):
            ratios.append(pair["amqp"] / pair["amqps"])
    return round(statistics.median(ratios), 2) if ratios else None


def failures(measured):
    return [f"round {row['round']} {row['transport']} {row['pattern']}: {row['completed']} of {row['tasks']} "
            f"completed, {row['duplicated']} duplicated"
            for row in measured if row["completed"] != row["tasks"] or row["duplicated"]]  # fmt: skip


def markdown(document):
    measured = document["rows"]
    lines = [
        "# TLS on the broker link: what it costs",
        "",
        f"`python bench/run_tls_bench.py -i inventories/lab` on {document['date']}, Debian {document['debian']}, "
        f"Celery {document['celery']}; written by the bench. A throwaway prefork worker (concurrency 8) on app1, "
        "started before its tasks, over AMQPS (as the roles deploy it) and over plain AMQP (the broker's plain "
        "listener opened to the lab's network for the run), rounds alternating; its publisher uses the same "
        "transport. `steady`: tasks streamed at a fixed rate; `burst`: back to back. Latency is from publish to "
        "the start of the task body. The broker's CPU is its Erlang VM's, per task of the run.",
        "",
        "| round | transport | pattern | tasks | completed once | tasks/s | latency p50 ms | p95 ms "
        "| worker CPU ms/task | broker CPU ms/task |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in measured:
        lines.append(
            f"| {row['round']} | {row['transport']} | {row['pattern']} | {row['tasks']} | "
            f"{row['completed'] - row['duplicated']} | {row['tasks_per_second']} | {row['latency_p50_ms']} | "
            f"{row['latency_p95_ms']} | {row['worker_cpu_ms_per_task']} | {row['broker_cpu_ms_per_task']} |"
        )
    lines += ["", "Plain AMQP over AMQPS (median over the rounds; above 1 means plain is higher):", ""]
    lines += [
        "| pattern | tasks/s | latency p50 | worker CPU per task | broker CPU per task |",
        "|---|---|---|---|---|",
    ]
    for pattern in ("steady", "burst"):
        keys = ("tasks_per_second", "latency_p50_ms", "worker_cpu_ms_per_task", "broker_cpu_ms_per_task")
        cells = [ratio_of(measured, pattern, key) for key in keys]
        lines.append(f"| {pattern} | " + " | ".join("n/a" if cell is None else f"{cell}" for cell in cells) + " |")
    problems = failures(measured)
    lines += ["", "Every task completed exactly once." if not problems else "Failures: " + "; ".join(problems), ""]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("--host", default="app1")
    parser.add_argument("--broker", default="broker")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default=str(REPO / "docs" / "bench-tls.md"))
    parser.add_argument("--json", help="write the raw rows here")
    parser.add_argument("bench_args", nargs="*", help="arguments for pool_bench.py (after --)")
    args = parser.parse_args(argv)
    try:
        measured = measure(args.inventory, args.host, args.broker, args.rounds, args.bench_args or POOL_ARGS)
        facts = run_bench(args.inventory, args.host, ["--workers", "prefork:1", "--patterns", "steady", "--tasks",
                                                      "1", "--no-memory"])  # fmt: skip
    except RuntimeError as error:
        print(f"tls bench: {error}", file=sys.stderr)
        return 2
    document = {"date": datetime.date.today().isoformat(), "debian": facts["debian"], "celery": facts["celery"],
                "rows": measured}  # fmt: skip
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    pathlib.Path(args.output).write_text(markdown(document), encoding="utf-8")
    print(f"written: {args.output}")
    problems = failures(measured)
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
