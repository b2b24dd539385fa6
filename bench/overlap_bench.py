"""Overlap benchmark (issue 19): a busy worker restarted with and without its handover, side by side in one run.

Controller side, on a converged lab (`make lab`; `LAB_RELEASE` names the release, as for `make lab`):

    python bench/overlap_bench.py -i inventories/lab [--rounds 2]

The lab's `celery-default` worker on app2 (prefork, concurrency 8, the only consumer of the queue `celery`) gets
LONG tasks of LONG_SECONDS that fill its pool; once they all run, a short task is sent every 0.2 s
(bench/overlap_load.py on app2) and, two seconds later, celeryops.stack.celery_worker restarts the worker
(ad-hoc `ansible`), with `overlap=true` and `overlap=false` in alternating rounds. Per round:

- lost and duplicated tasks, counted by id in the ledgers of the worker and of its handover;
- whether every long task ran to its end on the old process (its code loaded before the request);
- first new code: when the first task ran on a process that loaded the code after the request, counted from the
  request and from the restart's start (overlap: supervisord's spawn of the handover, the module's first change;
  alone: the module's start, its return minus its own total_seconds);
- boot: overlap, the module's boot_seconds of the handover (its start until it ran past startsecs and answered a
  ping); alone, the new process's spawn until its first task;
- longest wait: the longest time from publish to start of a short task sent while the module ran;
- memory: the peak resident memory of the worker user's processes during the restart minus the median before it;
  CPU: the app2 container's CPU-seconds during the restart (its cgroup).

Goal (overlap rounds): first new code from the restart's start <= boot + 1 s, every long task on the old code,
0 lost, 0 duplicated; alone rounds: 0 lost, 0 duplicated. Writes docs/bench-overlap-<release>.json and renders
docs/bench-overlap.md from every release measured. Exits 1 when the goal is missed.
"""

import argparse
import datetime
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import threading
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
REMOTE_DIR = "/tmp/celeryops-overlap-bench"  # noqa: S108 - a directory on the app host, removed afterwards
VENV_PYTHON = "/opt/celery/venv/bin/python"
APP_DIR = "/srv/myproject"
HOST = "app2"
PROGRAM = "celery-default"
QUEUE = "celery"
NODE = "celery@celery.app2"
HANDOVER_NODE = "celery@celery-handover.app2"
LONG, LONG_SECONDS = 8, 20.0
GOAL_SLACK = 1.0
SUPERVISORD_LOG = "/var/log/supervisor/supervisord.log"


def docker(container, *argv, check=True):
    proc = subprocess.run(["docker", "exec", container, *argv], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{container}: {argv} failed: {proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return proc.stdout


def exists(container, path):
    return subprocess.run(["docker", "exec", container, "test", "-f", path], check=False).returncode == 0


def load(container, *argv):
    out = docker(container, "sh", "-c", f"cd {APP_DIR} && {VENV_PYTHON} {REMOTE_DIR}/overlap_load.py " + " ".join(argv))
    return json.loads(out.strip().splitlines()[-1])


def cgroup_cpu(container):
    """CPU-seconds the container has used (its cgroup, read on this machine: cpuacct.usage in nanoseconds on v1,
    usage_usec of cpu.stat on v2); None when neither is found."""
    cid = subprocess.run(
        ["docker", "inspect", "--format", "{{.Id}}", container], capture_output=True, text=True, check=True
    ).stdout.strip()
    for path in (
        f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage",
        f"/sys/fs/cgroup/cpu,cpuacct/docker/{cid}/cpuacct.usage",
    ):
        if os.path.exists(path):
            return int(pathlib.Path(path).read_text(encoding="utf-8").strip()) / 1e9
    for path in (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", f"/sys/fs/cgroup/docker/{cid}/cpu.stat"):
        if os.path.exists(path):
            usage = re.search(r"^usage_usec (\d+)", pathlib.Path(path).read_text(encoding="utf-8"), re.MULTILINE)
            return int(usage.group(1)) / 1e6 if usage else None
    return None


# The proportional set size (KiB) of every process of the worker user, summed: a page shared by a prefork
# worker's processes counts once in all (an RSS sum would count it once per process).
PSS_SCRIPT = "for p in $(pgrep -u celery); do awk '/^Pss:/ {print $2}' /proc/$p/smaps_rollup 2>/dev/null; done"


class MemorySampler(threading.Thread):
    """The worker user's memory (PSS, KiB, every process summed), sampled every 0.5 s."""

    def __init__(self, container):
        super().__init__(daemon=True)
        self.container = container
        self.samples = []
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            out = docker(self.container, "sh", "-c", PSS_SCRIPT, check=False)
            self.samples.append((time.time(), sum(int(line) for line in out.split() if line.isdigit())))
            self.stop.wait(0.5)


def spawn_time(container, program, pid):
    """When supervisord spawned ``program`` with ``pid`` (its log, in the container's time zone: UTC)."""
    log = docker(container, "tail", "-n", "400", SUPERVISORD_LOG)
    match = re.search(rf"^(\S+ \S+) INFO spawned: '{re.escape(program)}' with pid {pid}$", log, re.MULTILINE)
    if not match:
        return None
    stamp = datetime.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f")
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp()


def restart(inventory, overlap):
    env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}
    args = {"name": PROGRAM, "state": "restarted", "overlap": overlap}
    argv = ["ansible", HOST, "-i", inventory, "--become", "-m", "celeryops.stack.celery_worker", "-a", json.dumps(args)]
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the restart failed: {proc.stdout[-3000:]}{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][HOST]["programs"][0]


def one_round(inventory, container, overlap, index):
    out = f"{REMOTE_DIR}/round{index}.json"
    docker(
        container, "sh", "-c",
        f"cd {APP_DIR} && nohup {VENV_PYTHON} {REMOTE_DIR}/overlap_load.py stream --queue {QUEUE} --node {NODE} "
        f"--long {LONG} --long-seconds {LONG_SECONDS} --out {out} > {out}.log 2>&1 &",
    )  # fmt: skip
    deadline = time.monotonic() + 90
    while not exists(container, f"{out}.ready"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the long tasks never all ran: {docker(container, 'cat', out + '.log', check=False)}")
        time.sleep(0.3)
    sampler = MemorySampler(container)
    sampler.start()
    time.sleep(2)
    cpu_before = cgroup_cpu(container)
    requested = time.time()
    item = restart(inventory, overlap)
    returned = time.time()
    cpu_after = cgroup_cpu(container)
    time.sleep(3)
    sampler.stop.set()
    docker(container, "touch", f"{out}.stop")
    deadline = time.monotonic() + 30
    while not exists(container, out):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stream did not end: {docker(container, 'cat', out + '.log', check=False)}")
        time.sleep(0.3)
    counted = load(container, "count", "--ids", out, "--node", NODE, "--node", HANDOVER_NODE)
    entries = counted["entries"]
    long_ids = set(counted["long_ids"])
    new_code = sorted(entry["start"] for entry in entries if entry["loaded"] > requested)
    handover = item["handover"]
    if overlap:
        started = spawn_time(container, handover["name"], handover["pid"])
        boot = handover["boot_seconds"]
    else:
        started = returned - item["total_seconds"]
        spawned = spawn_time(container, PROGRAM, item["pid_after"])
        later = [entry["start"] for entry in entries if entry["loaded"] > requested and entry["node"] == NODE]
        boot = min(later) - spawned if later and spawned else None
    waits = [
        entry["start"] - counted["sent_at"][entry["id"]]
        for entry in entries
        if entry["id"] not in long_ids and requested <= counted["sent_at"][entry["id"]] <= returned
    ]
    before = [rss for when, rss in sampler.samples if when < requested]
    during = [rss for when, rss in sampler.samples if requested <= when <= returned]
    first_new = new_code[0] if new_code else None
    return {
        "overlap": overlap,
        "sent": counted["sent"],
        "lost": counted["lost"],
        "duplicated": counted["duplicated"],
        "long_on_old_code": sum(1 for e in entries if e["id"] in long_ids and e["loaded"] < requested),
        "on_handover": sum(1 for entry in entries if entry["node"] == HANDOVER_NODE),
        "first_new_from_request": None if first_new is None else first_new - requested,
        "first_new_from_start": None if first_new is None or started is None else first_new - started,
        "boot": boot,
        "longest_wait": max(waits) if waits else None,
        "restart_seconds": item["total_seconds"],
        "request_seconds": returned - requested,
        "handover": handover,
        "extra_pss_mib": (max(during) - statistics.median(before)) / 1024 if before and during else None,
        "cpu_seconds": None if cpu_before is None or cpu_after is None else cpu_after - cpu_before,
    }


def alone_boot(rows):
    """The median boot of the new process in the rounds without overlap (spawn until its first task)."""
    boots = [row["boot"] for row in rows if not row["overlap"] and row["boot"] is not None]
    return statistics.median(boots) if boots else None


def verdict(row, rows):
    """A round's pass: 0 lost, 0 duplicated; with overlap also every long task on the old code and the first task
    on new code within 1 s of the shorter of two boots: the handover's (the module's boot_seconds) and the new
    process's in the rounds without overlap."""
    if row["lost"] or row["duplicated"]:
        return False
    if not row["overlap"]:
        return True
    boot = min(value for value in (row["boot"], alone_boot(rows)) if value is not None)
    return (
        row["long_on_old_code"] == LONG
        and row["first_new_from_start"] is not None
        and row["first_new_from_start"] <= boot + GOAL_SLACK
    )


def fmt(value, digits=1):
    return "" if value is None else f"{value:.{digits}f}"


def render(results):
    lines = [
        "# Overlap benchmark: a busy worker restarted with and without its handover",
        "",
        "Written by `bench/overlap_bench.py` (issue 19); do not edit by hand. One run per release; rounds with and",
        "without the overlap alternate in that run.",
        "",
        f"- Load per round: {LONG} tasks of {LONG_SECONDS:.0f} s fill the pool of app2's `celery-default` (prefork, "
        "concurrency 8, the only consumer of `celery`); once they all run, a task of 0.1 s is sent every 0.2 s; the",
        "  restart (`celeryops.stack.celery_worker` state=restarted through ad-hoc `ansible`) is requested 2 s later.",
        "- First new code: the first task that ran on a process that imported the code after the request, from the",
        "  request and from the restart's start (overlap: supervisord's spawn of the handover, the module's first",
        "  change; alone: the module's start, from its total_seconds). Boot: overlap, the module's `boot_seconds` of",
        "  the handover (start until past startsecs and answering a ping); alone, the new process's spawn until its",
        "  first task.",
        "- Longest wait: publish to start of the short tasks sent while the restart ran. Long on old: long tasks that",
        "  ran to their end on the old process. Extra memory: the peak of the worker user's processes' summed PSS",
        "  during the restart minus its median before it. CPU: the app2 container's CPU-seconds during the restart",
        "  (the load's sender included).",
        f"- Goal (overlap): first new code from the restart's start <= boot + {GOAL_SLACK:.0f} s, with the shorter "
        "boot of the handover's and the median of the rounds alone; every long task on the old code; 0 lost, 0 "
        "duplicated. Alone: 0 lost, 0 duplicated.",
        "",
    ]
    for release, result in sorted(results.items()):
        passed = all(verdict(row, result["rows"]) for row in result["rows"])
        lines += [
            f"## Debian {result['debian']} ({release})",
            "",
            f"Date: {result['date']}; Celery {result['celery']}; machine: {result['cpus']} CPUs. "
            f"Verdict: **{'pass' if passed else 'FAIL'}**",
            "",
            "| # | restart | lost | dup | long on old | on handover | first new code from request s | from start s "
            "| boot s | longest wait s | restart s | extra memory MiB | CPU s |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for index, row in enumerate(result["rows"], 1):
            lines.append(
                f"| {index} | {'overlap' if row['overlap'] else 'alone'} | {row['lost']}/{row['sent']} | "
                f"{row['duplicated']} | {row['long_on_old_code']}/{LONG} | {row['on_handover']} | "
                f"{fmt(row['first_new_from_request'])} | {fmt(row['first_new_from_start'])} | {fmt(row['boot'])} | "
                f"{fmt(row['longest_wait'])} | {fmt(row['restart_seconds'])} | {fmt(row['extra_pss_mib'], 0)} | "
                f"{fmt(row['cpu_seconds'])} |"
            )
        lines.append("")
    lines += [
        "Reproduce: `make lab` (`LAB_RELEASE=trixie` for Debian 13), then",
        "`python bench/overlap_bench.py -i inventories/lab`.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", default="inventories/lab")
    parser.add_argument("--prefix", default="celeryops")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of each kind")
    parser.add_argument("--release", default=os.environ.get("LAB_RELEASE", "bookworm"))
    args = parser.parse_args(argv)
    container = f"{args.prefix}-{HOST}"
    docker(container, "mkdir", "-p", REMOTE_DIR)
    for name in ("pool_bench.py", "restart_load.py", "overlap_load.py"):
        # Through stdin: `docker cp` cannot write below a tmpfs mount, and Debian 13's /tmp is one.
        subprocess.run(
            ["docker", "exec", "-i", container, "sh", "-c", f"cat > {REMOTE_DIR}/{name}"],
            input=(HERE / name).read_bytes(), check=True,
        )  # fmt: skip
    rows = []
    try:
        for index in range(2 * args.rounds):
            row = one_round(args.inventory, container, overlap=index % 2 == 0, index=index)
            print(json.dumps({k: v for k, v in row.items() if k != "handover"}), file=sys.stderr)
            rows.append(row)
    finally:
        docker(container, "rm", "-rf", REMOTE_DIR, check=False)
    result = {
        "date": datetime.date.today().isoformat(),
        "debian": docker(container, "cat", "/etc/debian_version").strip(),
        "celery": docker(
            container, "/opt/celery/venv/bin/python", "-c", "import celery; print(celery.__version__)"
        ).strip(),
        "cpus": os.cpu_count(),
        "rows": rows,
    }
    (REPO / "docs" / f"bench-overlap-{args.release}.json").write_text(json.dumps(result, indent=1) + "\n")
    results = {}
    for path in sorted((REPO / "docs").glob("bench-overlap-*.json")):
        results[path.stem.removeprefix("bench-overlap-")] = json.loads(path.read_text())
    (REPO / "docs" / "bench-overlap.md").write_text(render(results))
    passed = all(verdict(row, rows) for row in rows)
    print(f"overlap bench ({args.release}): {'pass' if passed else 'FAIL'}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
