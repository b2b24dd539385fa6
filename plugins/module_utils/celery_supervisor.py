# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Warm restarts of supervisor-managed Celery workers: the state machine.

The module ``celeryops.stack.celery_worker`` is a thin shell around this file:

* pure functions select programs, decide what a desired state means for a current supervisor state, follow a
  drain or a start from process infos and shape the results;
* :class:`WorkerController` drives quiesces, drains, restarts, stops and program (re)configurations with an
  injectable clock and sleep, so that every branch can be unit-tested with fakes.

It talks to supervisord through ``supervisor_rpc.SupervisorClient`` and to the workers through
``celery_cli.CeleryProbe``. Only the Python standard library is used; the code runs on the managed host
(Python 3.8+).
"""

from __future__ import annotations

import socket
import time

from ansible_collections.celeryops.stack.plugins.module_utils.celery_cli import bare_spec, build_worker_spec
from ansible_collections.celeryops.stack.plugins.module_utils.supervisor_rpc import (
    ALIVE_STATES,
    BACKOFF,
    DOWN_STATES,
    EXITED,
    FATAL,
    FAULT_ALREADY_STARTED,
    FAULT_BAD_NAME,
    FAULT_NOT_RUNNING,
    FAULT_SPAWN_ERROR,
    RUNNING,
    STARTING,
    STOPPED,
    STOPPING,
    UNKNOWN,
    CeleryWorkerError,
    SupervisorError,
    make_namespec,
)

SIGTERM_NUMBER = 15

#: ``name`` that selects every Celery worker program (started, stopped, restarted)
ALL_WORKERS = "*"

#: states that apply a program's file (``name`` only: one standalone program)
FILE_STATES = ("present", "absent")

#: seconds an EXITED program is left to supervisord's autorestart before the module calls startProcess itself
AUTORESTART_GRACE = 3.0

# The reply wait of a ping sent while supervisor still counts startsecs (the node may not listen yet).
EARLY_PING_TIMEOUT = 0.3

#: The handover of the standalone worker program NAME is the program NAME-handover: the same worker command and
#: queues under another node name, declared with autostart=false. A restart with ``overlap`` starts it first, so
#: the queue keeps a consumer running the new code while the old process finishes its tasks.
HANDOVER_SUFFIX = "-handover"


def handover_name(name):
    """The name of the handover program of the worker program ``name``."""
    return name + HANDOVER_SUFFIX


def without_handovers(specs):
    """``specs`` without the handover programs of the other workers in ``specs`` (a ``*`` or ``queue`` selection
    restarts or starts a worker, not its handover)."""
    names = {spec["name"] for spec in specs}
    return [
        spec
        for spec in specs
        if not (spec["name"].endswith(HANDOVER_SUFFIX) and spec["name"][: -len(HANDOVER_SUFFIX)] in names)
    ]


def find_handover(configs, spec, hostname):
    """The worker spec of the handover program of ``spec`` (see :data:`HANDOVER_SUFFIX`), or None when
    supervisord runs no such standalone program (or ``spec`` belongs to a group).

    Raises :class:`CeleryWorkerError`, naming the program, when the handover would not be a stand-in for the
    worker: not a Celery worker, other queues, the same node name, or autostart=true.
    """
    if spec["group"] != spec["program"]:
        return None
    name = handover_name(spec["name"])
    try:
        handover = program_file_spec(configs, name, hostname)
    except CeleryWorkerError as exc:
        raise CeleryWorkerError(f"the handover of worker '{spec['name']}' is unusable: {exc.message}") from None
    if handover is None or not handover["inuse"]:
        return None
    problems = []
    if sorted(handover["queues"]) != sorted(spec["queues"]):
        problems.append(f"it serves {','.join(handover['queues'])}, not the worker's queues {','.join(spec['queues'])}")
    if handover["node"] == spec["node"]:
        problems.append(f"it has the worker's own node name {spec['node']}")
    if handover["autostart"]:
        problems.append("it has autostart=true (a handover runs only during a restart)")
    if problems:
        raise CeleryWorkerError(
            f"supervisor program '{name}', the handover of worker '{spec['name']}', is unusable: "
            f"{'; '.join(problems)}. Fix its program section, or restart with overlap=false. Nothing was changed."
        )
    return handover


def handover_result(spec, info, check_mode):
    """Start the ``handover`` entry of a program's result: the handover program, its pid and its timings."""
    return {
        "name": spec["name"],
        "node": spec["node"],
        "pid": None if check_mode else (info.get("pid") or None),
        "boot_seconds": None,
        "active_tasks": None,
        "handed_back": None,
        "drain_seconds": None,
        "shutdown": None,
    }


def _known_programs_text(configs):
    names = sorted(make_namespec(c.get("group"), c["name"]) for c in configs)
    return ", ".join(names) if names else "(none)"


def _worker_specs(configs, hostname):
    """Every program of ``configs`` that is a Celery worker, as specs; the others are left out."""
    specs = []
    for config in configs:
        try:
            specs.append(build_worker_spec(config, hostname))
        except ValueError:
            continue
    return specs


def select_programs(configs, hostname, name=None, queue=None):
    """Select the worker programs named by ``name`` (program, ``group:name``, ``group:*`` or ``*``) or serving
    ``queue``.

    Returns a list of worker specs (see :func:`build_worker_spec`) in supervisor's order.
    Raises :class:`CeleryWorkerError` with the known names when nothing matches, or when a named program is not
    a Celery worker or is not active in supervisord. Programs that are not Celery workers are skipped by a
    ``queue`` selection and by ``*``, which selects every worker supervisord runs (``inuse``), possibly none.
    """
    if name == ALL_WORKERS:
        return [spec for spec in _worker_specs(configs, hostname) if spec["inuse"]]
    if queue is not None:
        workers = _worker_specs(configs, hostname)
        specs = [spec for spec in workers if queue in spec["queues"]]
        if not specs:
            workers = [f"{spec['name']} ({','.join(spec['queues'])})" for spec in workers]
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


def find_program_config(configs, name):
    """Return the ``getAllConfigInfo`` entry of the standalone program ``name`` (``[program:NAME]``, the only
    process of its own group), or None when no entry has that group.

    Raises :class:`CeleryWorkerError` when the group ``name`` holds other processes (``numprocs`` > 1 or a
    ``[group:NAME]`` section): state=present/absent add and remove whole groups.
    """
    members = [c for c in configs if (c.get("group") or c["name"]) == name]
    if not members:
        return None
    if len(members) > 1 or members[0]["name"] != name:
        held = ", ".join(make_namespec(c.get("group"), c["name"]) for c in members)
        raise CeleryWorkerError(
            f"supervisor group '{name}' holds {held}: state=present and state=absent apply one standalone "
            f"program ([program:{name}] with numprocs=1, in no [group:...] section)"
        )
    return members[0]


def program_file_spec(configs, name, hostname):
    """The worker spec of the standalone program ``name`` declared in ``configs``, or None when none declares it.

    Raises :class:`CeleryWorkerError` when the group holds other programs or the command is not a Celery worker.
    """
    config = find_program_config(configs, name)
    if config is None:
        return None
    try:
        return build_worker_spec(config, hostname)
    except ValueError as exc:
        raise CeleryWorkerError(str(exc)) from None


def _check_inuse(specs):
    idle = [spec["name"] for spec in specs if not spec["inuse"]]
    if idle:
        raise CeleryWorkerError(
            f"supervisor program(s) {', '.join(idle)} are configured but not active in supervisord: apply them "
            "first with state=present (the workers role does this), or `supervisorctl update NAME`"
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


#: actions that signal, start, stop, add or remove something
MUTATING_ACTIONS = ("start", "restart", "wait_down_then_start", "stop", "add", "reload", "remove")

#: actions whose end state is a running, answering worker
UP_ACTIONS = ("wait_up", "start", "restart", "wait_down_then_start", "add", "reload")


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
        "handed_back": None,
        "drain_seconds": None,
        "shutdown": None,
        "handover": None,
        "total_seconds": 0.0,
        "changed": action in MUTATING_ACTIONS,
        "check_mode": bool(check_mode),
    }


def predict_after(result, desired):
    """Fill ``state_after``/``pid_after`` with what a real run would leave (check mode)."""
    if result["action"] == "none":
        result["state_after"] = result["state_before"]
        result["pid_after"] = result["pid_before"]
    elif result["action"] == "remove":
        # supervisord no longer has the program: no state, no pid
        result["state_after"] = None
        result["pid_after"] = None
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
    state = params.get("state")
    name = params.get("name")
    if state in FILE_STATES:
        if params.get("queue") is not None:
            errors.append(f"queue cannot be used with state={state}: name the program with name")
        elif name and (":" in name or name.strip() == ALL_WORKERS):
            errors.append(
                f"state={state} takes the name of one standalone program ([program:NAME]), not '{name}': "
                "supervisord adds and removes whole groups"
            )
    return errors


def stop_preflight(spec, params):
    """Return warnings, and raise when supervisor's stop of ``spec`` would not be a warm shutdown."""
    if spec["stopsignal"] not in (None, SIGTERM_NUMBER, "TERM"):
        raise CeleryWorkerError(
            f"supervisor program '{spec['name']}' has stopsignal={spec['stopsignal']}, not TERM: state="
            f"{params['state']} uses supervisor's stop, which would not be a warm Celery shutdown. Set "
            "stopsignal=TERM in its program section."
        )
    if spec["stopwaitsecs"] and spec["stopwaitsecs"] < params["timeout"]:
        return [
            f"supervisor program '{spec['name']}' has stopwaitsecs={spec['stopwaitsecs']} < "
            f"timeout={params['timeout']}: supervisord itself SIGKILLs the process group after "
            f"{spec['stopwaitsecs']} seconds of a stop, whatever on_timeout says."
        ]
    return []


def preflight_warnings(specs, params):
    """Return warnings and raise for configurations that would make a warm stop impossible."""
    warnings = []
    if params["state"] != "stopped":
        return warnings
    for spec in specs:
        warnings.extend(stop_preflight(spec, params))
    return warnings


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
        """Before a prefork worker's warm shutdown: stop its consumers, have it hand back (requeue) the tasks it
        received but could not start because every pool process was busy, then wait until it has started the
        rest, at most ``quiesce_timeout`` seconds.

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
            # Requests that wait for a free pool process never reached one, so requeueing them cannot run a task
            # twice; without this a busy pool keeps them until a process frees up (None: the node cannot).
            handed = result["handed_back"] = self.probe.hand_back(spec)
            deadline = started + limit
            while True:
                reserved = self.probe.reserved_tasks(spec)
                if not reserved or self.clock() >= deadline:
                    break
                if handed is not None:
                    # Deliveries that were on their way when the consumers were cancelled arrive after the first
                    # hand-back: ask again while anything received is unstarted.
                    handed.extend(self.probe.hand_back(spec) or [])
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
        self._count_active(spec, result)
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
            f"worker '{spec['name']}' (pid {result['pid_before']}, node {spec['node'] or 'unknown'}) was still "
            f"draining after timeout={self.params['timeout']} seconds ({active_text} task(s) were active when the warm "
            f"shutdown began); on_timeout=fail left it draining: it takes no new tasks and {after}. Raise timeout, or "
            f"use on_timeout=cold|kill; see `supervisorctl tail {spec['name']}`."
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

    def apply(self, spec, info, action, handover=None):
        """Carry out ``action`` for one program; return its result dict (attached to any error raised).

        ``handover`` (a worker spec, see :func:`find_handover`) makes a ``restart`` overlap.
        """
        result = program_result(spec, info, action, self.check_mode)
        return self._carry_out(result, lambda begin: self._apply(spec, result, action, begin, handover))

    def _carry_out(self, result, work):
        """Run ``work(begin)`` for one program's ``result``: time it, and attach it to any error raised."""
        begin = self.clock()
        try:
            work(begin)
        except CeleryWorkerError as exc:
            result["total_seconds"] = self._elapsed(begin)
            if not any(item is result for item in exc.programs):
                exc.programs = exc.programs + [result]
            raise
        result["total_seconds"] = self._elapsed(begin)
        return result

    def _apply(self, spec, result, action, begin, handover=None):
        if handover is not None and action == "restart":
            result["handover"] = handover_result(handover, self.client.process_info(handover["name"]), self.check_mode)
        if self.check_mode:
            # Read-only probes only: nothing is signalled, started or stopped.
            if action in ("restart", "stop") or (action == "remove" and result["state_before"] in ALIVE_STATES):
                self._count_active(spec, result)
            predict_after(result, self.params["state"])
            return
        if action == "none":
            result["state_after"] = result["state_before"]
            result["pid_after"] = result["pid_before"]
        elif action == "stop":
            self.drain(spec, result, "stop")
            info = self.client.process_info(spec["name"])
            self._record_after(result, info)
        elif action == "restart" and result["handover"] is not None:
            self._overlap_restart(spec, result, handover)
        elif action == "restart":
            self.drain(spec, result, "restart")
            self.wait_up(spec, result, result["pid_before"], may_start=True)
        elif action == "start":
            self._start(spec)
            self.wait_up(spec, result, result["pid_before"], may_start=False)
        elif action == "wait_up":
            # STARTING/BACKOFF: supervisor is already (re)trying; startProcess would answer ALREADY_STARTED.
            self.wait_up(spec, result, 0, may_start=True)
        elif action == "wait_down":
            self._record_after(result, self._wait_down(spec, result, begin))
        else:  # wait_down_then_start: someone else is stopping it
            self._wait_down(spec, result, begin)
            self.wait_up(spec, result, result["pid_before"], may_start=True)

    def _overlap_restart(self, spec, result, handover):
        """A restart in which the queue never lacks a consumer: start the handover (the new code) and wait until
        it answers; quiesce and warm-restart the worker, whose old process finishes its tasks while the handover
        consumes; once the worker answers again, quiesce and warm-stop the handover."""
        summary = result["handover"]
        record = program_result(handover, self.client.process_info(handover["name"]), "stop", False)
        if record["state_before"] == STOPPING:
            self._wait_down(handover, record, self.clock())
        elif record["state_before"] in ALIVE_STATES:
            # Left running by an interrupted restart: it may run the code of an earlier deploy.
            self.warnings.append(
                f"the handover '{handover['name']}' was already {record['state_before']}; it was drained and "
                "stopped before it was started again with the code on disk"
            )
            self.drain(handover, record, "stop")
        started = self.clock()
        self._start(handover)
        try:
            self.wait_up(handover, record, record["pid_before"] or 0, may_start=False)
        except CeleryWorkerError as exc:
            with_stop = self._stop_quietly(handover)
            raise CeleryWorkerError(
                f"{exc.message} It is the handover of worker '{spec['name']}', which was not touched: it still "
                f"runs the code it had (pid {result['pid_before']}). {with_stop}",
                [result],
            ) from None
        summary["pid"] = record["pid_after"]
        summary["boot_seconds"] = self._elapsed(started)
        try:
            self.drain(spec, result, "restart")
            self.wait_up(spec, result, result["pid_before"], may_start=True)
        except CeleryWorkerError as exc:
            exc.message = (
                f"{exc.message} Its handover '{handover['name']}' (node {handover['node']}) still runs and serves "
                f"{', '.join(handover['queues'])}: stop it with state=stopped once '{spec['name']}' is back."
            )
            exc.args = (exc.message,)
            raise
        record = program_result(handover, self.client.process_info(handover["name"]), "stop", False)
        self.drain(handover, record, "stop")
        for key in ("active_tasks", "handed_back", "drain_seconds", "shutdown"):
            summary[key] = record[key]

    def _stop_quietly(self, spec):
        """Ask supervisord to stop a program that failed to come up; say what happened, in one sentence."""
        try:
            self.client.stop(spec["name"])
        except SupervisorError as exc:
            if exc.fault_code != FAULT_NOT_RUNNING:
                return f"Stopping '{spec['name']}' failed too: {exc.message}"
            return f"'{spec['name']}' is not running."
        return f"'{spec['name']}' was stopped."

    def _count_active(self, spec, result):
        """Best effort, read-only: how many tasks the worker runs (``inspect_active``), when its node is known."""
        if self.params["inspect_active"] and spec["node"]:
            result["active_tasks"] = self.probe.active_tasks(spec)

    def _wait_down(self, spec, result, begin):
        """Someone else is stopping the program: wait (``timeout``) until it is down; return its last info."""
        info, gone = self._wait_gone(spec, result["pid_before"], "stop", begin + self.params["timeout"])
        if not gone:
            self._record_after(result, info)
            raise CeleryWorkerError(
                f"worker '{spec['name']}' was already STOPPING and is still {info.get('statename')} after "
                f"timeout={self.params['timeout']} seconds; supervisord SIGKILLs it after "
                f"stopwaitsecs={spec['stopwaitsecs']}. Check `supervisorctl status {spec['name']}`.",
                [result],
            )
        return info

    # -- state=present / state=absent: one program's file ----------------------------------------------------

    def _info_or_none(self, name):
        """``getProcessInfo``, or None when supervisord does not run the program (``BAD_NAME``)."""
        try:
            return self.client.process_info(name)
        except SupervisorError as exc:
            if exc.fault_code == FAULT_BAD_NAME:
                return None
            raise

    def _running_spec(self, configs, name):
        """Return ``(spec, None)``, the spec of the process supervisord runs from the configuration it had read
        before this task, or ``(None, why)`` when that configuration does not describe it as a Celery worker."""
        config = find_program_config(configs, name)
        if config is None:
            return None, (
                "the configuration supervisord had read before this task does not declare it (was `supervisorctl "
                "reread` run, or another program applied, after its file changed?)"
            )
        try:
            return build_worker_spec(config, self.hostname), None
        except ValueError as exc:
            return None, str(exc)

    def _reload(self):
        """``reloadConfig``, then the configuration it read: ``(added, changed, configs)``."""
        added, changed, _removed = self.client.reload_config()
        return added, changed, self.client.all_config_info()

    def _take_down(self, spec, result, stop, begin):
        """Bring the process down for good before its group is removed: ``stop`` is the action of state=stopped
        (``stop`` drains it, ``wait_down`` waits for someone else's stop, ``none`` has nothing to do)."""
        if stop == "stop":
            self.drain(spec, result, "stop")
        elif stop == "wait_down":
            self._wait_down(spec, result, begin)

    def present(self, name):
        """state=present: run the program as its file declares it; a changed one is drained with its old settings."""
        old_spec, problem = self._running_spec(self.client.all_config_info(), name)
        if self.check_mode:
            # reloadConfig would change supervisord's options: predict from what it runs now. A changed file is
            # reported by the task that writes it.
            info = self._info_or_none(name)
            if info is None:
                return self.apply(old_spec or bare_spec(name), {}, "add")
            if old_spec is None:
                raise CeleryWorkerError(f"supervisor program '{name}': {problem}")
            return self.apply(old_spec, info, decide_action("started", info.get("statename")))
        added, changed, configs = self._reload()
        new_spec = program_file_spec(configs, name, self.hostname)
        if new_spec is None:
            raise CeleryWorkerError(
                f"no file of supervisord's configuration declares the program '{name}' (known programs: "
                f"{_known_programs_text(configs)}): write its [program:{name}] section into a file of the [include] "
                f"files of supervisord.conf (/etc/supervisor/conf.d/{name}.conf by default) before state=present"
            )
        if name in added:
            result = program_result(new_spec, {}, "add", False)

            def add(_begin):
                self.client.add_group(name)
                self._await_added(new_spec, result, 0)

            return self._carry_out(result, add)
        info = self.client.process_info(name)
        if name not in changed:
            if not new_spec["autostart"]:
                # Declared to be started on demand (a handover): left as it is.
                return self.apply(new_spec, info, "none")
            return self.apply(new_spec, info, decide_action("started", info.get("statename")))
        missing = None
        if old_spec is None:
            missing = (
                f"worker '{name}': {problem}; the quiesce and the warm stop of its running process used the node name "
                "and queues of its new file"
            )

        def add_again(result):
            self.client.add_group(name)
            self._await_added(new_spec, result, result["pid_before"])

        return self._stop_and_remove(name, info, old_spec or new_spec, missing, new_spec, "reload", then=add_again)

    def _await_added(self, spec, result, old_pid):
        """After ``addProcessGroup``: wait until the program runs and answers (autostart spawns it on supervisord's
        next tick; ``wait_up`` starts it if it stays STOPPED/EXITED), or, for a program with autostart=false (a
        handover), only record that it is there and stopped."""
        if spec["autostart"]:
            self.wait_up(spec, result, old_pid, may_start=True)
        else:
            self._record_after(result, self.client.process_info(spec["name"]))

    def absent(self, name):
        """state=absent: drain and stop the program, then remove it from supervisord (its file is gone)."""
        spec, problem = self._running_spec(self.client.all_config_info(), name)
        # A group in use in that configuration is one supervisord runs, so getProcessInfo finds it.
        info = self._info_or_none(name)
        if not self.check_mode:
            _added, _changed, configs = self._reload()
            if find_program_config(configs, name) is not None:
                raise CeleryWorkerError(
                    f"supervisor program '{name}' is still declared by a file of supervisord's configuration: delete "
                    f"that file first (/etc/supervisor/conf.d/{name}.conf by default; see [include] files= in "
                    "supervisord.conf), otherwise supervisord adds the program again at its next update or restart. "
                    "Nothing was stopped."
                )
        missing = None if spec else f"worker '{name}': {problem}; it was stopped without the quiesce"
        spec = spec or bare_spec(name)
        if info is None:
            return self.apply(spec, {}, "none")
        if self.check_mode:
            return self.apply(spec, info, "remove")
        return self._stop_and_remove(name, info, spec, missing, spec, "remove")

    def _stop_and_remove(self, name, info, stop_spec, missing, result_spec, action, then=None):
        """Bring the process down for good, drained with ``stop_spec`` (the settings it was started with; the
        warning ``missing`` when they were not known), remove its group, then ``then(result)``. The result, of
        ``action``, describes ``result_spec``."""
        stop = decide_action("stopped", info.get("statename"))
        if stop == "stop":
            self.warnings.extend([missing] if missing else [])
            self.warnings.extend(stop_preflight(stop_spec, self.params))
        result = program_result(result_spec, info, action, False)

        def work(begin):
            self._take_down(stop_spec, result, stop, begin)
            self.client.remove_group(name)
            if then is not None:
                then(result)

        return self._carry_out(result, work)

    # -- all states --------------------------------------------------------------------------------------------

    def run(self):
        """Select and validate everything first, then act program by program. Returns ``(changed, result)``."""
        begin = self.clock()
        self.client.check_running()
        if self.params["state"] == "present":
            programs = [self.present(self.params["name"])]
        elif self.params["state"] == "absent":
            programs = [self.absent(self.params["name"])]
        else:
            programs = self._run_selected()
        changed = any(item["changed"] for item in programs)
        return changed, {
            "changed": changed,
            "programs": programs,
            "total_seconds": self._elapsed(begin),
            "diff": build_diff(programs),
        }

    def _run_selected(self):
        """started, stopped, restarted: the selected programs one after the other; their results."""
        configs = self.client.all_config_info()
        specs = select_programs(configs, self.hostname, name=self.params.get("name"), queue=self.params.get("queue"))
        if self.params["state"] != "stopped" and (self.params.get("queue") is not None or self.params["name"] == "*"):
            specs = without_handovers(specs)
        self.warnings.extend(preflight_warnings(specs, self.params))
        plan = []
        for spec in specs:
            info = self.client.process_info(spec["name"])
            action = decide_action(self.params["state"], info.get("statename"))
            handover = None
            if action == "restart" and self.params.get("overlap"):
                handover = find_handover(configs, spec, self.hostname)
                if handover is not None:
                    # Refuses a stopsignal other than TERM. Its stopwaitsecs warning is left out: the handover's
                    # tasks are the worker's, whose time limits the workers role holds below stopwaitsecs.
                    stop_preflight(handover, self.params)
            plan.append((spec, info, action, handover))
        programs = []
        for spec, info, action, handover in plan:
            try:
                programs.append(self.apply(spec, info, action, handover))
            except CeleryWorkerError as exc:
                exc.programs = programs + exc.programs
                raise
        return programs
