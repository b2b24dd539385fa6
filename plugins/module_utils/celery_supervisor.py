# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Warm restarts of supervisor-managed Celery workers.

The module ``celeryops.stack.celery_worker`` is a thin shell around this file:

* pure functions parse a worker command line, expand Celery node names, select programs, decide what a
  desired state means for a current supervisor state and interpret probe output;
* :class:`SupervisorClient` speaks XML-RPC to supervisord over its UNIX socket (stdlib only);
* :class:`CeleryProbe` runs ``celery inspect`` through a ``run_command`` callable;
* :class:`WorkerController` drives drains, restarts and stops with an injectable clock and sleep, so that every
  branch can be unit-tested with fakes.

Only the Python standard library is used; the code runs on the managed host (Python 3.8+).
"""

from __future__ import annotations

import errno
import http.client
import json
import os
import re
import shlex
import socket
import time
import xmlrpc.client

DEFAULT_SOCKET = "/var/run/supervisor.sock"
DEFAULT_QUEUE = "celery"
DEFAULT_NODE_PREFIX = "celery"

# supervisor.states.ProcessStates names, as reported in ``statename``.
STOPPED = "STOPPED"
STARTING = "STARTING"
RUNNING = "RUNNING"
BACKOFF = "BACKOFF"
STOPPING = "STOPPING"
EXITED = "EXITED"
FATAL = "FATAL"
UNKNOWN = "UNKNOWN"

#: states in which a process has a live pid that may be serving tasks
ALIVE_STATES = (RUNNING, STARTING, STOPPING)
#: states in which supervisor holds no process for the program
DOWN_STATES = (STOPPED, EXITED, FATAL)

# supervisor.xmlrpc.Faults codes that the controller reacts to.
FAULT_SHUTDOWN_STATE = 6
FAULT_BAD_NAME = 10
FAULT_SPAWN_ERROR = 50
FAULT_ALREADY_STARTED = 60
FAULT_NOT_RUNNING = 70

SIGTERM_NUMBER = 15

#: seconds an EXITED program is left to supervisord's autorestart before the module calls startProcess itself
AUTORESTART_GRACE = 3.0
# The reply wait of a ping sent while supervisor still counts startsecs (the node may not listen yet).
EARLY_PING_TIMEOUT = 0.3

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


class CeleryWorkerError(Exception):
    """A failure to report to the user; ``message`` says what happened and what to look at."""

    def __init__(self, message, programs=None):
        super().__init__(message)
        self.message = message
        self.programs = programs or []


class SupervisorError(CeleryWorkerError):
    """supervisord cannot be reached or answered with an error."""

    def __init__(self, message, fault_code=None):
        super().__init__(message)
        self.fault_code = fault_code


# ---------------------------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------------------------


def make_namespec(group, name):
    """Return the name supervisor's RPC uses for a process: ``name`` for a standalone program, else ``group:name``."""
    if not group or group == name:
        return name
    return f"{group}:{name}"


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
        "logfile": config.get("stdout_logfile") or "",
    }


def _known_programs_text(configs):
    names = sorted(make_namespec(c.get("group"), c["name"]) for c in configs)
    return ", ".join(names) if names else "(none)"


def select_programs(configs, hostname, name=None, queue=None):
    """Select the worker programs named by ``name`` (program, ``group:name`` or ``group:*``) or serving ``queue``.

    Returns a list of worker specs (see :func:`build_worker_spec`) in supervisor's order.
    Raises :class:`CeleryWorkerError` with the known names when nothing matches, or when a named program is not
    a Celery worker or is not active in supervisord. Programs that are not Celery workers are skipped by a
    ``queue`` selection.
    """
    if queue is not None:
        specs = []
        workers = []
        for config in configs:
            try:
                spec = build_worker_spec(config, hostname)
            except ValueError:
                continue
            workers.append(f"{spec['name']} ({','.join(spec['queues'])})")
            if queue in spec["queues"]:
                specs.append(spec)
        if not specs:
            known = ", ".join(workers) if workers else "(none)"
            raise CeleryWorkerError(
                f"no supervisor program runs a Celery worker that serves queue '{queue}'. "
                f"Known workers (queues): {known}"
            )
        return _check_inuse(specs)

    if name.endswith(":*") or (":" in name and name.split(":", 1)[1] == ""):
        group = name.split(":", 1)[0]
        chosen = [c for c in configs if (c.get("group") or c["name"]) == group]
        if not chosen:
            groups = sorted(set(c.get("group") or c["name"] for c in configs))
            known = ", ".join(groups) if groups else "(none)"
            raise CeleryWorkerError(f"unknown supervisor group '{group}'. Known groups: {known}")
    else:
        chosen = [c for c in configs if make_namespec(c.get("group"), c["name"]) == name]
        if not chosen and ":" in name:
            group, program = name.split(":", 1)
            chosen = [c for c in configs if c.get("group") == group and c["name"] == program]
        if not chosen:
            hint = ""
            if any(c.get("group") == name for c in configs):
                hint = f" ('{name}' is a group: use name='{name}:*')"
            raise CeleryWorkerError(
                f"unknown supervisor program '{name}'{hint}. Known programs: {_known_programs_text(configs)}"
            )
    specs = []
    for config in chosen:
        try:
            specs.append(build_worker_spec(config, hostname))
        except ValueError as exc:
            raise CeleryWorkerError(str(exc)) from None
    return _check_inuse(specs)


def _check_inuse(specs):
    idle = [spec["name"] for spec in specs if not spec["inuse"]]
    if idle:
        raise CeleryWorkerError(
            f"supervisor program(s) {', '.join(idle)} are configured but not active in supervisord: run "
            "`supervisorctl reread && supervisorctl update` (the workers role does this) first"
        )
    return specs


def decide_action(desired, statename):
    """Decide what to do to reach ``desired`` (started/stopped/restarted) from a supervisor ``statename``.

    Returns one of:

    * ``none``: already there, nothing to do (``changed=false``);
    * ``wait_up``: supervisor is already starting it; wait for RUNNING and a ping (``changed=false``);
    * ``start``: call ``startProcess`` and wait for RUNNING and a ping;
    * ``restart``: warm TERM to the main process, drain, let autorestart (or ``startProcess``) bring it back;
    * ``wait_down_then_start``: it is being stopped already; wait until it is down, then start it;
    * ``stop``: ``stopProcess`` (sends the configured TERM, no autorestart), drain, stays STOPPED;
    * ``wait_down``: it is being stopped already; wait until it is down (``changed=false``).

    Raises :class:`CeleryWorkerError` for UNKNOWN (supervisor lost track of it).
    """
    if statename == UNKNOWN or statename not in (STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL):
        raise CeleryWorkerError(
            f"supervisor reports state {statename} for the program: supervisor lost track of it; check "
            "`supervisorctl status` and the supervisord log (/var/log/supervisor/supervisord.log)"
        )
    if desired == "started":
        if statename == RUNNING:
            return "none"
        if statename in (STARTING, BACKOFF):
            return "wait_up"
        if statename == STOPPING:
            return "wait_down_then_start"
        return "start"
    if desired == "restarted":
        if statename in (RUNNING, STARTING):
            return "restart"
        if statename == STOPPING:
            return "wait_down_then_start"
        if statename == BACKOFF:
            return "wait_up"
        return "start"
    if desired == "stopped":
        if statename in DOWN_STATES:
            return "none"
        if statename == STOPPING:
            return "wait_down"
        return "stop"
    raise CeleryWorkerError(f"unknown state '{desired}': use started, stopped or restarted")


#: actions that signal, start or stop something
MUTATING_ACTIONS = ("start", "restart", "wait_down_then_start", "stop")
#: actions whose end state is a running, answering worker
UP_ACTIONS = ("wait_up", "start", "restart", "wait_down_then_start")


def drain_finished(info, old_pid, mode):
    """Tell whether the worker that had ``old_pid`` has exited.

    ``mode='restart'`` (TERM through ``signalProcess``; supervisor still says RUNNING until the process exits and
    may already have spawned a new pid) and ``mode='stop'`` (``stopProcess``; STOPPING until it is down).
    """
    state = info.get("statename")
    pid = info.get("pid") or 0
    if mode == "stop":
        return state in DOWN_STATES
    return state not in ALIVE_STATES or pid != old_pid


def new_process(info, old_pid):
    """Whether supervisor shows a live process (STARTING or RUNNING) other than the one that had ``old_pid``."""
    pid = info.get("pid") or 0
    return info.get("statename") in (STARTING, RUNNING) and bool(pid) and pid != old_pid


def start_progress(info, old_pid, startsecs):
    """Interpret one process info while waiting for a (new) worker to be up.

    Returns ``up`` (RUNNING with a pid other than ``old_pid`` for at least ``startsecs``), ``starting`` (supervisor
    is working on it, or the old process still exits), ``needs_start`` (EXITED/STOPPED: nobody will start it unless
    asked) or ``fatal`` (supervisor gave up).
    """
    state = info.get("statename")
    pid = info.get("pid") or 0
    if state == RUNNING and pid and pid != old_pid:
        uptime = (info.get("now") or 0) - (info.get("start") or 0)
        if uptime >= startsecs or not info.get("now"):
            return "up"
        return "starting"
    if state == FATAL:
        return "fatal"
    if state in (EXITED, STOPPED):
        return "needs_start"
    return "starting"


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
    app = ""
    for arg in spec["global_args"]:
        if arg.startswith("--app="):
            app = arg[len("--app=") :]
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


def program_result(spec, info_before, action, check_mode):
    """Start the per-program result dict from the spec and the first process info."""
    state = info_before.get("statename")
    return {
        "name": spec["name"],
        "node": spec["node"],
        "queues": list(spec["queues"]),
        "action": action,
        "pid_before": info_before.get("pid") or None,
        "pid_after": None,
        "state_before": state,
        "state_after": None,
        "active_tasks": None,
        "quiesce_seconds": None,
        "drain_seconds": None,
        "shutdown": None,
        "total_seconds": 0.0,
        "changed": action in MUTATING_ACTIONS,
        "check_mode": bool(check_mode),
    }


def predict_after(result, desired):
    """Fill ``state_after``/``pid_after`` with what a real run would leave (check mode)."""
    if result["action"] == "none":
        result["state_after"] = result["state_before"]
        result["pid_after"] = result["pid_before"]
    elif desired == "stopped":
        result["state_after"] = STOPPED
        result["pid_after"] = None
    else:
        result["state_after"] = RUNNING
        # A new pid is only known after the fact; a worker that is merely being waited for keeps its pid.
        result["pid_after"] = result["pid_before"] if result["action"] == "wait_up" else None
    return result


def build_diff(programs):
    """Return a diff dict (before/after state and pid per program) for ``--diff``."""
    before = {}
    after = {}
    for item in programs:
        before[item["name"]] = {"state": item["state_before"], "pid": item["pid_before"]}
        after[item["name"]] = {"state": item["state_after"], "pid": item["pid_after"]}
    return {"before": before, "after": after}


def validate_params(params):
    """Check the numeric options before anything is touched; return a list of error strings."""
    errors = []
    for key in ("timeout", "start_timeout", "escalation_timeout", "poll_interval", "ping_timeout"):
        value = params.get(key)
        if value is not None and value <= 0:
            errors.append(f"{key} must be greater than 0 (got {value})")
    value = params.get("quiesce_timeout")
    if value is not None and value < 0:
        errors.append(f"quiesce_timeout must be 0 (no quiesce) or more (got {value})")
    for key in ("name", "queue"):
        value = params.get(key)
        if value is not None and not value.strip():
            errors.append(f"{key} must not be empty")
    return errors


def preflight_warnings(specs, params):
    """Return warnings and raise for configurations that would make a warm stop impossible."""
    warnings = []
    if params["state"] != "stopped":
        return warnings
    for spec in specs:
        if spec["stopsignal"] not in (None, SIGTERM_NUMBER, "TERM"):
            raise CeleryWorkerError(
                f"supervisor program '{spec['name']}' has stopsignal={spec['stopsignal']}, not TERM: state=stopped "
                "uses supervisor's stop, which would not be a warm Celery shutdown. Set stopsignal=TERM in its "
                "program section."
            )
        if spec["stopwaitsecs"] and spec["stopwaitsecs"] < params["timeout"]:
            warnings.append(
                f"supervisor program '{spec['name']}' has stopwaitsecs={spec['stopwaitsecs']} < "
                f"timeout={params['timeout']}: supervisord itself SIGKILLs the process group after "
                f"{spec['stopwaitsecs']} seconds of a stop, whatever on_timeout says."
            )
    return warnings


# ---------------------------------------------------------------------------------------------------------------
# supervisord XML-RPC over its UNIX socket
# ---------------------------------------------------------------------------------------------------------------


class UnixSocketHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose transport is an AF_UNIX stream socket."""

    def __init__(self, socket_path, timeout=30):
        http.client.HTTPConnection.__init__(self, "localhost", timeout=timeout)
        self.socket_path = socket_path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except Exception:
            sock.close()
            raise
        self.sock = sock


class UnixSocketTransport(xmlrpc.client.Transport):
    """An ``xmlrpc.client`` transport that reaches supervisord's ``[unix_http_server]`` socket."""

    def __init__(self, socket_path, timeout=30):
        xmlrpc.client.Transport.__init__(self)
        self.socket_path = socket_path
        self.socket_timeout = timeout

    def make_connection(self, host):
        if self._connection and self._connection[0] == host:
            return self._connection[1]
        connection = UnixSocketHTTPConnection(self.socket_path, self.socket_timeout)
        self._connection = host, connection
        return connection


def explain_socket_error(socket_path, exc):
    """Turn an OS error on the supervisor socket into a message that says what to check."""
    code = getattr(exc, "errno", None)
    if code in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied on the supervisord socket {socket_path} (mode 0700, owned by root): run the task with "
            "`become: true`, or as a user the [unix_http_server] section allows (chown/chmod)"
        )
    if code in (errno.ENOENT, errno.ENOTDIR):
        return (
            f"the supervisord socket {socket_path} does not exist: is supervisord running "
            "(`systemctl status supervisor`), and does [unix_http_server] file= point there?"
        )
    if code == errno.ECONNREFUSED:
        return (
            f"nothing listens on the supervisord socket {socket_path} (connection refused): supervisord is not "
            "running; check `systemctl status supervisor` and /var/log/supervisor/supervisord.log"
        )
    return f"cannot talk to supervisord on {socket_path}: {exc}"


class SupervisorClient:
    """The few supervisord RPCs the module needs, with errors turned into :class:`SupervisorError`."""

    def __init__(self, socket_path=DEFAULT_SOCKET, timeout=30, proxy=None):
        self.socket_path = socket_path
        if proxy is None:
            proxy = xmlrpc.client.ServerProxy(
                "http://localhost/RPC2", transport=UnixSocketTransport(socket_path, timeout), allow_none=True
            )
        self._proxy = proxy

    def _call(self, method, *args):
        try:
            return getattr(self._proxy.supervisor, method)(*args)
        except xmlrpc.client.Fault as exc:
            if exc.faultCode == FAULT_SHUTDOWN_STATE:
                raise SupervisorError(
                    f"supervisord is shutting down or restarting ({exc.faultString}); retry once "
                    "`supervisorctl status` answers",
                    exc.faultCode,
                ) from None
            raise SupervisorError(f"supervisor.{method}{args!r} failed: {exc.faultString}", exc.faultCode) from None
        except xmlrpc.client.ProtocolError as exc:
            if exc.errcode == 401:
                raise SupervisorError(
                    f"supervisord on {self.socket_path} asks for a username and password; this module sends no "
                    "credentials: remove username/password from [unix_http_server] (the socket mode protects it)"
                ) from None
            raise SupervisorError(
                f"supervisord on {self.socket_path} answered HTTP {exc.errcode} {exc.errmsg}"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            raise SupervisorError(explain_socket_error(self.socket_path, exc)) from None

    def check_running(self):
        """Fail unless the socket exists and supervisord says RUNNING."""
        if not os.path.exists(self.socket_path):
            raise SupervisorError(explain_socket_error(self.socket_path, OSError(errno.ENOENT, "missing")))
        state = self._call("getState")
        if state.get("statename") != "RUNNING":
            raise SupervisorError(
                f"supervisord is in state {state.get('statename')}, not RUNNING; check `supervisorctl status` "
                "and /var/log/supervisor/supervisord.log"
            )
        return state

    def all_config_info(self):
        return self._call("getAllConfigInfo")

    def process_info(self, name):
        return self._call("getProcessInfo", name)

    def signal(self, name, signal_name):
        return self._call("signalProcess", name, signal_name)

    def start(self, name):
        return self._call("startProcess", name, False)

    def stop(self, name):
        return self._call("stopProcess", name, False)


# ---------------------------------------------------------------------------------------------------------------
# Celery probes
# ---------------------------------------------------------------------------------------------------------------


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

    def _run(self, argv):
        limit = self.ping_timeout + self.margin
        rc, out, err = self.run_command(bound_argv(argv, self.timeout_bin, limit))
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


# ---------------------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------------------


class WorkerController:
    """Brings the selected worker programs to the desired state, one after the other (rolling)."""

    def __init__(self, client, probe, params, check_mode=False, clock=None, sleep=None, hostname=None):
        self.client = client
        self.probe = probe
        self.params = params
        self.check_mode = check_mode
        self.clock = clock or time.monotonic
        self.sleep = sleep or time.sleep
        self.hostname = hostname or socket.gethostname()
        self.warnings = []

    # -- helpers ---------------------------------------------------------------------------------------------

    def _elapsed(self, since):
        return round(self.clock() - since, 1)

    def _wait(self):
        self.sleep(self.params["poll_interval"])

    def _signal(self, spec, signal_name):
        """``signalProcess``: the signal reaches the main pid only; a process that just exited is not an error."""
        try:
            self.client.signal(spec["name"], signal_name)
        except SupervisorError as exc:
            if exc.fault_code != FAULT_NOT_RUNNING:
                raise

    def _start(self, spec):
        try:
            self.client.start(spec["name"])
        except SupervisorError as exc:
            # ALREADY_STARTED: autorestart won the race; SPAWN_ERROR shows up as BACKOFF/FATAL on the next poll.
            if exc.fault_code not in (FAULT_ALREADY_STARTED, FAULT_SPAWN_ERROR):
                raise

    @staticmethod
    def _record_after(result, info):
        result["state_after"] = info.get("statename")
        result["pid_after"] = info.get("pid") or None

    # -- phases ----------------------------------------------------------------------------------------------

    def _wait_gone(self, spec, old_pid, mode, deadline):
        """Poll until the process that had ``old_pid`` is gone or ``deadline`` passes; return ``(info, gone)``."""
        while True:
            info = self.client.process_info(spec["name"])
            if drain_finished(info, old_pid, mode):
                return info, True
            if self.clock() >= deadline:
                return info, False
            self._wait()

    def quiesce(self, spec, result):
        """Before a prefork worker's warm shutdown: stop its consumers, then wait until it has started every task
        it had received, at most ``quiesce_timeout`` seconds.

        A prefork worker acknowledges a task from its event loop once a pool process has accepted it; a task
        accepted after the warm shutdown ended that loop runs, but its acknowledgement is never sent, so the broker
        delivers it again (Celery issue 3796). With nothing received and unstarted, no task can be accepted then.
        """
        limit = self.params["quiesce_timeout"]
        if not limit or spec.get("pool", "prefork") != "prefork":
            return
        started = self.clock()
        # Every queue is asked, whatever the answers before it.
        confirmed = [queue for queue in spec["queues"] if self.probe.cancel_consumer(spec, queue)]
        if confirmed:
            deadline = started + limit
            while True:
                reserved = self.probe.reserved_tasks(spec)
                if not reserved or self.clock() >= deadline:
                    break
                self._wait()
        else:
            self.warnings.append(
                f"worker '{spec['name']}': node {spec['node']} did not confirm `celery control cancel_consumer` "
                f"for {', '.join(spec['queues'])}; its warm shutdown began without the quiesce"
            )
        result["quiesce_seconds"] = self._elapsed(started)

    def drain(self, spec, result, mode):
        """Warm shutdown of the running worker, then ``on_timeout`` if it is still busy after ``timeout``."""
        old_pid = result["pid_before"]
        if self.params["inspect_active"]:
            result["active_tasks"] = self.probe.active_tasks(spec)
        self.quiesce(spec, result)
        started = self.clock()
        if mode == "stop":
            # stopProcess sends the configured stopsignal (TERM) to the main pid only (no stopasgroup) and marks
            # the program stopped, so autorestart leaves it down; supervisord SIGKILLs after stopwaitsecs.
            try:
                self.client.stop(spec["name"])
            except SupervisorError as exc:
                if exc.fault_code != FAULT_NOT_RUNNING:
                    raise
        else:
            self._signal(spec, "TERM")
        result["shutdown"] = "warm"
        info, gone = self._wait_gone(spec, old_pid, mode, started + self.params["timeout"])
        if not gone:
            on_timeout = self.params["on_timeout"]
            if on_timeout == "fail":
                result["drain_seconds"] = self._elapsed(started)
                self._record_after(result, info)
                raise CeleryWorkerError(self._drain_timeout_message(spec, result, mode), [result])
            signal_name = "QUIT" if on_timeout == "cold" else "KILL"
            result["shutdown"] = on_timeout
            self._signal(spec, signal_name)
            info, gone = self._wait_gone(spec, old_pid, mode, self.clock() + self.params["escalation_timeout"])
            if not gone:
                result["drain_seconds"] = self._elapsed(started)
                self._record_after(result, info)
                raise CeleryWorkerError(
                    f"worker '{spec['name']}' (pid {old_pid}) did not exit within "
                    f"{self.params['escalation_timeout']} seconds after SIG{signal_name} (on_timeout={on_timeout}); "
                    f"check `supervisorctl status {spec['name']}` and `ps -o pid,stat,cmd -g {old_pid}`",
                    [result],
                )
        result["drain_seconds"] = self._elapsed(started)
        if mode == "stop" and spec["stopwaitsecs"] and result["drain_seconds"] >= spec["stopwaitsecs"]:
            self.warnings.append(
                f"worker '{spec['name']}' took {result['drain_seconds']} s to stop, at least its "
                f"stopwaitsecs={spec['stopwaitsecs']}: supervisord probably SIGKILLed its process group"
            )
        return info

    def _drain_timeout_message(self, spec, result, mode):
        active = result["active_tasks"]
        active_text = "an unknown number of" if active is None else str(active)
        if mode == "stop":
            after = f"supervisord SIGKILLs its process group after stopwaitsecs={spec['stopwaitsecs']}"
        else:
            after = "supervisord restarts it (autorestart) once it exits"
        return (
            f"worker '{spec['name']}' (pid {result['pid_before']}, node {spec['node']}) was still draining after "
            f"timeout={self.params['timeout']} seconds ({active_text} task(s) were active when the warm shutdown "
            f"began); on_timeout=fail left it draining: it takes no new tasks and {after}. Raise timeout, or use "
            f"on_timeout=cold|kill; see `supervisorctl tail {spec['name']}`."
        )

    def wait_up(self, spec, result, old_pid, may_start):
        """Wait for RUNNING with a pid other than ``old_pid`` past startsecs and a ping answer from the node.

        With ``may_start``, ``startProcess`` is called once if supervisor will not start it by itself
        (EXITED/STOPPED, or FATAL after BACKOFF); a second FATAL fails at once.
        """
        deadline = self.clock() + self.params["start_timeout"]
        starts = 0
        pid_seen = None
        answered_pid = None
        exited_since = None
        while True:
            pause = self.params["poll_interval"]
            info = self.client.process_info(spec["name"])
            progress = start_progress(info, old_pid, spec["startsecs"])
            pid = info.get("pid") or 0
            if info.get("statename") == EXITED:
                exited_since = self.clock() if exited_since is None else exited_since
            else:
                exited_since = None
            if progress == "up":
                pid_seen = pid
                if answered_pid == pid or self.probe.ping(spec):
                    self._record_after(result, info)
                    return info
            elif progress == "starting" and new_process(info, old_pid) and answered_pid != pid:
                # Ping while supervisor counts startsecs, with a short timeout (a node still booting misses the
                # broadcast): the answer holds for this pid only, the RUNNING past startsecs is still awaited.
                asked = self.clock()
                if self.probe.ping(spec, timeout=min(self.params["ping_timeout"], EARLY_PING_TIMEOUT)):
                    answered_pid = pid
                    # Look again at once: startsecs may have passed while the probe ran.
                    continue
                # The probe's own run (Celery's start-up, then the reply wait) counts as this round's pause.
                pause = max(0.0, pause - (self.clock() - asked))
            elif progress in ("needs_start", "fatal"):
                if exited_since is not None and self.clock() - exited_since < self._autorestart_grace():
                    # supervisord's autorestart spawns an EXITED program on its next tick: give it that chance.
                    pass
                elif may_start and starts == 0:
                    starts += 1
                    result["changed"] = True
                    self._start(spec)
                    continue
                if progress == "fatal":
                    self._fail_not_up(spec, result, info)
            if self.clock() >= deadline:
                if pid_seen:
                    self._record_after(result, info)
                    raise CeleryWorkerError(
                        f"worker '{spec['name']}' is {info.get('statename')} (pid {info.get('pid')}) but node "
                        f"{spec['node']} did not answer `celery inspect ping` within "
                        f"start_timeout={self.params['start_timeout']} seconds. Check that the node name matches "
                        f"--hostname in its command, that the broker URL in the env file loaded by {spec['wrapper']} "
                        f"is right and reachable, and `supervisorctl tail {spec['name']} stderr`. "
                        f"Last probe output: {self.probe.last_output or '(none)'}",
                        [result],
                    )
                self._fail_not_up(spec, result, info)
            if pause > 0:
                self.sleep(pause)

    def _autorestart_grace(self):
        return max(AUTORESTART_GRACE, 2 * self.params["poll_interval"])

    def _fail_not_up(self, spec, result, info):
        self._record_after(result, info)
        detail = info.get("spawnerr") or info.get("description") or ""
        detail = f" ({detail})" if detail else ""
        logfile = info.get("stderr_logfile") or info.get("stdout_logfile") or spec["logfile"]
        logfile = f" or {logfile}" if logfile and logfile not in ("none", "auto") else ""
        raise CeleryWorkerError(
            f"worker '{spec['name']}' did not come back: supervisor reports {info.get('statename')}{detail} "
            f"(start_timeout={self.params['start_timeout']} s, startsecs={spec['startsecs']}). Look at "
            f"`supervisorctl tail {spec['name']} stderr`{logfile} and `supervisorctl status {spec['name']}`.",
            [result],
        )

    # -- per program -----------------------------------------------------------------------------------------

    def apply(self, spec, info, action):
        """Carry out ``action`` for one program; return its result dict (attached to any error raised)."""
        begin = self.clock()
        result = program_result(spec, info, action, self.check_mode)
        try:
            self._apply(spec, result, action, begin)
        except CeleryWorkerError as exc:
            result["total_seconds"] = self._elapsed(begin)
            if not any(item is result for item in exc.programs):
                exc.programs = exc.programs + [result]
            raise
        result["total_seconds"] = self._elapsed(begin)
        return result

    def _apply(self, spec, result, action, begin):
        if self.check_mode:
            # Read-only probes only: nothing is signalled, started or stopped.
            if action in ("restart", "stop") and self.params["inspect_active"]:
                result["active_tasks"] = self.probe.active_tasks(spec)
            predict_after(result, self.params["state"])
            return
        if action == "none":
            result["state_after"] = result["state_before"]
            result["pid_after"] = result["pid_before"]
        elif action == "stop":
            self.drain(spec, result, "stop")
            info = self.client.process_info(spec["name"])
            self._record_after(result, info)
        elif action == "restart":
            self.drain(spec, result, "restart")
            self.wait_up(spec, result, result["pid_before"], may_start=True)
        elif action == "start":
            self._start(spec)
            self.wait_up(spec, result, result["pid_before"], may_start=False)
        elif action == "wait_up":
            # STARTING/BACKOFF: supervisor is already (re)trying; startProcess would answer ALREADY_STARTED.
            self.wait_up(spec, result, 0, may_start=True)
        else:  # wait_down, wait_down_then_start: someone else is stopping it
            info, gone = self._wait_gone(spec, result["pid_before"], "stop", begin + self.params["timeout"])
            if not gone:
                self._record_after(result, info)
                raise CeleryWorkerError(
                    f"worker '{spec['name']}' was already STOPPING and is still {info.get('statename')} after "
                    f"timeout={self.params['timeout']} seconds; supervisord SIGKILLs it after "
                    f"stopwaitsecs={spec['stopwaitsecs']}. Check `supervisorctl status {spec['name']}`.",
                    [result],
                )
            if action == "wait_down":
                self._record_after(result, info)
            else:
                self.wait_up(spec, result, result["pid_before"], may_start=True)

    def run(self):
        """Select and validate everything first, then act program by program. Returns ``(changed, result)``."""
        begin = self.clock()
        self.client.check_running()
        specs = select_programs(
            self.client.all_config_info(),
            self.hostname,
            name=self.params.get("name"),
            queue=self.params.get("queue"),
        )
        self.warnings.extend(preflight_warnings(specs, self.params))
        plan = []
        for spec in specs:
            info = self.client.process_info(spec["name"])
            plan.append((spec, info, decide_action(self.params["state"], info.get("statename"))))
        programs = []
        for spec, info, action in plan:
            try:
                programs.append(self.apply(spec, info, action))
            except CeleryWorkerError as exc:
                exc.programs = programs + exc.programs
                raise
        changed = any(item["changed"] for item in programs)
        return changed, {
            "changed": changed,
            "programs": programs,
            "total_seconds": self._elapsed(begin),
            "diff": build_diff(programs),
        }
