"""Run bench/pool_bench.py on an app host of an inventory, write docs/bench-pools.md, fail under the bar.

The bench runs on the host (default app1, which must have eventlet and gevent workers, so that both pool
libraries are installed, as app1 of the lab has) as root from the application directory, with the workers
role's virtualenv, wrapper and environment file. Usage (from the checkout, with the virtualenv's ansible on PATH):

    python bench/run_pool_bench.py -i inventories/lab [--host app1] [--json docs/bench-pools-bookworm.json] \
        [--output docs/bench-pools.md] [--include docs/bench-pools-*.json] [-- ARGS]

Arguments after `--` go to pool_bench.py (for example `-- --patterns steady burst`). `--include` adds results
written earlier (by `--json`, one per Debian release) to the report; without `-i` the report is only rendered.

Exit status: 0 when, in every result, with tasks streamed at a steady rate, eventlet reaches at least
--min-ratio (20) times the throughput of prefork at concurrency 2, every green pool --min-ratio-prefork-8 (3)
times prefork at concurrency 8, eventlet at concurrency 256 uses less memory than prefork at 8 both at rest and
under load, and every task completed exactly once; 1 otherwise; 2 when the bench could not run.
"""

import argparse
import datetime
import json
import os
import pathlib
import shlex
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
REMOTE_SCRIPT = "/tmp/celeryops-pool-bench.py"  # noqa: S108 - a path on the app host, removed afterwards
MIN_RATIO = 20.0

# The role's paths on the app host (docs/architecture.md).
VENV_PYTHON = "/opt/celery/venv/bin/python"
ENV_FILE = "/etc/celery/worker.env"
WRAPPER = "/opt/celery/bin/celery-run"
APP = "myproject.celery_config:app"
APP_DIR = "/srv/myproject"
USER = "celery"


def remote_command(extra=()):
    return " ".join(
        [VENV_PYTHON, REMOTE_SCRIPT, "--env-file", ENV_FILE, "--wrapper", WRAPPER, "--app", APP, "--user", USER]
        + [shlex.quote(arg) for arg in extra]
    )


def ansible(inventory, host, module, args):
    """One ad-hoc module call as root on host; the host's result as a dict."""
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.environ.get("ANSIBLE_CONFIG", str(REPO / "ansible.cfg")),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    proc = subprocess.run(
        ["ansible", host, "-i", inventory, "--become", "-m", module, "-a", args],
        env=env, cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    try:
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]
    except (ValueError, KeyError, IndexError):
        raise RuntimeError(f"ansible {module} on {host} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}") from None


def run_bench(inventory, host, extra=()):
    """Copy the bench to host, run it, remove it; the bench's JSON document."""
    copied = ansible(inventory, host, "ansible.builtin.copy", f"src={HERE / 'pool_bench.py'} dest={REMOTE_SCRIPT}")
    if copied.get("failed"):
        raise RuntimeError(f"copying the bench to {host} failed: {copied.get('msg')}")
    try:
        result = ansible(inventory, host, "ansible.builtin.command", f"chdir={APP_DIR} {remote_command(extra)}")
    finally:
        ansible(inventory, host, "ansible.builtin.file", f"path={REMOTE_SCRIPT} state=absent")
    if result.get("rc") != 0:
        raise RuntimeError(f"the bench failed on {host}: {result.get('stderr', '')[-3000:]}")
    return json.loads(result["stdout"])


GREEN_POOLS = ("eventlet", "gevent")
MIN_RATIO_PREFORK_8 = 3.0
GATE_POOL = "eventlet"


def rows_of(result, pattern):
    return [row for row in result["throughput"] if row["pattern"] == pattern]


def find(rows, pool, concurrency):
    """The row of pool at concurrency run as the role runs it (not a Celery default comparison row)."""
    for row in rows:
        if (row["pool"], row["concurrency"]) == (pool, concurrency) and row["as_role"]:
            return row
    return None


def ratio(row, base):
    if not row or not base or not base["tasks_per_second"]:
        return None
    return round(row["tasks_per_second"] / base["tasks_per_second"], 1)


def green_ratios(result, pattern="steady"):
    """{(pool, concurrency): (x prefork 2, x prefork 8)} for each green pool row of the pattern."""
    rows = rows_of(result, pattern)
    prefork2, prefork8 = find(rows, "prefork", 2), find(rows, "prefork", 8)
    return {
        (row["pool"], row["concurrency"]): (ratio(row, prefork2), ratio(row, prefork8))
        for row in rows
        if row["pool"] in GREEN_POOLS and row["as_role"]
    }


def verdict(result, min_ratio=MIN_RATIO, min_ratio_8=MIN_RATIO_PREFORK_8, gate_pool=GATE_POOL):
    """The failed conditions of a bench result (empty when it passes).

    The bar against prefork at concurrency 2 holds for gate_pool, the pool of the lab's green worker (issue 12:
    "the green worker"); the bar against prefork at concurrency 8 for every green pool. The other ratios are
    reported, not judged.
    """
    failures = []
    ratios = green_ratios(result)
    if not any(pool == gate_pool for pool, _concurrency in ratios):
        failures.append(f"no {gate_pool} row with the steady pattern")
    for (pool, concurrency), (to_2, to_8) in ratios.items():
        if pool == gate_pool and (to_2 is None or to_2 < min_ratio):
            failures.append(f"steady: {pool} {concurrency} is {to_2} x prefork 2 (goal >= {min_ratio:g})")
        if to_8 is None or to_8 < min_ratio_8:
            failures.append(f"steady: {pool} {concurrency} is {to_8} x prefork 8 (goal >= {min_ratio_8:g})")
    for row in result["throughput"]:
        if row["completed"] != row["tasks"] or (row["lost"], row["duplicates"], row["unknown"]) != (0, 0, 0):
            failures.append(
                f"{row['pattern']}: {row['pool']} {row['concurrency']}: {row['completed']}/{row['tasks']} "
                f"completed, {row['lost']} lost, {row['duplicates']} duplicates, {row['unknown']} unknown"
            )
    green_mem, prefork_mem = result["memory"]
    for row in result["memory"]:
        if row["completed"] != row["tasks"]:
            failures.append(f"memory: {row['pool']} {row['concurrency']}: {row['completed']}/{row['tasks']} completed")
    for key, label in (("rss_rest_kib", "at rest"), ("rss_load_kib", "under load")):
        if green_mem[key] >= prefork_mem[key]:
            failures.append(
                f"memory {label}: {green_mem['pool']} {green_mem['concurrency']} uses {green_mem[key]} KiB, "
                f"not less than prefork {prefork_mem['concurrency']} ({prefork_mem[key]} KiB)"
            )
    return failures


def mib(kib):
    return f"{kib / 1024:.1f}"


def cell(value):
    return "" if value is None else f"{value:g}"


PATTERN_TEXT = {
    "steady": "published one by one at a steady rate to the running worker",
    "burst": "published back to back, as fast as the client can, to the running worker",
    "prefilled": (
        "published while the worker's consumer was cancelled, then consumed at once (the kind setting of the "
        "first version of this bench, for comparison only: a backlog present when consuming starts hides a "
        "throttled loop)"
    ),
}


def throughput_table(result, pattern):
    rows = rows_of(result, pattern)
    prefork2, prefork8 = find(rows, "prefork", 2), find(rows, "prefork", 8)
    first = rows[0]
    lines = [
        f"### {pattern}",
        "",
        f"{first['tasks']} tasks `core.sleep({first['task_seconds']:g})` {PATTERN_TEXT.get(pattern, pattern)}.",
        "",
        "| pool | concurrency | AMQP heartbeat | tasks | publish/s | tasks/s | latency p50 ms | latency p95 ms "
        "| completed | lost | dup | worker CPU ms/task | load before/after | x prefork 2 | x prefork 8 |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['pool']} | {row['concurrency']} | {row['heartbeat']} | {row['tasks']} | {row['publish_rate']:g} | "
            f"{row['tasks_per_second']:g} | {cell(row['latency_p50_ms'])} | {cell(row['latency_p95_ms'])} | "
            f"{row['completed']}/{row['tasks']} | {row['lost']} | {row['duplicates']} | "
            f"{row['worker_cpu_ms_per_task']:g} | {'/'.join(str(x) for x in row['loadavg'])} | "
            f"{cell(ratio(row, prefork2))} | {cell(ratio(row, prefork8))} |"
        )
    return lines


def result_section(result, failures, today):
    """One run's section: where and when, its verdict, a table per pattern and the memory table."""
    patterns = list(dict.fromkeys(row["pattern"] for row in result["throughput"]))
    cpus = result["throughput"][0].get("cpus", "?")
    lines = [
        f"## Debian {result['debian']}",
        "",
        f"- Date: {result.get('date', today)}",
        f"- Host: {result['host']}, Python {result['python']}, Celery {result['celery']}, {cpus} CPUs",
        f"- Verdict: **{'pass' if not failures else 'FAIL'}**"
        + ("" if not failures else " (" + "; ".join(failures) + ")"),
        "",
    ]
    for pattern in patterns:
        lines += throughput_table(result, pattern) + [""]
    green_mem, prefork_mem = result["memory"]
    lines += [
        "### memory",
        "",
        f"Twice the concurrency in `core.sleep({green_mem['task_seconds']:g})` tasks, streamed at "
        f"{green_mem.get('publish_rate', '?'):g} per second.",
        "",
        "| pool | concurrency | RSS at rest MiB | RSS under load MiB | completed |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in (green_mem, prefork_mem):
        lines.append(
            f"| {row['pool']} | {row['concurrency']} | {mib(row['rss_rest_kib'])} | {mib(row['rss_load_kib'])} | "
            f"{row['completed']}/{row['tasks']} |"
        )
    return [*lines, ""]


def markdown(results, min_ratio=MIN_RATIO, min_ratio_8=MIN_RATIO_PREFORK_8, today=None):
    """The report of one or more runs (one per Debian release), each with its own verdict."""
    today = today or datetime.date.today().isoformat()
    lines = [
        "# Pool benchmark: green pools, threads and prefork under streamed traffic",
        "",
        "Written by `bench/run_pool_bench.py` (issue 12); do not edit by hand. The bench (`bench/pool_bench.py`)",
        "runs on an app host with the workers role's virtualenv, wrapper and environment file, and starts",
        "throwaway workers as the worker user on queues of their own, one after the other in the same run, with",
        "events on as the role runs them. Each worker answers a ping and the broker shows its consumer before the",
        "first task is published: tasks reach a running, connected worker, as production traffic does. The",
        "publishing client, the broker, Flower and the worker share the machine's CPUs.",
        "",
        f"Goal (steady pattern): eventlet, the pool of the lab's green worker, as the role runs it at least "
        f"{min_ratio:g} x",
        f"prefork at concurrency 2; every green pool at least {min_ratio_8:g} x prefork at concurrency 8; every task",
        "completed exactly once, counted by id in the completion ledger; eventlet at concurrency 256 below prefork",
        "at concurrency 8 in memory, at rest and under load. The other ratios are reported, not judged.",
        "",
        "`tasks/s` is the completed tasks over the time from the first publish (for `prefilled`, from the moment",
        "the broker shows the consumer) to the last completion; latency runs from a task's publish to the start of",
        "its body; `worker CPU ms/task` is the CPU the worker's processes used per task; `load` the machine's",
        "1-minute load average. `AMQP heartbeat` is what the worker ran with: `0 (role)` for the green pools as",
        "the workers role configures them, `Celery default` (120 s) otherwise. The `Celery default` rows of a",
        'green pool show the throttled loop of Celery 5.7 (see roles/workers/README.md, "Green pools"); they get',
        "fewer tasks, or they alone would take minutes. Memory is the total RSS of the worker (main process and",
        "every child; shared pages of prefork children count once per process, as `ps` shows them), 3 s after",
        "the worker answered a ping, and the peak under load.",
        "",
    ]
    for result in results:
        lines += result_section(result, verdict(result, min_ratio, min_ratio_8), today)
    lines += [
        "Reproduce: deploy the stack (`make lab`, or `LAB_RELEASE=trixie make lab`), then `make bench`, which",
        "keeps each release's raw result in `docs/bench-pools-<release>.json` and renders this page from all of",
        "them.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", help="run the bench on --host of this inventory")
    parser.add_argument("--host", default="app1")
    parser.add_argument("--json", help="write this run's JSON document here")
    parser.add_argument("--output", help="write the report of this run and of --include here")
    parser.add_argument("--include", nargs="*", default=[], help="JSON documents of earlier runs to report too")
    parser.add_argument("--min-ratio", type=float, default=MIN_RATIO)
    parser.add_argument("--min-ratio-prefork-8", type=float, default=MIN_RATIO_PREFORK_8)
    parser.add_argument("bench_args", nargs="*", help="arguments for pool_bench.py (after --)")
    args = parser.parse_args(argv)
    results = []
    if args.inventory:
        try:
            result = run_bench(args.inventory, args.host, args.bench_args)
        except RuntimeError as error:
            print(f"pool bench: {error}", file=sys.stderr)
            return 2
        result["date"] = datetime.date.today().isoformat()
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        results.append(result)
    for path in sorted(set(args.include) - {args.json}):
        results.append(json.loads(pathlib.Path(path).read_text(encoding="utf-8")))
    if not results:
        parser.error("give -i INVENTORY or --include FILE")
    if args.output:
        text = markdown(results, args.min_ratio, args.min_ratio_prefork_8)
        pathlib.Path(args.output).write_text(text, encoding="utf-8")
        print(f"written: {args.output}")
    failed = False
    for result in results:
        for (pool, concurrency), (to_2, to_8) in green_ratios(result).items():
            print(f"{result['debian']}: steady {pool} {concurrency} is {to_2} x prefork 2 and {to_8} x prefork 8")
        for failure in verdict(result, args.min_ratio, args.min_ratio_prefork_8):
            print(f"FAIL ({result['debian']}): {failure}", file=sys.stderr)
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
