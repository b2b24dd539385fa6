"""Run bench/pool_bench.py on an app host of an inventory, write docs/bench-pools.md, fail under the bar.

The bench runs on the host (default app1, which must have a worker with the green pool, so the pool library is
installed) as root from the application directory, with the workers role's virtualenv, wrapper and
environment file. Usage (from the checkout, with the virtualenv's ansible on PATH):

    python bench/run_pool_bench.py -i inventories/lab [--host app1] [--output docs/bench-pools.md]

Exit status: 0 when the green pool reaches at least --min-ratio (20) times the prefork throughput, uses less
memory than prefork both at rest and under load, and every task completed exactly once; 1 otherwise; 2 when
the bench could not run.
"""

import argparse
import datetime
import json
import os
import pathlib
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
        + list(extra)
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


def verdict(result, min_ratio=MIN_RATIO):
    """The failed conditions of a bench result (empty when it passes)."""
    failures = []
    green, prefork = result["throughput"]
    if result["ratio"] < min_ratio:
        failures.append(f"throughput ratio {result['ratio']} < {min_ratio}")
    for row in result["throughput"]:
        if row["completed"] != row["tasks"] or row["duplicates"] != 0:
            failures.append(
                f"{row['pool']}: {row['completed']}/{row['tasks']} tasks completed, {row['duplicates']} duplicates"
            )
    green_mem, prefork_mem = result["memory"]
    for key, label in (("rss_rest_kib", "at rest"), ("rss_load_kib", "under load")):
        if green_mem[key] >= prefork_mem[key]:
            failures.append(
                f"memory {label}: {green_mem['pool']} {green_mem['concurrency']} uses {green_mem[key]} KiB, "
                f"not less than prefork {prefork_mem['concurrency']} ({prefork_mem[key]} KiB)"
            )
    return failures


def mib(kib):
    return f"{kib / 1024:.1f}"


def markdown(result, failures, min_ratio=MIN_RATIO, today=None):
    today = today or datetime.date.today().isoformat()
    green, prefork = result["throughput"]
    lines = [
        "# Pool benchmark: green threads versus prefork",
        "",
        "Written by `bench/run_pool_bench.py` (issue 5); do not edit by hand. The bench (`bench/pool_bench.py`)",
        "runs on an app host with the workers role's virtualenv, wrapper and environment file, and starts",
        "throwaway workers as the worker user on queues of their own, one after the other in the same run.",
        "",
        f"- Date: {today}",
        f"- Host: {result['host']}, Debian {result['debian']}, Python {result['python']}",
        f"- Celery: {result['celery']}",
        f"- Verdict: **{'pass' if not failures else 'FAIL'}**"
        + ("" if not failures else " (" + "; ".join(failures) + ")"),
        "",
        "## Throughput",
        "",
        f"{green['tasks']} tasks `core.sleep({green['task_seconds']})` (each sleeps "
        f"{green['task_seconds'] * 1000:.0f} ms and appends its id to the completion ledger), timed from the",
        "moment the worker starts consuming a queue that already holds every message to the last completion.",
        f"Goal: ratio >= {min_ratio:g}, every task completed exactly once.",
        "",
        "| pool | concurrency | tasks/s | seconds | completed | duplicates | worker CPU ms/task | load | ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["throughput"]:
        ratio = result["ratio"] if row is green else 1.0
        lines.append(
            f"| {row['pool']} | {row['concurrency']} | {row['tasks_per_second']} | {row['seconds']} | "
            f"{row['completed']}/{row['tasks']} | {row['duplicates']} | {row.get('worker_cpu_ms_per_task', '')} | "
            f"{'/'.join(str(x) for x in row.get('loadavg', []))} | {ratio:g} |"
        )
    green_mem, prefork_mem = result["memory"]
    lines += [
        "",
        "The green pool's throughput is bound by the CPU its one process gets (the prefork side is bound by the",
        "sleeps): `worker CPU ms/task` is what the worker used per task, `load` the machine's 1-minute load",
        f"average before/after (on {green.get('cpus', '?')} CPUs); a busy machine lowers the ratio.",
        "",
        "## Memory",
        "",
        "Total RSS of the worker (main process and every child; shared pages of prefork children count once per",
        "process, as `ps` shows them), 3 s after the worker answered a ping, and the peak while it ran twice its",
        f"concurrency of `core.sleep({green_mem.get('task_seconds', 1.0)})` tasks. Goal: "
        f"{green_mem['pool']} at concurrency {green_mem['concurrency']} below prefork at",
        f"concurrency {prefork_mem['concurrency']}, both at rest and under load.",
        "",
        "| pool | concurrency | RSS at rest MiB | RSS under load MiB |",
        "|---|---:|---:|---:|",
    ]
    for row in result["memory"]:
        lines.append(
            f"| {row['pool']} | {row['concurrency']} | {mib(row['rss_rest_kib'])} | {mib(row['rss_load_kib'])} |"
        )
    lines += [
        "",
        "Reproduce: deploy the stack (`make lab`), then",
        "`python bench/run_pool_bench.py -i inventories/lab`.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("--host", default="app1")
    parser.add_argument("--output", default=str(REPO / "docs" / "bench-pools.md"))
    parser.add_argument("--json", help="also write the bench's JSON document here")
    parser.add_argument("--min-ratio", type=float, default=MIN_RATIO)
    args = parser.parse_args(argv)
    try:
        result = run_bench(args.inventory, args.host)
    except RuntimeError as error:
        print(f"pool bench: {error}", file=sys.stderr)
        return 2
    failures = verdict(result, args.min_ratio)
    pathlib.Path(args.output).write_text(markdown(result, failures, args.min_ratio), encoding="utf-8")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    green, prefork = result["throughput"]
    green_mem, prefork_mem = result["memory"]
    print(
        f"throughput: {green['pool']} {green['concurrency']} {green['tasks_per_second']} tasks/s, prefork "
        f"{prefork['concurrency']} {prefork['tasks_per_second']} tasks/s, ratio {result['ratio']} (goal >= "
        f"{args.min_ratio:g})\nmemory under load: {green_mem['pool']} {green_mem['concurrency']} "
        f"{mib(green_mem['rss_load_kib'])} MiB, prefork {prefork_mem['concurrency']} "
        f"{mib(prefork_mem['rss_load_kib'])} MiB\nwritten: {args.output}"
    )
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
