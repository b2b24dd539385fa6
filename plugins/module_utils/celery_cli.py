# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Celery's side of the module ``celeryops.stack.celery_worker``: command lines and CLI probes.

* pure functions parse a supervisor program's worker command (wrapper, app, node name, queues, pool), expand
  Celery node names, build a worker spec, build ``celery inspect``/``control`` command lines and interpret their
  ``--json`` output;
* :class:`CeleryProbe` runs those probes through a ``run_command`` callable (``AnsibleModule.run_command``).

Only the Python standard library is used; the code runs on the managed host (Python 3.8+).
"""

from __future__ import annotations

import json
import re
import shlex

from ansible_collections.celeryops.stack.plugins.module_utils.supervisor_rpc import make_namespec

DEFAULT_QUEUE = "celery"
DEFAULT_NODE_PREFIX = "celery"

# The workers role's worker-side module (roles/workers/files/celeryops_worker_control.py), its remote control
# command, and the variable through which that module, used as the CLI's app, finds the worker's app.
HAND_BACK_MODULE = "celeryops_worker_control"
HAND_BACK_COMMAND = "celeryops_hand_back"
HAND_BACK_APP_ENVIRONMENT = "CELERYOPS_APP"


# Celery global options (``celery [OPTIONS] COMMAND``) that take a value and that the ``inspect`` probes must
# repeat so that they reach the same app and broker as the worker.
_GLOBAL_VALUE_OPTIONS = {
    "-A": "--app",
    "--app": "--app",
    "-b": "--broker",
    "--broker": "--broker",
    "--result-backend": "--result-backend",
    "--loader": "--loader",
    "--config": "--config",
    "--workdir": "--workdir",
}


_NODE_FORMAT_RE = re.compile(r"%(.)")


def _option_value(argv, index, long_names, short_names):
    """Match ``argv[index]`` against an option that takes a value.

    Returns ``(value, consumed)`` where ``consumed`` is how many tokens were used, or ``(None, 0)``.
    Accepts ``--long=value``, ``--long value``, ``-s value`` and ``-svalue`` (click's spellings).
    """
    token = argv[index]
    for long_name in long_names:
        if token == long_name:
            if index + 1 < len(argv):
                return argv[index + 1], 2
            return "", 1
        if token.startswith(long_name + "="):
            return token[len(long_name) + 1 :], 1
    for short_name in short_names:
        if token == short_name:
            if index + 1 < len(argv):
                return argv[index + 1], 2
            return "", 1
        if token.startswith(short_name) and len(token) > len(short_name):
            value = token[len(short_name) :]
            return (value[1:] if value.startswith("=") else value), 1
    return None, 0


def _global_option(argv, index):
    """Return ``(canonical_long_name, value, consumed)`` if ``argv[index]`` is a Celery global value option."""
    for spelling, canonical in _GLOBAL_VALUE_OPTIONS.items():
        if spelling.startswith("--"):
            value, consumed = _option_value(argv, index, (spelling,), ())
        else:
            value, consumed = _option_value(argv, index, (), (spelling,))
        if consumed:
            return canonical, value, consumed
    return None, None, 0


def parse_worker_command(command):
    """Parse a supervisor ``command`` that runs ``<wrapper> [global options] worker [worker options]``.

    Returns a dict with ``wrapper`` (argv[0]), ``global_args`` (``--opt=value`` strings to repeat before
    ``inspect``, e.g. ``--app=proj:app``), ``hostname`` (the raw ``-n``/``--hostname`` template or None) and
    ``queues`` (list; ``['celery']`` when ``-Q``/``--queues`` is absent) and ``pool`` (``-P``/``--pool``;
    ``prefork`` when absent).
    Raises ``ValueError`` when the command has no ``worker`` subcommand.
    """
    try:
        argv = shlex.split(command or "")
    except ValueError as exc:
        raise ValueError(f"cannot split the command line ({exc})") from None
    if not argv:
        raise ValueError("the command is empty")

    global_args = []
    seen_globals = set()

    def remember_global(canonical, value):
        """Keep the first value of each global option (--app, --broker, …) for the probes."""
        if canonical not in seen_globals:
            seen_globals.add(canonical)
            global_args.append(f"{canonical}={value}")

    subcommand_index = None
    index = 1
    while index < len(argv):
        canonical, value, consumed = _global_option(argv, index)
        if consumed:
            remember_global(canonical, value)
            index += consumed
            continue
        if argv[index].startswith("-"):
            index += 1
            continue
        subcommand_index = index
        break
    if subcommand_index is None or argv[subcommand_index] != "worker":
        found = argv[subcommand_index] if subcommand_index is not None else "none"
        raise ValueError(f"the command has no 'worker' subcommand (subcommand: {found})")

    hostname = None
    queues = None
    pool = None
    index = subcommand_index + 1
    while index < len(argv):
        value, consumed = _option_value(argv, index, ("--hostname",), ("-n",))
        if consumed:
            hostname = value
            index += consumed
            continue
        value, consumed = _option_value(argv, index, ("--queues",), ("-Q",))
        if consumed:
            queues = [queue.strip() for queue in value.split(",") if queue.strip()]
            index += consumed
            continue
        value, consumed = _option_value(argv, index, ("--pool",), ("-P",))
        if consumed:
            pool = value
            index += consumed
            continue
        # Celery 5 wants -A/--app before the subcommand; accept it after ``worker`` too for the probes.
        canonical, value, consumed = _global_option(argv, index)
        if consumed:
            remember_global(canonical, value)
            index += consumed
            continue
        index += 1

    return {
        "wrapper": argv[0],
        "global_args": global_args,
        "hostname": hostname,
        "queues": queues or [DEFAULT_QUEUE],
        "pool": pool or "prefork",
    }


def expand_node_name(template, hostname):
    """Expand a worker ``--hostname`` the way Celery does.

    A template without ``@`` gets the default ``celery@`` prefix; no template means ``celery@<hostname>``.
    ``%h`` is the full host name, ``%n`` its first label, ``%d`` the rest (domain) and ``%%`` a literal ``%``.
    Raises ``ValueError`` for other ``%`` keys (``%i``/``%I`` only exist in a pool child).
    """
    if not template:
        template = hostname
    if "@" in template:
        name, host = template.split("@", 1)
    else:
        name, host = "", template
    template = f"{name or DEFAULT_NODE_PREFIX}@{host or hostname}"
    short, _dot, domain = hostname.partition(".")
    keys = {"h": hostname, "n": short, "d": domain, "%": "%"}

    def _resolve(match):
        key = match.group(1)
        if key not in keys:
            raise ValueError(f"unknown node name format key '%{key}' in {template!r}")
        return keys[key]

    return _NODE_FORMAT_RE.sub(_resolve, template)


def build_worker_spec(config, hostname):
    """Turn one ``supervisor.getAllConfigInfo()`` entry into a worker spec dict.

    Raises ``ValueError`` when the program is not a Celery worker (message names the program and its command).
    """
    namespec = make_namespec(config.get("group"), config["name"])
    command = config.get("command") or ""
    try:
        parsed = parse_worker_command(command)
    except ValueError as exc:
        raise ValueError(
            f"supervisor program '{namespec}' is not a Celery worker: {exc}. Its command is: {command}"
        ) from None
    try:
        node = expand_node_name(parsed["hostname"], hostname)
    except ValueError as exc:
        raise ValueError(f"supervisor program '{namespec}': {exc}") from None
    return {
        "name": namespec,
        "group": config.get("group") or config["name"],
        "program": config["name"],
        "command": command,
        "wrapper": parsed["wrapper"],
        "global_args": parsed["global_args"],
        "node": node,
        "queues": parsed["queues"],
        "pool": parsed["pool"],
        "startsecs": int(config.get("startsecs") or 0),
        "stopwaitsecs": int(config.get("stopwaitsecs") or 0),
        "stopsignal": config.get("stopsignal"),
        "inuse": config.get("inuse", True),
        "autostart": bool(config.get("autostart", True)),
        "logfile": config.get("stdout_logfile") or "",
    }


def bare_spec(name):
    """The spec of a program whose worker command is unknown: no node to probe, no pool to quiesce."""
    return {
        "name": name,
        "group": name,
        "program": name,
        "command": "",
        "wrapper": None,
        "global_args": [],
        "node": None,
        "queues": [],
        "pool": None,
        "startsecs": 0,
        "stopwaitsecs": 0,
        "stopsignal": None,
        "inuse": True,
        "autostart": True,
        "logfile": "",
    }


def parse_inspect_json(stdout):
    """Extract the ``{node: reply}`` mapping printed by ``celery inspect ... --json``.

    Celery 5.5 prints one JSON object; older releases print a list of ``{node: reply}`` objects and may add a
    ``N nodes online.`` line. Returns a dict, or None when the output holds no such JSON.
    """
    text = stdout or ""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            merged = {}
            for item in value:
                merged.update(item)
            return merged
    return None


def ping_answered(rc, stdout, node, custom=False):
    """Tell whether a ping probe shows ``node`` alive.

    The default probe must print ``{node: {"ok": "pong"}}``. A custom probe succeeds on rc 0 unless it printed an
    inspect-style JSON mapping without the node.
    """
    replies = parse_inspect_json(stdout)
    if custom:
        return rc == 0 and (replies is None or node in replies)
    if rc != 0 or replies is None or node not in replies:
        return False
    reply = replies[node]
    return not (isinstance(reply, dict) and "error" in reply)


def listed_task_count(rc, stdout, node):
    """Return how many tasks ``inspect active --json`` (or ``reserved``) lists for ``node``, or None when unknown."""
    if rc != 0:
        return None
    replies = parse_inspect_json(stdout)
    if not replies or node not in replies:
        return None
    reply = replies[node]
    if isinstance(reply, list):
        return len(reply)
    return None


def _format_seconds(value):
    return f"{value:g}"


def build_inspect_argv(spec, action, timeout):
    """Build ``<wrapper> [--app=...] inspect <action> --destination <node> --timeout <s> --json``."""
    argv = [spec["wrapper"]]
    argv.extend(spec["global_args"])
    argv.extend(["inspect", action, "--destination", spec["node"], "--timeout", _format_seconds(timeout), "--json"])
    return argv


def build_control_argv(spec, command, arguments, timeout):
    """Build ``<wrapper> [--app=...] control <command> <arguments> --destination <node> --timeout <s> --json``."""
    argv = [spec["wrapper"]]
    argv.extend(spec["global_args"])
    argv.extend(["control", command, *arguments])
    argv.extend(["--destination", spec["node"], "--timeout", _format_seconds(timeout), "--json"])
    return argv


def split_app(global_args):
    """``(app, others)``: the value of ``--app=`` among a spec's global arguments ("" when absent), and the rest."""
    app = ""
    others = []
    for arg in global_args:
        if arg.startswith("--app="):
            app = arg[len("--app=") :]
        else:
            others.append(arg)
    return app, others


def build_hand_back_argv(spec, timeout):
    """Build ``(argv, environment)`` for ``celeryops_hand_back``, or None when the worker's ``--app`` is unknown.

    ``celery control`` sends only commands registered in its own process, so the CLI's app is the module that
    registers the command; it loads the worker's app from the environment variable.
    """
    app, others = split_app(spec["global_args"])
    if not app:
        return None
    argv = [spec["wrapper"], f"--app={HAND_BACK_MODULE}:app", *others, "control", HAND_BACK_COMMAND]
    argv.extend(["--destination", spec["node"], "--timeout", _format_seconds(timeout), "--json"])
    return argv, {HAND_BACK_APP_ENVIRONMENT: app}


def handed_back_ids(rc, stdout, node):
    """The task ids ``node`` handed back (a list, maybe empty), or None when it did not run the command."""
    if rc != 0:
        return None
    reply = (parse_inspect_json(stdout) or {}).get(node)
    if not isinstance(reply, dict) or "ok" not in reply or not isinstance(reply.get("handed_back"), list):
        return None
    return [str(task_id) for task_id in reply["handed_back"]]


def control_confirmed(rc, stdout, node):
    """Tell whether ``celery control ... --json`` printed an ``{"ok": ...}`` reply from ``node``."""
    if rc != 0:
        return False
    replies = parse_inspect_json(stdout)
    reply = (replies or {}).get(node)
    return isinstance(reply, dict) and "ok" in reply


def build_ping_argv(spec, timeout, override=None):
    """Build the ping probe; ``override`` is a list whose items may hold ``{wrapper}``, ``{node}``, ``{timeout}``,
    ``{program}`` and ``{app}`` placeholders."""
    if not override:
        return build_inspect_argv(spec, "ping", timeout)
    app, _others = split_app(spec["global_args"])
    values = {
        "{wrapper}": spec["wrapper"],
        "{node}": spec["node"],
        "{timeout}": _format_seconds(timeout),
        "{program}": spec["name"],
        "{app}": app,
    }
    argv = []
    for item in override:
        for placeholder, value in values.items():
            item = item.replace(placeholder, value)
        argv.append(item)
    return argv


def bound_argv(argv, timeout_bin, limit):
    """Prefix ``argv`` with coreutils ``timeout`` (when available) so a probe cannot hang on a dead broker."""
    if not timeout_bin:
        return list(argv)
    return [timeout_bin, "--kill-after=5", str(max(1, int(limit)))] + list(argv)


class CeleryProbe:
    """Runs read-only ``celery inspect`` commands through the worker's own wrapper.

    ``run_command`` takes an argv list and returns ``(rc, stdout, stderr)`` (``AnsibleModule.run_command``).
    """

    def __init__(self, run_command, ping_timeout=5.0, ping_command=None, timeout_bin=None, margin=60):
        self.run_command = run_command
        self.ping_timeout = ping_timeout
        self.ping_command = ping_command
        self.timeout_bin = timeout_bin
        self.margin = margin
        self.last_output = ""

    def _run(self, argv, environment=None):
        limit = self.ping_timeout + self.margin
        bounded = bound_argv(argv, self.timeout_bin, limit)
        if environment:
            rc, out, err = self.run_command(bounded, environ_update=environment)
        else:
            rc, out, err = self.run_command(bounded)
        self.last_output = ((out or "") + (err or "")).strip()[-500:]
        return rc, out

    def ping(self, spec, timeout=None):
        """Whether the node answers; ``timeout`` (default ``ping_timeout``) bounds the wait for its reply."""
        argv = build_ping_argv(spec, timeout or self.ping_timeout, self.ping_command)
        rc, out = self._run(argv)
        return ping_answered(rc, out, spec["node"], custom=bool(self.ping_command))

    def active_tasks(self, spec):
        """Best effort: the number of tasks the node is executing, or None."""
        return self._listed_tasks(spec, "active")

    def reserved_tasks(self, spec):
        """Best effort: the number of tasks the node has received but not started, or None."""
        return self._listed_tasks(spec, "reserved")

    def _listed_tasks(self, spec, action):
        try:
            rc, out = self._run(build_inspect_argv(spec, action, self.ping_timeout))
        except Exception:  # pylint: disable=broad-except
            return None
        return listed_task_count(rc, out, spec["node"])

    def cancel_consumer(self, spec, queue):
        """Ask the node to stop consuming from ``queue``; whether it confirmed."""
        try:
            rc, out = self._run(build_control_argv(spec, "cancel_consumer", [queue], self.ping_timeout))
        except Exception:  # pylint: disable=broad-except
            return False
        return control_confirmed(rc, out, spec["node"])

    def hand_back(self, spec):
        """Ask the node to requeue the tasks it received but no pool process could start (the workers role's
        ``celeryops_hand_back``); their ids, or None when the node or the CLI does not know the command."""
        built = build_hand_back_argv(spec, self.ping_timeout)
        if built is None:
            return None
        try:
            rc, out = self._run(*built)
        except Exception:  # pylint: disable=broad-except
            return None
        return handed_back_ids(rc, out, spec["node"])
