"""Restart benchmark (issue 4): one worker under load, restarted three ways side by side in one run.

Controller side; bench/restart_bench.sh starts the lab and calls this. For each target HOST:PROGRAM of a
converged lab (default app2:celery-default, prefork, and app1:celery-customers, eventlet; reached with docker
exec as PREFIX-HOST), two throwaway copies of the program on queues of their own:

- celery-benchrole: the program as the workers role wrote it (stopwaitsecs, startsecs, killasgroup, ...), on
  the queue bench-restart-role;
- celery-benchplain: the same command with supervisor's defaults for everything else (stopwaitsecs=10,
  startsecs=1, killasgroup=false), on the queue bench-restart-plain.

The load of each run: LONG tasks of LONG_SECONDS first (they start at once), then SHORT tasks of
SHORT_SECONDS; RESTART_AFTER seconds after the long tasks started, the worker is restarted by

1. celeryops.stack.celery_worker state=restarted (celery-benchrole, through ansible),
2. `supervisorctl restart` (celery-benchplain, supervisor defaults, through docker exec),
3. community.general.supervisorctl state=restarted (celery-benchrole, through ansible).

Measured per run: tasks lost and duplicated (ledger ids against the ids sent), the restart wall time (from the
restart request until the command returned and the new worker process answered), and its ratio to the
physical limit: what remained of the longest in-flight task at the restart request, plus the worker's boot
time (from `supervisorctl start` to the first answer; the median of three starts in the same run, per program).
acks_late is off: a task killed mid-run is lost; reserved, unstarted tasks go back to the broker.
"""

import argparse
import contextlib
import datetime
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
REMOTE_DIR = "/tmp/celeryops-restart-bench"  # noqa: S108 - a directory on the app host, removed afterwards
VENV_PYTHON = "/opt/celery/venv/bin/python"
APP_DIR = "/srv/myproject"
CONF_DIR = "/etc/supervisor/conf.d"
GOAL_RATIO = 1.2
BOOT_SAMPLES = 3
PROGRAMS = {
    "role": {"program": "celery-benchrole", "queue": "bench-restart-role"},
    "plain": {"program": "celery-benchplain", "queue": "bench-restart-plain"},
}


class Host:
    def __init__(self, prefix, name):
        self.name = name
        self.container = f"{prefix}-{name}"

    def sh(self, script, check=True):
        proc = subprocess.run(
            ["docker", "exec", "-i", self.container, "sh", "-c", script], capture_output=True, text=True, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{self.container}: {script!r} failed: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def load_command(self, *argv):
        return ["docker", "exec", "-w", APP_DIR, self.container, VENV_PYTHON, f"{REMOTE_DIR}/restart_load.py", *argv]

    def load(self, *argv):
        proc = subprocess.run(self.load_command(*argv), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"restart_load.py {argv[0]} failed: {proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def node_of(queue, host):
    return f"celery@{queue}.{host}"


def bench_program(role_conf, name, queue, plain):
    """A program file for the bench, from the role's celery-default program file."""
    command = re.search(r"^command\s*=\s*(.+)$", role_conf, re.MULTILINE).group(1)
    command = re.sub(r"--queues=\S+", f"--queues={queue}", command)
    command = re.sub(r"--hostname=\S+", f"--hostname={queue}.%%h", command)
    if plain:
        user = re.search(r"^user\s*=\s*(.+)$", role_conf, re.MULTILINE).group(1)
        return f"[program:{name}]\ncommand={command}\nuser={user}\ndirectory={APP_DIR}\n"
    text = re.sub(r"^\[program:[^\]]+\]", f"[program:{name}]", role_conf, flags=re.MULTILINE)
    text = re.sub(r"^command\s*=.*$", lambda _: f"command={command}", text, flags=re.MULTILINE)
    return re.sub(r"^stdout_logfile\s*=.*$", f"stdout_logfile=/var/log/celery/{name}.log", text, flags=re.MULTILINE)


def setup(host, source_program):
    host.sh(f"mkdir -p {REMOTE_DIR}")
    for name in ("pool_bench.py", "restart_load.py"):
        subprocess.run(["docker", "cp", str(HERE / name), f"{host.container}:{REMOTE_DIR}/{name}"], check=True)
    role_conf = host.sh(f"cat {CONF_DIR}/{source_program}.conf")
    for kind, spec in PROGRAMS.items():
        text = bench_program(role_conf, spec["program"], spec["queue"], plain=kind == "plain")
        subprocess.run(
            ["docker", "exec", "-i", host.container, "sh", "-c", f"cat > {CONF_DIR}/{spec['program']}.conf"],
            input=text, text=True, check=True,
        )  # fmt: skip
    host.sh(
        "supervisorctl reread >/dev/null; supervisorctl update " + " ".join(p["program"] for p in PROGRAMS.values())
    )
    for spec in PROGRAMS.values():
        host.load("ready", "--node", node_of(spec["queue"], host.name), "--timeout", "120")
    return role_conf


def teardown(host):
    for spec in PROGRAMS.values():
        host.sh(f"supervisorctl stop {spec['program']}; rm -f {CONF_DIR}/{spec['program']}.conf", check=False)
    host.sh("supervisorctl reread >/dev/null; supervisorctl update >/dev/null", check=False)
    for spec in PROGRAMS.values():
        with contextlib.suppress(RuntimeError):
            host.load("purge", "--queue", spec["queue"])
    host.sh(f"rm -rf {REMOTE_DIR}", check=False)


def boot_seconds(host, spec):
    """From `supervisorctl start` of the stopped program to the first answer of the new process."""
    node = node_of(spec["queue"], host.name)
    old = host.load("ready", "--node", node, "--timeout", "60")["pid"]
    host.sh(f"supervisorctl stop {spec['program']}")
    start = time.time()
    starter = subprocess.Popen(
        ["docker", "exec", host.container, "supervisorctl", "start", spec["program"]], stdout=subprocess.DEVNULL
    )
    answered = host.load("ready", "--node", node, "--old-pid", str(old), "--timeout", "120")
    starter.wait()
    return answered["ts"] - start


def restart_command(args, host, way, spec):
    inventory_host = ["ansible", host.name, "-i", args.inventory, "--become"]
    if way == "module":
        return [*inventory_host, "-m", "celeryops.stack.celery_worker", "-a", f"name={spec['program']} state=restarted"]
    if way == "community":
        return [
            *inventory_host,
            "-m",
            "community.general.supervisorctl",
            "-a",
            f"name={spec['program']} state=restarted",
        ]
    return ["docker", "exec", host.container, "supervisorctl", "restart", spec["program"]]


def ansible_overhead(args, host):
    """Seconds of an ad-hoc ansible.builtin.ping of the host: what any module call costs before it acts."""
    start = time.time()
    subprocess.run(
        ["ansible", host.name, "-i", args.inventory, "--become", "-m", "ansible.builtin.ping"],
        cwd=REPO, capture_output=True, check=False,
    )  # fmt: skip
    return time.time() - start


def alive(host, pids):
    """Which of pids still run on the host."""
    if not pids:
        return []
    out = host.sh("for p in " + " ".join(map(str, pids)) + '; do [ -d /proc/$p ] && echo "$p"; done; true')
    return [int(line) for line in out.split()]


def run_way(host, args, way, spec, boot):
    node = node_of(spec["queue"], host.name)
    pid_before = host.load("ready", "--node", node, "--timeout", "120")["pid"]
    ids_file = f"{REMOTE_DIR}/ids-{way}.json"
    sent = host.load(
        "send", "--queue", spec["queue"], "--node", node, "--out", ids_file,
        "--long", str(args.long), "--long-seconds", str(args.long_seconds),
        "--short", str(args.short), "--short-seconds", str(args.short_seconds),
    )  # fmt: skip
    time.sleep(max(0.0, sent["long_started"] + args.restart_after - time.time()))
    old_processes = [pid_before] + [int(p) for p in host.sh(f"pgrep -P {pid_before}; true").split()]
    log = pathlib.Path(args.workdir) / f"restart-{host.name}-{way}.log"
    waiter = subprocess.Popen(
        host.load_command("ready", "--node", node, "--old-pid", str(pid_before), "--timeout", "900"),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    requested = time.time()
    with open(log, "w", encoding="utf-8") as out:
        rc = subprocess.run(
            restart_command(args, host, way, spec), stdout=out, stderr=subprocess.STDOUT, cwd=REPO, check=False
        ).returncode
    command_done = time.time()
    answered = json.loads(waiter.communicate()[0].strip().splitlines()[-1])
    leftovers = alive(host, old_processes)
    counted = host.load("count", "--queue", spec["queue"], "--node", node, "--ids", ids_file)
    wall = max(command_done, answered["ts"] or float("inf")) - requested
    remaining = max(0.0, args.long_seconds - (requested - sent["long_started"]))
    limit = remaining + boot
    old_gone, last_long = answered.get("old_gone"), counted.get("last_long_completion")
    return {
        "way": way,
        "program": spec["program"],
        "rc": rc,
        "tasks": sent["tasks"],
        "lost": counted["lost"],
        "lost_long": counted["lost_long"],
        "duplicates": counted["duplicates"],
        "command_seconds": round(command_done - requested, 2),
        "answered_seconds": round(answered["ts"] - requested, 2) if answered["ts"] else None,
        "old_processes_left": len(leftovers),
        "wall_seconds": round(wall, 2),
        "remaining_seconds": round(remaining, 2),
        "boot_seconds": round(boot, 2),
        "limit_seconds": round(limit, 2),
        "ratio": round(wall / limit, 2),
        # Where the wall time beyond the limit goes: the old worker's exit after its last long task finished
        # (the pool's shutdown), and the new worker's first answer after that exit (start, boot, startsecs).
        "old_exit_after_long_seconds": round(old_gone - last_long, 2) if old_gone and last_long else None,
        "answer_after_old_exit_seconds": round(answered["ts"] - old_gone, 2) if old_gone and answered["ts"] else None,
        "pid_before": pid_before,
        "pid_after": answered["pid"],
        "log_tail": log.read_text(encoding="utf-8", errors="replace")[-1500:],
    }


WAYS = {
    "module": "`celeryops.stack.celery_worker` state=restarted",
    "plain": "`supervisorctl restart`, supervisor defaults (stopwaitsecs=10)",
    "community": "`community.general.supervisorctl` state=restarted",
}


def settings_of(role_conf):
    keys = ("stopwaitsecs", "startsecs", "killasgroup", "stopasgroup", "stopsignal")
    found = dict(re.findall(r"^(\w+)\s*=\s*(.*)$", role_conf, re.MULTILINE))
    return ", ".join(f"{key}={found[key]}" for key in keys if key in found)


def pool_of(role_conf):
    pool = re.search(r"--pool=(\S+)", role_conf)
    concurrency = re.search(r"--concurrency=(\S+)", role_conf)
    return f"pool {pool.group(1) if pool else 'prefork'}, concurrency {concurrency.group(1) if concurrency else '?'}"


def bench_target(args, target):
    """Every way on one host's worker: a result section."""
    name, source_program = target.split(":", 1)
    host = Host(args.prefix, name)
    try:
        role_conf = setup(host, source_program)
        # The median of three starts: one start on a busy machine can take twice as long as the next.
        boot = {
            kind: statistics.median(boot_seconds(host, spec) for _start in range(BOOT_SAMPLES))
            for kind, spec in PROGRAMS.items()
        }
        overhead = ansible_overhead(args, host)
        runs = []
        for way in args.ways.split(","):
            kind = "plain" if way == "plain" else "role"
            runs.append(run_way(host, args, way, PROGRAMS[kind], boot[kind]))
            print(json.dumps(runs[-1]), file=sys.stderr)
        celery = host.sh(f"{VENV_PYTHON} -c 'import celery; print(celery.__version__)'").strip()
        debian = host.sh('. /etc/os-release; printf "%s (%s)" "$(cat /etc/debian_version)" "$VERSION_CODENAME"')
    finally:
        teardown(host)
    return {
        "host": name,
        "source_program": source_program,
        "pool": pool_of(role_conf),
        "role_settings": settings_of(role_conf),
        "boot": {kind: round(seconds, 2) for kind, seconds in boot.items()},
        "ansible_overhead": round(overhead, 2),
        "celery": celery,
        "debian": debian,
        "runs": runs,
    }


def missed_goals(sections):
    missed = []
    for section in sections:
        for row in section["runs"]:
            if row["way"] != "module":
                continue
            where = f"{section['host']} ({section['pool']})"
            if row["rc"] != 0:
                missed.append(f"{where}: the module failed (rc {row['rc']})")
            if row["lost"] or row["duplicates"]:
                missed.append(f"{where}: module {row['lost']} lost, {row['duplicates']} duplicated")
            if row["ratio"] > GOAL_RATIO:
                missed.append(f"{where}: module wall/limit {row['ratio']} > {GOAL_RATIO:g}")
    return missed


def markdown(result):
    first = result["sections"][0]
    lines = [
        "# Restart benchmark: three ways to restart a worker under load",
        "",
        "Written by `bench/restart_bench.sh` (issue 4); do not edit by hand. One run; for each worker below, three",
        "restarts side by side of throwaway copies of the lab's program (own queue, own node name).",
        "",
        f"- Date: {result['date']}; Debian {first['debian']}; Celery {first['celery']}; machine: {result['machine']}",
        f"- Load per restart: {result['long']} tasks of {result['long_seconds']:g} s (started first), then "
        f"{result['short']} tasks of {result['short_seconds']:g} s; the restart is requested",
        f"  {result['restart_after']:g} s after the long tasks started. The long tasks outlast supervisor's default",
        "  stopwaitsecs (10 s) on purpose: acks_late is off, so a task killed mid-run is lost, while reserved,",
        "  unstarted tasks go back to the broker.",
        "- Ways 1 and 3 restart a copy of the program with the role's settings; way 2 a copy with supervisor's",
        "  defaults (stopwaitsecs=10, startsecs=1, killasgroup=false, autorestart=unexpected). Ways 1 and 3 run",
        "  through `ansible` from the controller, way 2 through `docker exec`.",
        "- Wall: from the restart request until the command returned and the new worker process answered",
        "  (`inspect stats` with a new pid). Limit: what remained of the longest in-flight task at the request,",
        "  plus the worker's boot time (`supervisorctl start` to the first answer; the median of three starts",
        "  measured in the same run).",
        "  Old left: processes of the old worker still alive when the new one answered.",
        "- Where the time beyond the limit goes: old exit = the old worker's main process exited this long after",
        "  its last long task finished (the pool's shutdown, outside the limit); new answer = the new worker's",
        "  first answer came this long after that exit (start and boot; the module also waits for startsecs).",
        f"- Goal for the module: 0 lost, wall/limit <= {GOAL_RATIO:g}. Verdict: **{result['verdict']}**",
    ]
    for section in result["sections"]:
        lines += [
            "",
            f"## {section['host']}: {section['source_program']} ({section['pool']})",
            "",
            f"Role settings: {section['role_settings']}. Boot: {section['boot']['role']:.1f} s (role's settings), "
            f"{section['boot']['plain']:.1f} s (defaults).",
            f"An ad-hoc `ansible.builtin.ping` of the host takes {section['ansible_overhead']:.1f} s (part of ways 1 "
            "and 3).",
            "",
            "| # | restarted with | lost | of them long | duplicated | old left | old exit s | new answer s "
            "| answered s | command s | wall s | limit s | wall/limit |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for number, row in enumerate(section["runs"], 1):
            answered = "never" if row["answered_seconds"] is None else f"{row['answered_seconds']:.1f}"
            old_exit, new_answer = (
                "" if row.get(key) is None else f"{row[key]:.1f}"
                for key in ("old_exit_after_long_seconds", "answer_after_old_exit_seconds")
            )
            lines.append(
                f"| {number} | {WAYS[row['way']]} | {row['lost']}/{row['tasks']} | {row['lost_long']} | "
                f"{row['duplicates']} | {row['old_processes_left']} | {old_exit} | {new_answer} | {answered} | "
                f"{row['command_seconds']:.1f} | "
                f"{row['wall_seconds']:.1f} | {row['limit_seconds']:.1f} | {row['ratio']:.2f} |"
            )
    lines += [
        "",
        "Reproduce: `bench/restart_bench.sh PREFIX RELEASE` (e.g. `bench/restart_bench.sh bch bookworm`).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-i", "--inventory", required=True)
    parser.add_argument("--prefix", required=True, help="container names are PREFIX-HOST")
    parser.add_argument(
        "--targets", default="app2:celery-default,app1:celery-customers", help="HOST:PROGRAM,... to copy and restart"
    )
    parser.add_argument("--long", type=int, default=3)
    parser.add_argument("--long-seconds", type=float, default=15.0)
    parser.add_argument("--short", type=int, default=297)
    parser.add_argument("--short-seconds", type=float, default=0.2)
    parser.add_argument("--restart-after", type=float, default=2.0)
    parser.add_argument("--ways", default="module,plain,community")
    parser.add_argument("--output", default=str(REPO / "docs" / "bench-restart.md"))
    parser.add_argument("--json")
    parser.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))  # noqa: S108
    args = parser.parse_args(argv)
    sections = [bench_target(args, target) for target in args.targets.split(",")]
    missed = missed_goals(sections)
    result = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at the end",
        "long": args.long,
        "long_seconds": args.long_seconds,
        "short": args.short,
        "short_seconds": args.short_seconds,
        "restart_after": args.restart_after,
        "sections": sections,
        "verdict": "pass" if not missed else "FAIL (" + "; ".join(missed) + ")",
    }
    pathlib.Path(args.output).write_text(markdown(result), encoding="utf-8")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    for section in sections:
        for row in section["runs"]:
            print(
                f"{section['host']} {row['way']:10} lost {row['lost']}/{row['tasks']} (long {row['lost_long']}) "
                f"dup {row['duplicates']} old-left {row['old_processes_left']} answered {row['answered_seconds']} s "
                f"command {row['command_seconds']} s wall {row['wall_seconds']} s limit {row['limit_seconds']} s "
                f"ratio {row['ratio']}"
            )
    for goal in missed:
        print(f"MISSED: {goal}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
