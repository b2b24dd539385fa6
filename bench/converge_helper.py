"""Helpers of bench/converge_bench.sh: the floor scripts, the recap parser, and docs/bench-converge.md.

    converge_helper.py floor HOST             the plain shell script that does HOST's apt and pip installs
    converge_helper.py recap LOG              JSON totals of the PLAY RECAP of an ansible-playbook log
    converge_helper.py report --first-seconds S --second-seconds S --floor-seconds S --first-log LOG ...
                                              docs/bench-converge.md; exit 1 when a goal is missed

The floor does what the roles install and nothing else, the plain way: apt-get on every host (the broker's
packages on the broker; supervisor and Python's venv support on the app hosts), then one `python3 -m venv`
and one `pip install` of the same pinned packages per virtualenv. The pins are read from the roles' defaults,
the pools from the lab's host_vars and the application's requirements file, so the floor follows them.
"""

import argparse
import json
import pathlib
import re
import shlex
import sys

import yaml

REPO = pathlib.Path(__file__).resolve().parents[1]
# Issue 13 retired the 1.5 x goal (simplicity over seconds); the converge bench keeps 2 x as information.
GOAL_CONVERGE_FLOOR = 2.0
GOAL_SECOND_FIRST = 0.2

# Hosts of the lab and the roles they get (playbooks/site.yml, docs/architecture.md).
HOST_ROLES = {"broker": ["rabbitmq"], "app1": ["supervisor", "workers", "flower"], "app2": ["supervisor", "workers"]}


def _yaml(path):
    return yaml.safe_load(pathlib.Path(path).read_text(encoding="utf-8")) or {}


def _internal(role):
    return _yaml(REPO / "roles" / role / "vars" / "main.yml")


def requirements(path):
    lines = pathlib.Path(path).read_text(encoding="utf-8").splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def floor_script(host):
    """The plain script for host: the same apt packages and pinned pip packages as the roles."""
    roles = HOST_ROLES[host]
    apt = []
    if "rabbitmq" in roles:
        apt += _internal("rabbitmq")["_rabbitmq_packages"]
    if "supervisor" in roles:
        apt += [_yaml(REPO / "roles" / "supervisor" / "defaults" / "main.yml")["supervisor_package"]]
    if "workers" in roles:
        apt += _internal("workers")["_workers_apt_packages"]
    if "flower" in roles:
        apt += [p for p in _internal("flower")["_flower_system_packages"] if p not in apt]
    lines = [
        "set -eu",
        # Each command is traced with its start time (read back by floor_steps); `: done` marks the end.
        "PS4='+ $(date +%s.%N) '",
        "set -x",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update -qq",
        "apt-get install -y -qq " + " ".join(shlex.quote(p) for p in dict.fromkeys(apt)),
    ]
    if "workers" in roles:
        defaults = _yaml(REPO / "roles" / "workers" / "defaults" / "main.yml")
        host_vars = _yaml(REPO / "inventories" / "lab" / "host_vars" / f"{host}.yml")
        pools = {w.get("pool", defaults.get("workers_default_pool", "prefork")) for w in host_vars.get(
            "workers_celery_workers", [])}  # fmt: skip
        packages = [f"celery=={defaults['workers_celery_version']}"]
        for pool in ("eventlet", "gevent"):
            if pool in pools:
                packages.append(f"{pool}=={defaults[f'workers_{pool}_version']}")
        packages += requirements(REPO / "examples" / "myproject" / "requirements.txt")
        venv = defaults["workers_venv_dir"]
        lines += [f"python3 -m venv {venv}", f"{venv}/bin/pip install -q " + " ".join(map(shlex.quote, packages))]
    if "flower" in roles:
        defaults = _yaml(REPO / "roles" / "flower" / "defaults" / "main.yml")
        packages = [f"flower=={defaults['flower_version']}", f"celery=={defaults['flower_celery_version']}"]
        venv = defaults["flower_venv_dir"]
        lines += [f"python3 -m venv {venv}", f"{venv}/bin/pip install -q " + " ".join(map(shlex.quote, packages))]
    lines.append(": done")
    return "\n".join(lines) + "\n"


TRACE = re.compile(r"^\++ ([0-9.]+) (.*)$")


def floor_steps(text, start):
    """Seconds of a floor log's steps, from its traced commands: {"apt": s, "pip": s, "end": s after start}."""
    marks = [(float(m.group(1)), m.group(2)) for m in map(TRACE.match, text.splitlines()) if m]
    if not marks:
        return {}
    venv = next((t for t, cmd in marks if " -m venv " in f" {cmd} "), None)
    end = marks[-1][0]
    apt_start = next((t for t, cmd in marks if cmd.startswith("apt-get")), start)
    return {
        "apt": (venv or end) - apt_start,
        "pip": (end - venv) if venv else 0.0,
        "end": end - start,
    }


def timeline(text):
    """Per host, from bench/callback_plugins/host_timeline.py's JSON lines: when it ended (seconds after the
    run's first task), its seconds in apt, in pip (and the waits for it), in the rest, and its slowest tasks."""
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not rows:
        return {}
    origin = min(row["start"] for row in rows)
    hosts = {}
    for row in rows:
        host = hosts.setdefault(row["host"], {"end": 0.0, "apt": 0.0, "pip": 0.0, "other": 0.0, "tasks": []})
        seconds = row["end"] - row["start"]
        host["end"] = max(host["end"], row["end"] - origin)
        action = row["action"].rsplit(".", 1)[-1]
        waits_for_pip = action in ("async_status", "wait_for") and "pip" in row["task"]
        kind = "apt" if action == "apt" else "pip" if action == "pip" or waits_for_pip else "other"
        host[kind] += seconds
        host["tasks"].append((row["task"], seconds))
    for host in hosts.values():
        host["tasks"] = sorted(host["tasks"], key=lambda task: -task[1])[:8]
    return hosts


RECAP = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def recap(text):
    """Totals and per-host counters of the last PLAY RECAP in an ansible-playbook output."""
    section = text.rsplit("PLAY RECAP", 1)[-1] if "PLAY RECAP" in text else ""
    hosts = {}
    for line in section.splitlines():
        match = RECAP.match(line.strip())
        if match:
            hosts[match.group(1)] = {k: int(v) for k, v in (kv.split("=") for kv in match.group(2).split())}
    totals = {}
    for counters in hosts.values():
        for key, value in counters.items():
            totals[key] = totals.get(key, 0) + value
    return {"hosts": hosts, "totals": totals}


def report(results):
    """Markdown for the results of one converge bench run; and the list of missed goals."""
    first, second, floor = results["first_seconds"], results["second_seconds"], results["floor_seconds"]
    first_recap, second_recap = results["first_recap"], results["second_recap"]
    converge_floor = first / floor
    second_first = second / first
    changed = second_recap["totals"].get("changed", 0)
    failed = sum(r["totals"].get(f, 0) for r in (first_recap, second_recap) for f in ("failed", "unreachable"))
    missed = []
    if converge_floor > GOAL_CONVERGE_FLOOR:
        missed.append(f"first converge / floor = {converge_floor:.2f} > {GOAL_CONVERGE_FLOOR}")
    if second_first > GOAL_SECOND_FIRST:
        missed.append(f"second converge / first = {second_first:.2f} > {GOAL_SECOND_FIRST}")
    if changed:
        missed.append(f"second converge changed {changed} tasks (must be 0)")
    if failed:
        missed.append(f"{failed} failed or unreachable in the converges")
    lines = [
        "# Converge benchmark",
        "",
        "Written by `bench/converge_bench.sh` (issue 5); do not edit by hand. One run, on one machine, side by",
        "side: a full `playbooks/site.yml` converge of three fresh lab containers, a second converge of the same",
        "containers, and the floor: three other fresh containers given the same apt and pinned pip installs by a",
        "plain shell script through `docker exec`, the hosts in parallel. site.yml deploys the broker, then the app",
        "hosts one at a time (its default, `celeryops_serial` 1), then Flower.",
        "",
        f"- Date: {results['date']}",
        f"- Debian: {results['debian']}; {results['ansible']}; machine: {results['machine']}",
        *([f"- site.yml arguments (BENCH_SITE_ARGS): `{results['site_args']}`"] if results.get("site_args") else []),
        f"- Verdict: **{'pass' if not missed else 'FAIL'}**" + ("" if not missed else " (" + "; ".join(missed) + ")"),
        "",
        "| run | seconds | changed | ratio | goal |",
        "|---|---:|---:|---:|---|",
        f"| floor (apt + venv + pip, plain script) | {floor:.1f} | | 1 | |",
        f"| first converge (fresh hosts) | {first:.1f} | {first_recap['totals'].get('changed', 0)} | "
        f"{converge_floor:.2f} × floor | ≤ {GOAL_CONVERGE_FLOOR} × floor |",
        f"| second converge (same hosts) | {second:.1f} | {changed} | {second_first:.2f} × first | "
        f"≤ {GOAL_SECOND_FIRST} × first, changed = 0 |",
        "",
    ]
    cpu = results.get("cpu_seconds", {})
    cpus_match = re.match(r"\s*(\d+) CPUs", results["machine"])
    cpus = int(cpus_match.group(1)) if cpus_match else 0
    if cpus and {"first", "floor"} <= set(cpu):
        lines += ["Busy CPU-seconds of the whole machine (/proc/stat), the containers included:", ""]
        lines += [
            f"- {title}: {cpu[run]:.0f} ({100 * cpu[run] / (cpus * seconds):.0f} % of {cpus} CPUs over its "
            f"{seconds:.0f} s)"
            for title, run, seconds in (("first converge", "first", first), ("floor", "floor", floor))
        ]
        lines += [
            "",
            "Each Ansible task costs CPU on the controller (a forked worker, the module's payload, templating) and",
            "on the host (a Python process for the module), and the apt and pip work competes for the same CPUs.",
            "",
        ]
    lines += cpu_parts_lines(results)
    hosts, floor_hosts = results.get("first_timeline", {}), results.get("floor_steps", {})
    if hosts:
        lines += [
            "Where the time goes, per host (the first converge from bench/callback_plugins/host_timeline.py, the",
            "floor from its traced commands): when the host was done, and its seconds in apt and in pip (both",
            "virtualenvs).",
            "",
            "| host | converge done s | apt s | pip s | other tasks s | floor done s | floor apt s | floor pip s |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name in sorted(hosts):
            host, flo = hosts[name], floor_hosts.get(name, {})
            floor_cells = " | ".join(f"{flo[k]:.1f}" if k in flo else "" for k in ("end", "apt", "pip"))
            lines.append(
                f"| {name} | {host['end']:.1f} | {host['apt']:.1f} | {host['pip']:.1f} | {host['other']:.1f} | "
                f"{floor_cells} |"
            )
        slowest_host = max(hosts, key=lambda name: hosts[name]["end"])
        lines += [
            "",
            f"Slowest tasks of the host that finished last ({slowest_host}), first converge:",
            "",
            "| task | seconds |",
            "|---|---:|",
            *(f"| {task.replace('|', '/')} | {seconds:.1f} |" for task, seconds in hosts[slowest_host]["tasks"]),
            "",
        ]
    lines += [
        "Reproduce: `bench/converge_bench.sh PREFIX RELEASE` (e.g. `bench/converge_bench.sh bch bookworm`); it",
        "starts and removes its own containers (`PREFIX-broker`, `PREFIX-app1`, `PREFIX-app2`).",
        "",
    ]
    return "\n".join(lines), missed


def cpu_parts(items):
    """``["first:app1=61.5", ...]`` -> ``{"first": {"app1": 61.5}, ...}``."""
    parts = {}
    for item in items:
        key, value = item.split("=", 1)
        run, where = key.split(":", 1)
        parts.setdefault(run, {})[where] = float(value)
    return parts


def cpu_parts_lines(results):
    """Markdown: where the CPU-seconds of the first converge and of the floor went, and one remote task's cost."""
    parts, cpu = results.get("cpu_parts", {}), results.get("cpu_seconds", {})
    if not {"first", "floor"} <= set(parts) or not {"first", "floor"} <= set(cpu):
        return []
    wheres = ["controller"] + sorted(where for where in parts["first"] if where != "controller")
    header = ["run"] + [f"{where} CPU-s" for where in wheres] + ["rest of the machine", "whole machine"]
    lines = [
        "Where those CPU-seconds went: the controller (ansible-playbook with its forked workers and `docker exec`",
        "calls; for the floor, its `docker exec` clients), each container (its cgroup), and the rest of the",
        "machine (the Docker daemons, the kernel):",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    rows = {}
    for title, run in (("first converge", "first"), ("floor", "floor")):
        values = [parts[run].get(where, 0.0) for where in wheres]
        values += [cpu[run] - sum(values), cpu[run]]
        rows[run] = values
        lines.append(f"| {title} | " + " | ".join(f"{value:.1f}" for value in values) + " |")
    difference = [a - b for a, b in zip(rows["first"], rows["floor"])]
    lines += ["| difference | " + " | ".join(f"{value:+.1f}" for value in difference) + " |", ""]
    count, loop = results.get("task_loop"), parts.get("loop", {})
    if count and "loop" in cpu and "app1" in loop:
        lines += [
            f"One remote task, measured in the same run ({count} `ansible.builtin.stat` tasks in a loop on app1,",
            f"bench/task_cost.yml): {loop['app1'] / count:.2f} CPU-s on the host, "
            f"{loop.get('controller', 0.0) / count:.2f} on the controller, {cpu['loop'] / count:.2f} on the whole "
            "machine.",
            "",
        ]
    return lines


def _read(path):
    return pathlib.Path(path).read_text(encoding="utf-8", errors="replace")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("floor").add_argument("host", choices=sorted(HOST_ROLES))
    sub.add_parser("recap").add_argument("log")
    rep = sub.add_parser("report")
    for name in ("first-seconds", "second-seconds", "floor-seconds"):
        rep.add_argument(f"--{name}", type=float, required=True)
    for name in ("first-log", "second-log", "debian", "ansible", "machine", "date", "output"):
        rep.add_argument(f"--{name}", required=True)
    rep.add_argument("--first-timeline", help="host_timeline JSON lines of the first converge")
    rep.add_argument("--floor-start", type=float, help="epoch seconds when the floor scripts started")
    rep.add_argument("--floor-log", action="append", default=[], metavar="HOST=LOG", help="a floor host's log")
    rep.add_argument("--cpu-seconds", action="append", default=[], metavar="RUN=S", help="busy CPU-seconds of a run")
    rep.add_argument(
        "--cpu-part", action="append", default=[], metavar="RUN:WHERE=S", help="CPU-seconds of a run in one place"
    )
    rep.add_argument("--task-loop", type=int, help="how many tasks the 'loop' run ran")
    rep.add_argument("--site-args", default="", help="further arguments the converges gave site.yml")
    rep.add_argument("--json", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.command == "floor":
        sys.stdout.write(floor_script(args.host))
        return 0
    if args.command == "recap":
        print(json.dumps(recap(_read(args.log))))
        return 0
    logs = {key: _read(path) for key, path in (("first", args.first_log), ("second", args.second_log))}
    results = {
        "date": args.date,
        "debian": args.debian,
        "ansible": args.ansible,
        "machine": args.machine,
        "first_seconds": args.first_seconds,
        "second_seconds": args.second_seconds,
        "floor_seconds": args.floor_seconds,
        "first_recap": recap(logs["first"]),
        "second_recap": recap(logs["second"]),
        "first_timeline": timeline(_read(args.first_timeline)) if args.first_timeline else {},
        "cpu_seconds": {run: float(value) for run, value in (item.split("=", 1) for item in args.cpu_seconds)},
        "cpu_parts": cpu_parts(args.cpu_part),
        "task_loop": args.task_loop,
        "site_args": args.site_args,
        "floor_steps": {
            host: floor_steps(_read(path), args.floor_start)
            for host, path in (item.split("=", 1) for item in args.floor_log)
        },
    }
    text, missed = report(results)
    pathlib.Path(args.output).write_text(text, encoding="utf-8")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(text)
    for goal in missed:
        print(f"MISSED: {goal}", file=sys.stderr)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
