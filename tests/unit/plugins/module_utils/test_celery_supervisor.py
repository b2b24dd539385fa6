# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Unit tests of the pure logic, the XML-RPC client and the controller, with a fake supervisor and a fake clock."""

from __future__ import annotations

import errno
import http.client
import os
import socketserver
import threading
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

import pytest

from ansible_collections.celeryops.stack.plugins.module_utils import celery_supervisor as cs

WRAPPER = "/opt/celery/bin/celery-run"
APP = "--app=myproject.celery_config:app"
CUSTOMERS_CMD = (
    f"{WRAPPER} worker {APP} --queues=customers --hostname=customers.%h --pool=eventlet --concurrency=256 "
    "--loglevel=INFO -E"
)
INVOICES_CMD = f"{WRAPPER} {APP} worker -Q invoices,billing -n invoices@%n -P eventlet"


# ---------------------------------------------------------------------------------------------------------------
# Fakes
# ---------------------------------------------------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make_config(name, command, group=None, **extra):
    config = {
        "name": name,
        "group": group or name,
        "command": command,
        "startsecs": 5,
        "stopwaitsecs": 900,
        "stopsignal": 15,
        "killasgroup": True,
        "inuse": True,
        "stdout_logfile": f"/var/log/supervisor/{name}.log",
    }
    config.update(extra)
    return config


def make_info(name, state, pid=0, group=None, **extra):
    info = {"name": name, "group": group or name, "statename": state, "pid": pid, "spawnerr": "", "description": ""}
    info.update(extra)
    return info


class FakeSupervisor:
    """Scripted supervisord: process infos change at scheduled (fake) times; RPC calls are recorded."""

    def __init__(self, clock, configs, infos):
        self.clock = clock
        self.configs = configs
        self.infos = {cs.make_namespec(i["group"], i["name"]): dict(i) for i in infos}
        self.events = []
        self.calls = []
        self.hooks = {}
        self.errors = {}

    def schedule(self, delay, name, **changes):
        self.events.append((self.clock.now + delay, name, changes))
        self.events.sort(key=lambda event: event[0])

    def _advance(self):
        due = [event for event in self.events if event[0] <= self.clock.now]
        self.events = [event for event in self.events if event[0] > self.clock.now]
        for _when, name, changes in due:
            self.infos[name].update(changes)

    def _record(self, *call):
        self.calls.append(call)
        error = self.errors.get(call[0])
        if error is not None:
            raise error
        hook = self.hooks.get(call[0]) or self.hooks.get(call[:3])
        if hook is not None:
            hook(self, *call[1:])

    def check_running(self):
        self._record("check_running")

    def all_config_info(self):
        self._record("all_config_info")
        return self.configs

    def process_info(self, name):
        self._advance()
        return dict(self.infos[name])

    def signal(self, name, signal_name):
        self._record("signal", name, signal_name)
        return True

    def start(self, name):
        self._record("start", name)
        return True

    def stop(self, name):
        self._record("stop", name)
        return True

    def mutations(self):
        return [call for call in self.calls if call[0] in ("signal", "start", "stop")]


class FakeProbe:
    def __init__(self, clock, answers_after=0.0, active=3):
        self.clock = clock
        self.answers_after = answers_after
        self.active = active
        self.pings = []
        self.ping_timeouts = []
        self.last_output = "Error: No nodes replied within time constraint"
        self.cancelled = []
        self.confirms = True
        self.reserved = []  # successive `inspect reserved` counts, then 0
        self.reserved_asks = []

    def ping(self, spec, timeout=None):
        self.pings.append((self.clock.now, spec["node"]))
        self.ping_timeouts.append(timeout)
        return self.answers_after is not None and self.clock.now >= self.answers_after

    def active_tasks(self, spec):
        return self.active

    def cancel_consumer(self, spec, queue):
        self.cancelled.append((self.clock.now, spec["node"], queue))
        return self.confirms

    def reserved_tasks(self, spec):
        self.reserved_asks.append(self.clock.now)
        return self.reserved.pop(0) if self.reserved else 0


def params(**overrides):
    values = {
        "name": "celery-customers",
        "queue": None,
        "state": "restarted",
        "timeout": 600,
        "on_timeout": "fail",
        "start_timeout": 120,
        "escalation_timeout": 30,
        "poll_interval": 1.0,
        "ping_timeout": 5.0,
        "ping_command": None,
        "inspect_active": True,
        "quiesce_timeout": 10.0,
        "socket": "/var/run/supervisor.sock",
    }
    values.update(overrides)
    return values


def controller(fake, probe, clock, check_mode=False, **overrides):
    return cs.WorkerController(
        fake, probe, params(**overrides), check_mode=check_mode, clock=clock, sleep=clock.sleep, hostname="app1"
    )


def warm_exit_and_respawn(drain, new_pid=2002, spawn_after=0.5, startsecs=5):
    """TERM makes the worker exit after ``drain`` s; autorestart spawns ``new_pid``, RUNNING after startsecs."""

    def hook(fake, name, _signal_name=None):
        fake.schedule(drain, name, statename="EXITED", pid=0)
        fake.schedule(drain + spawn_after, name, statename="STARTING", pid=new_pid)
        fake.schedule(drain + spawn_after + startsecs + 0.1, name, statename="RUNNING")

    return hook


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def customers(clock):
    configs = [make_config("celery-customers", CUSTOMERS_CMD), make_config("flower", "/opt/flower/bin/flower")]
    infos = [make_info("celery-customers", "RUNNING", 1001), make_info("flower", "RUNNING", 77)]
    return FakeSupervisor(clock, configs, infos)


# ---------------------------------------------------------------------------------------------------------------
# Parsing and node names
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "hostname", "queues", "global_args"),
    [
        (CUSTOMERS_CMD, "customers.%h", ["customers"], [APP]),
        (INVOICES_CMD, "invoices@%n", ["invoices", "billing"], [APP]),
        (f"{WRAPPER} worker -A proj -Qa,b -ncustom@%h", "custom@%h", ["a", "b"], ["--app=proj"]),
        (f"{WRAPPER} -A proj -b amqp://broker// worker", None, ["celery"], ["--app=proj", "--broker=amqp://broker//"]),
        (f"{WRAPPER} --app proj worker --hostname x --queues q", "x", ["q"], ["--app=proj"]),
        (f"{WRAPPER} --workdir=/srv --config cfg worker -Q=q1", None, ["q1"], ["--workdir=/srv", "--config=cfg"]),
        (f"{WRAPPER} -q worker --queues ' a , b '", None, ["a", "b"], []),
        (f"{WRAPPER} --app=first worker --app=second", None, ["celery"], ["--app=first"]),
        ("celery worker -n", "", ["celery"], []),
    ],
)
def test_parse_worker_command(command, hostname, queues, global_args):
    parsed = cs.parse_worker_command(command)
    assert parsed["hostname"] == hostname
    assert parsed["queues"] == queues
    assert parsed["global_args"] == global_args
    assert parsed["wrapper"] == command.split()[0]


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("/opt/flower/bin/flower --port=5555", "subcommand: none"),
        (f"{WRAPPER} -A proj beat", "subcommand: beat"),
        (f"{WRAPPER} --app proj", "subcommand: none"),
        ("", "empty"),
        ("celery 'worker", "cannot split"),
    ],
)
def test_parse_worker_command_rejects(command, message):
    with pytest.raises(ValueError, match=message):
        cs.parse_worker_command(command)


@pytest.mark.parametrize(
    ("template", "hostname", "expected"),
    [
        ("customers.%h", "app1", "celery@customers.app1"),
        ("customers.%h", "app1.example.com", "celery@customers.app1.example.com"),
        ("w@%n", "app1.example.com", "w@app1"),
        ("w@%n.%d", "app1.example.com", "w@app1.example.com"),
        ("w@box", "app1", "w@box"),
        (None, "app1", "celery@app1"),
        ("", "app1.example.com", "celery@app1.example.com"),
        ("@%h", "app1", "celery@app1"),
        ("w@", "app1", "w@app1"),
        ("w%%1@%h", "app1", "w%1@app1"),
    ],
)
def test_expand_node_name(template, hostname, expected):
    assert cs.expand_node_name(template, hostname) == expected


def test_expand_node_name_unknown_key():
    with pytest.raises(ValueError, match="unknown node name format key '%i'"):
        cs.expand_node_name("w%i@%h", "app1")


@pytest.mark.parametrize(
    ("group", "name", "expected"),
    [("celery-a", "celery-a", "celery-a"), ("batch", "celery-a", "batch:celery-a"), (None, "x", "x")],
)
def test_make_namespec(group, name, expected):
    assert cs.make_namespec(group, name) == expected


def test_build_worker_spec():
    spec = cs.build_worker_spec(make_config("celery-customers", CUSTOMERS_CMD), "app1")
    assert spec["name"] == "celery-customers"
    assert spec["node"] == "celery@customers.app1"
    assert spec["queues"] == ["customers"]
    assert spec["wrapper"] == WRAPPER
    assert spec["startsecs"] == 5
    assert spec["stopwaitsecs"] == 900


def test_build_worker_spec_bad_node_name():
    with pytest.raises(ValueError, match="supervisor program 'w': unknown node name format key"):
        cs.build_worker_spec(make_config("w", f"{WRAPPER} worker -n w%I@%h"), "app1")


# ---------------------------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------------------------

CONFIGS = [
    make_config("celery-customers", CUSTOMERS_CMD),
    make_config("celery-invoices", INVOICES_CMD),
    make_config("celery-batch_00", f"{WRAPPER} {APP} worker -Q batch -n batch0@%h", group="celery-batch"),
    make_config("celery-batch_01", f"{WRAPPER} {APP} worker -Q batch -n batch1@%h", group="celery-batch"),
    make_config("celery-default", f"{WRAPPER} {APP} worker"),
    make_config("flower", "/opt/flower/bin/flower --port=5555"),
]


@pytest.mark.parametrize(
    ("name", "queue", "expected"),
    [
        ("celery-customers", None, ["celery-customers"]),
        ("celery-batch:*", None, ["celery-batch:celery-batch_00", "celery-batch:celery-batch_01"]),
        ("celery-batch:", None, ["celery-batch:celery-batch_00", "celery-batch:celery-batch_01"]),
        ("celery-batch:celery-batch_01", None, ["celery-batch:celery-batch_01"]),
        ("celery-customers:celery-customers", None, ["celery-customers"]),
        (None, "billing", ["celery-invoices"]),
        (None, "batch", ["celery-batch:celery-batch_00", "celery-batch:celery-batch_01"]),
        (None, "celery", ["celery-default"]),
    ],
)
def test_select_programs(name, queue, expected):
    specs = cs.select_programs(CONFIGS, "app1", name=name, queue=queue)
    assert [spec["name"] for spec in specs] == expected


@pytest.mark.parametrize(
    ("name", "queue", "message"),
    [
        ("celery-nope", None, "unknown supervisor program 'celery-nope'. Known programs: celery-batch:celery-batch_00"),
        ("celery-batch", None, "'celery-batch' is a group: use name='celery-batch:\\*'"),
        ("nope:*", None, "unknown supervisor group 'nope'. Known groups: celery-batch, celery-customers"),
        (None, "nope", "no supervisor program runs a Celery worker that serves queue 'nope'.*celery-invoices"),
        ("flower", None, "supervisor program 'flower' is not a Celery worker.*no 'worker' subcommand"),
    ],
)
def test_select_programs_errors(name, queue, message):
    with pytest.raises(cs.CeleryWorkerError, match=message):
        cs.select_programs(CONFIGS, "app1", name=name, queue=queue)


def test_select_programs_not_in_use():
    configs = [make_config("celery-new", f"{WRAPPER} worker", inuse=False)]
    with pytest.raises(cs.CeleryWorkerError, match="not active in supervisord.*supervisorctl update"):
        cs.select_programs(configs, "app1", name="celery-new")


def test_select_programs_none_known():
    with pytest.raises(cs.CeleryWorkerError, match=r"Known programs: \(none\)"):
        cs.select_programs([], "app1", name="x")
    with pytest.raises(cs.CeleryWorkerError, match=r"Known workers \(queues\): \(none\)"):
        cs.select_programs([], "app1", queue="x")


# ---------------------------------------------------------------------------------------------------------------
# Decisions and progress
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "state", "action"),
    [
        ("started", "RUNNING", "none"),
        ("started", "STARTING", "wait_up"),
        ("started", "BACKOFF", "wait_up"),
        ("started", "STOPPING", "wait_down_then_start"),
        ("started", "STOPPED", "start"),
        ("started", "EXITED", "start"),
        ("started", "FATAL", "start"),
        ("restarted", "RUNNING", "restart"),
        ("restarted", "STARTING", "restart"),
        ("restarted", "STOPPING", "wait_down_then_start"),
        ("restarted", "BACKOFF", "wait_up"),
        ("restarted", "STOPPED", "start"),
        ("restarted", "EXITED", "start"),
        ("restarted", "FATAL", "start"),
        ("stopped", "RUNNING", "stop"),
        ("stopped", "STARTING", "stop"),
        ("stopped", "BACKOFF", "stop"),
        ("stopped", "STOPPING", "wait_down"),
        ("stopped", "STOPPED", "none"),
        ("stopped", "EXITED", "none"),
        ("stopped", "FATAL", "none"),
    ],
)
def test_decide_action(desired, state, action):
    assert cs.decide_action(desired, state) == action


@pytest.mark.parametrize("state", ["UNKNOWN", "WEIRD", None])
def test_decide_action_unknown_process_state(state):
    with pytest.raises(cs.CeleryWorkerError, match="supervisor lost track"):
        cs.decide_action("started", state)


def test_decide_action_unknown_desired_state():
    with pytest.raises(cs.CeleryWorkerError, match="unknown state 'reloaded'"):
        cs.decide_action("reloaded", "RUNNING")


@pytest.mark.parametrize(
    ("info", "mode", "finished"),
    [
        ({"statename": "RUNNING", "pid": 10}, "restart", False),
        ({"statename": "RUNNING", "pid": 11}, "restart", True),
        ({"statename": "STARTING", "pid": 11}, "restart", True),
        ({"statename": "EXITED", "pid": 0}, "restart", True),
        ({"statename": "BACKOFF", "pid": 0}, "restart", True),
        ({"statename": "STOPPING", "pid": 10}, "stop", False),
        ({"statename": "STOPPED", "pid": 0}, "stop", True),
        ({"statename": "FATAL", "pid": 0}, "stop", True),
    ],
)
def test_drain_finished(info, mode, finished):
    assert cs.drain_finished(info, 10, mode) is finished


@pytest.mark.parametrize(
    ("info", "old_pid", "progress"),
    [
        ({"statename": "RUNNING", "pid": 11}, 10, "up"),
        ({"statename": "RUNNING", "pid": 10}, 10, "starting"),
        ({"statename": "RUNNING", "pid": 11, "start": 100, "now": 103}, 10, "starting"),
        ({"statename": "RUNNING", "pid": 11, "start": 100, "now": 105}, 10, "up"),
        ({"statename": "RUNNING", "pid": 11}, None, "up"),
        ({"statename": "STARTING", "pid": 11}, 10, "starting"),
        ({"statename": "BACKOFF", "pid": 0}, 10, "starting"),
        ({"statename": "STOPPING", "pid": 10}, 10, "starting"),
        ({"statename": "EXITED", "pid": 0}, 10, "needs_start"),
        ({"statename": "STOPPED", "pid": 0}, 10, "needs_start"),
        ({"statename": "FATAL", "pid": 0}, 10, "fatal"),
    ],
)
def test_start_progress(info, old_pid, progress):
    assert cs.start_progress(info, old_pid, 5) == progress


# ---------------------------------------------------------------------------------------------------------------
# Probe output and commands
# ---------------------------------------------------------------------------------------------------------------

NODE = "celery@customers.app1"


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        ('{"celery@customers.app1": {"ok": "pong"}}\n', {NODE: {"ok": "pong"}}),
        ('[{"celery@a": {"ok": "pong"}}, {"celery@b": {"ok": "pong"}}]\n\n2 nodes online.\n', None),
        ('warning: something\n{"celery@a": []}\n', {"celery@a": []}),
        ("Error: No nodes replied within time constraint\n", None),
        ("", None),
        (None, None),
        ("{not json", None),
    ],
)
def test_parse_inspect_json(stdout, expected):
    result = cs.parse_inspect_json(stdout)
    if expected is None and stdout and stdout.startswith("["):
        assert result == {"celery@a": {"ok": "pong"}, "celery@b": {"ok": "pong"}}
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("rc", "stdout", "custom", "answered"),
    [
        (0, '{"celery@customers.app1": {"ok": "pong"}}', False, True),
        (0, '{"celery@other.app1": {"ok": "pong"}}', False, False),
        (0, '{"celery@customers.app1": {"error": "no such command"}}', False, False),
        (69, "Error: No nodes replied within time constraint", False, False),
        (0, "No nodes replied within time constraint", False, False),
        (1, '{"celery@customers.app1": {"ok": "pong"}}', False, False),
        (0, "healthy", True, True),
        (1, "sick", True, False),
        (0, '{"celery@other.app1": {"ok": "pong"}}', True, False),
        (0, '{"celery@customers.app1": {"ok": "pong"}}', True, True),
    ],
)
def test_ping_answered(rc, stdout, custom, answered):
    assert cs.ping_answered(rc, stdout, NODE, custom=custom) is answered


@pytest.mark.parametrize(
    ("rc", "stdout", "count"),
    [
        (0, '{"celery@customers.app1": [{"id": "a"}, {"id": "b"}]}', 2),
        (0, '{"celery@customers.app1": []}', 0),
        (0, '{"celery@other": []}', None),
        (0, '{"celery@customers.app1": {"error": "x"}}', None),
        (69, "Error: No nodes replied within time constraint", None),
        (0, "garbage", None),
    ],
)
def test_active_task_count(rc, stdout, count):
    assert cs.listed_task_count(rc, stdout, NODE) == count


SPEC = cs.build_worker_spec(make_config("celery-customers", CUSTOMERS_CMD), "app1")


def test_build_inspect_argv():
    assert cs.build_inspect_argv(SPEC, "active", 5.0) == [
        WRAPPER,
        APP,
        "inspect",
        "active",
        "--destination",
        NODE,
        "--timeout",
        "5",
        "--json",
    ]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        (None, [WRAPPER, APP, "inspect", "ping", "--destination", NODE, "--timeout", "2.5", "--json"]),
        (
            ["{wrapper}", "--app={app}", "inspect", "ping", "-d", "{node}", "-t", "{timeout}", "#{program}"],
            [
                WRAPPER,
                "--app=myproject.celery_config:app",
                "inspect",
                "ping",
                "-d",
                NODE,
                "-t",
                "2.5",
                "#celery-customers",
            ],
        ),
        (["/usr/local/bin/health", '{"raw": "json"}'], ["/usr/local/bin/health", '{"raw": "json"}']),
    ],
)
def test_build_ping_argv(override, expected):
    assert cs.build_ping_argv(SPEC, 2.5, override) == expected


@pytest.mark.parametrize(
    ("timeout_bin", "limit", "expected"),
    [
        (None, 65, ["x", "y"]),
        ("/usr/bin/timeout", 65.0, ["/usr/bin/timeout", "--kill-after=5", "65", "x", "y"]),
        ("/usr/bin/timeout", 0.2, ["/usr/bin/timeout", "--kill-after=5", "1", "x", "y"]),
    ],
)
def test_bound_argv(timeout_bin, limit, expected):
    assert cs.bound_argv(["x", "y"], timeout_bin, limit) == expected


class RecordingRunner:
    def __init__(self, *replies):
        self.replies = list(replies)
        self.argvs = []

    def __call__(self, argv):
        self.argvs.append(argv)
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply


def test_celery_probe_ping_and_active():
    runner = RecordingRunner(
        (0, '{"celery@customers.app1": {"ok": "pong"}}', ""),
        (0, '{"celery@customers.app1": [{"id": 1}]}', ""),
        (69, "", "Error: No nodes replied within time constraint"),
        OSError("boom"),
    )
    probe = cs.CeleryProbe(runner, ping_timeout=5.0, timeout_bin="/usr/bin/timeout")
    assert probe.ping(SPEC) is True
    assert probe.active_tasks(SPEC) == 1
    assert probe.ping(SPEC) is False
    assert "No nodes replied" in probe.last_output
    assert probe.active_tasks(SPEC) is None
    assert runner.argvs[0][:3] == ["/usr/bin/timeout", "--kill-after=5", "65"]
    assert runner.argvs[0][3:] == cs.build_ping_argv(SPEC, 5.0)
    assert runner.argvs[1][3:] == cs.build_inspect_argv(SPEC, "active", 5.0)


def test_celery_probe_reserved_and_cancel_consumer():
    runner = RecordingRunner(
        (0, '{"celery@customers.app1": [{"id": 1}, {"id": 2}]}', ""),
        (0, '{"celery@customers.app1": {"ok": "no longer consuming from customers"}}', ""),
        OSError("boom"),
    )
    probe = cs.CeleryProbe(runner, ping_timeout=5.0)
    assert probe.reserved_tasks(SPEC) == 2
    assert probe.cancel_consumer(SPEC, "customers") is True
    assert probe.cancel_consumer(SPEC, "customers") is False
    assert runner.argvs[0] == cs.build_inspect_argv(SPEC, "reserved", 5.0)
    assert runner.argvs[1] == cs.build_control_argv(SPEC, "cancel_consumer", ["customers"], 5.0)


def test_celery_probe_custom_ping():
    runner = RecordingRunner((0, "ok", ""))
    probe = cs.CeleryProbe(runner, ping_command=["/usr/local/bin/health", "{node}"])
    assert probe.ping(SPEC) is True
    assert runner.argvs == [["/usr/local/bin/health", NODE]]


# ---------------------------------------------------------------------------------------------------------------
# Params, results, diff
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "messages"),
    [
        ({}, []),
        ({"timeout": 0}, ["timeout must be greater than 0 (got 0)"]),
        ({"timeout": -5, "start_timeout": 0}, ["timeout must be", "start_timeout must be"]),
        ({"poll_interval": 0.0}, ["poll_interval must be greater than 0"]),
        ({"ping_timeout": -1.0}, ["ping_timeout must be greater than 0"]),
        ({"escalation_timeout": 0}, ["escalation_timeout must be greater than 0"]),
        ({"name": "  "}, ["name must not be empty"]),
        ({"name": None, "queue": ""}, ["queue must not be empty"]),
    ],
)
def test_validate_params(overrides, messages):
    errors = cs.validate_params(params(**overrides))
    assert len(errors) == len(messages)
    for error, message in zip(errors, messages):
        assert error.startswith(message)


def test_preflight_stop_needs_term():
    spec = dict(SPEC, stopsignal=2)
    with pytest.raises(cs.CeleryWorkerError, match="stopsignal=2, not TERM"):
        cs.preflight_warnings([spec], params(state="stopped"))
    assert cs.preflight_warnings([spec], params(state="restarted")) == []


def test_preflight_warns_about_short_stopwaitsecs():
    spec = dict(SPEC, stopwaitsecs=60)
    warnings = cs.preflight_warnings([spec], params(state="stopped", timeout=600))
    assert len(warnings) == 1
    assert "stopwaitsecs=60 < timeout=600" in warnings[0]


@pytest.mark.parametrize(
    ("action", "desired", "state_after", "pid_after"),
    [
        ("none", "started", "RUNNING", 1001),
        ("restart", "restarted", "RUNNING", None),
        ("wait_up", "started", "RUNNING", 1001),
        ("stop", "stopped", "STOPPED", None),
    ],
)
def test_predict_after(action, desired, state_after, pid_after):
    result = cs.program_result(SPEC, {"statename": "RUNNING", "pid": 1001}, action, True)
    cs.predict_after(result, desired)
    assert (result["state_after"], result["pid_after"]) == (state_after, pid_after)
    assert result["changed"] is (action in ("restart", "stop"))


def test_build_diff():
    programs = [
        {"name": "a", "state_before": "RUNNING", "pid_before": 1, "state_after": "RUNNING", "pid_after": 2},
        {"name": "b", "state_before": "STOPPED", "pid_before": None, "state_after": "STOPPED", "pid_after": None},
    ]
    assert cs.build_diff(programs) == {
        "before": {"a": {"state": "RUNNING", "pid": 1}, "b": {"state": "STOPPED", "pid": None}},
        "after": {"a": {"state": "RUNNING", "pid": 2}, "b": {"state": "STOPPED", "pid": None}},
    }


# ---------------------------------------------------------------------------------------------------------------
# SupervisorClient
# ---------------------------------------------------------------------------------------------------------------


class _Namespace:
    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.calls = []

    def __getattr__(self, method):
        def call(*args):
            self.calls.append((method, args))
            result = self.behaviour(method, args)
            if isinstance(result, Exception):
                raise result
            return result

        return call


class FakeProxy:
    def __init__(self, behaviour):
        self.supervisor = _Namespace(behaviour)


@pytest.mark.parametrize(
    ("error", "message", "code"),
    [
        (
            xmlrpc.client.Fault(10, "BAD_NAME: celery-x"),
            r"supervisor.getProcessInfo\('celery-x',\) failed: BAD_NAME",
            10,
        ),
        (xmlrpc.client.Fault(6, "SHUTDOWN_STATE"), "supervisord is shutting down or restarting", 6),
        (
            xmlrpc.client.ProtocolError("localhost/RPC2", 401, "Unauthorized", {}),
            "asks for a username and password",
            None,
        ),
        (xmlrpc.client.ProtocolError("localhost/RPC2", 500, "Oops", {}), "answered HTTP 500 Oops", None),
        (PermissionError(errno.EACCES, "Permission denied"), "permission denied.*become: true", None),
        (FileNotFoundError(errno.ENOENT, "No such file"), "does not exist: is supervisord running", None),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "connection refused.*not running", None),
        (OSError(errno.EPIPE, "Broken pipe"), "cannot talk to supervisord", None),
        (http.client.RemoteDisconnected("closed"), "cannot talk to supervisord on /s.sock: closed", None),
    ],
)
def test_client_errors(error, message, code):
    client = cs.SupervisorClient("/s.sock", proxy=FakeProxy(lambda method, args: error))
    with pytest.raises(cs.SupervisorError, match=message) as info:
        client.process_info("celery-x")
    assert info.value.fault_code == code


def test_client_calls():
    proxy = FakeProxy(lambda method, args: True)
    client = cs.SupervisorClient("/s.sock", proxy=proxy)
    client.signal("a", "TERM")
    client.start("a")
    client.stop("a")
    client.all_config_info()
    assert proxy.supervisor.calls == [
        ("signalProcess", ("a", "TERM")),
        ("startProcess", ("a", False)),
        ("stopProcess", ("a", False)),
        ("getAllConfigInfo", ()),
    ]


def test_client_check_running(tmp_path):
    sock = tmp_path / "supervisor.sock"
    sock.write_text("")
    states = iter([{"statename": "RUNNING"}, {"statename": "RESTARTING"}])
    client = cs.SupervisorClient(str(sock), proxy=FakeProxy(lambda method, args: next(states)))
    assert client.check_running() == {"statename": "RUNNING"}
    with pytest.raises(cs.SupervisorError, match="supervisord is in state RESTARTING, not RUNNING"):
        client.check_running()


def test_client_check_running_socket_missing(tmp_path):
    client = cs.SupervisorClient(str(tmp_path / "nope.sock"), proxy=FakeProxy(lambda method, args: None))
    with pytest.raises(cs.SupervisorError, match="nope.sock does not exist"):
        client.check_running()


class _UnixXMLRPCServer(socketserver.UnixStreamServer, SimpleXMLRPCDispatcher):
    logRequests = False  # the attribute SimpleXMLRPCRequestHandler reads

    def __init__(self, path):
        SimpleXMLRPCDispatcher.__init__(self, allow_none=True, encoding=None)
        socketserver.UnixStreamServer.__init__(self, path, _QuietHandler)


class _QuietHandler(SimpleXMLRPCRequestHandler):
    rpc_paths = ("/RPC2",)
    disable_nagle_algorithm = False  # TCP_NODELAY does not exist on AF_UNIX

    def log_message(self, *args):
        pass

    @property
    def client_address(self):
        return ("local", 0)

    @client_address.setter
    def client_address(self, value):
        pass


def test_transport_over_a_real_unix_socket(tmp_path):
    """End to end through the stdlib transport: a local XML-RPC server on an AF_UNIX socket in tmp_path."""
    path = str(tmp_path / "s.sock")
    server = _UnixXMLRPCServer(path)
    server.register_function(lambda: {"statecode": 1, "statename": "RUNNING"}, "supervisor.getState")
    server.register_function(
        lambda name: {"name": name, "statename": "RUNNING", "pid": 42}, "supervisor.getProcessInfo"
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = cs.SupervisorClient(path, timeout=5)
        assert client.check_running()["statename"] == "RUNNING"
        assert client.process_info("celery-a")["pid"] == 42
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_transport_refused_socket(tmp_path):
    path = str(tmp_path / "dead.sock")
    server = socketserver.UnixStreamServer(path, socketserver.BaseRequestHandler)
    server.server_close()  # the file stays, nobody listens: like a crashed supervisord
    assert os.path.exists(path)
    client = cs.SupervisorClient(path, timeout=5)
    with pytest.raises(cs.SupervisorError, match="connection refused"):
        client.check_running()


# ---------------------------------------------------------------------------------------------------------------
# Controller: restarted
# ---------------------------------------------------------------------------------------------------------------


def test_restart_early_answer_still_waits_for_running_past_startsecs(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=12)
    probe = FakeProbe(clock, answers_after=14)
    _changed, result = controller(customers, probe, clock).run()
    [item] = result["programs"]
    # the node answered while STARTING; RUNNING past startsecs comes at 12 + 0.5 + 5.1 = 17.6: done at the next
    # look, with no ping after the answer
    assert 17.6 <= item["total_seconds"] <= 18.6
    assert item["pid_after"] == 2002
    assert all(when < 17.6 for when, _node in probe.pings)


class SlowProbe(FakeProbe):
    """A ping that takes ``cost`` seconds of the clock, as a real `celery inspect ping` does (Celery's start-up,
    then the reply wait); whether the node answers is judged when the ping is sent."""

    def __init__(self, clock, cost, **kwargs):
        super().__init__(clock, **kwargs)
        self.cost = cost

    def ping(self, spec, timeout=None):
        answered = super().ping(spec, timeout)
        self.clock.now += self.cost
        return answered


def test_restart_unanswered_early_ping_is_the_rounds_pause(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=12)  # STARTING at 12.5, RUNNING at 17.6
    probe = SlowProbe(clock, cost=1.2, answers_after=14)
    _changed, result = controller(customers, probe, clock).run()
    # a ping longer than poll_interval (1.0) is followed by the next one at once, not after another second
    assert [when for when, _node in probe.pings] == pytest.approx([13.0, 14.2])
    assert result["programs"][0]["pid_after"] == 2002


def test_restart_answered_early_ping_looks_again_at_once(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=12, startsecs=1)  # RUNNING at 13.6
    probe = SlowProbe(clock, cost=1.2, answers_after=13)
    _changed, result = controller(customers, probe, clock).run()
    [item] = result["programs"]
    # answered at 13.0, the ping returned at 14.2, when supervisor already reported RUNNING past startsecs
    assert item["total_seconds"] == pytest.approx(14.2)
    assert len(probe.pings) == 1


def test_restart_early_answer_of_a_process_that_died_does_not_count(clock, customers):
    def hook(fake, name, _signal_name=None):
        fake.schedule(12, name, statename="EXITED", pid=0)
        fake.schedule(12.5, name, statename="STARTING", pid=2002)
        fake.schedule(15, name, statename="EXITED", pid=0)  # died before startsecs
        fake.schedule(15.5, name, statename="STARTING", pid=3003)
        fake.schedule(20.6, name, statename="RUNNING")

    customers.hooks["signal"] = hook
    probe = FakeProbe(clock, answers_after=13)
    _changed, result = controller(customers, probe, clock).run()
    [item] = result["programs"]
    assert item["pid_after"] == 3003
    assert any(15.5 <= when < 20.6 for when, _node in probe.pings)


def test_restart_warm_drain_autorestart_and_ping(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=12)
    probe = FakeProbe(clock, answers_after=20, active=4)
    changed, result = controller(customers, probe, clock).run()
    assert changed is True
    assert customers.mutations() == [("signal", "celery-customers", "TERM")]
    [item] = result["programs"]
    assert item["pid_before"] == 1001
    assert item["pid_after"] == 2002
    assert (item["state_before"], item["state_after"]) == ("RUNNING", "RUNNING")
    assert item["active_tasks"] == 4
    assert item["drain_seconds"] == 12.0
    assert item["shutdown"] == "warm"
    assert item["node"] == "celery@customers.app1"
    assert item["queues"] == ["customers"]
    assert item["total_seconds"] == 20.0
    assert result["diff"]["after"]["celery-customers"] == {"state": "RUNNING", "pid": 2002}
    # pings begin once the new pid exists (drain 12 + spawn 0.5), with a short reply wait while it is STARTING
    assert probe.pings[0][0] >= 12.5
    early = [timeout for (when, _node), timeout in zip(probe.pings, probe.ping_timeouts) if when < 17.6]
    assert early
    assert set(early) == {cs.EARLY_PING_TIMEOUT}


def test_restart_calls_start_when_the_program_stays_exited(clock, customers):
    def exit_for_good(fake, name, _sig):
        fake.schedule(3, name, statename="EXITED", pid=0)

    def start(fake, name):
        fake.schedule(0, name, statename="STARTING", pid=3003)
        fake.schedule(6, name, statename="RUNNING")

    customers.hooks["signal"] = exit_for_good
    customers.hooks["start"] = start
    _changed, result = controller(customers, FakeProbe(clock), clock).run()
    assert customers.mutations() == [("signal", "celery-customers", "TERM"), ("start", "celery-customers")]
    assert result["programs"][0]["pid_after"] == 3003


def test_restart_tolerates_already_started(clock, customers):
    def exit_then_autorestart(fake, name, _sig):
        fake.schedule(3, name, statename="EXITED", pid=0)

    def start_loses_race(fake, name):
        fake.schedule(0, name, statename="RUNNING", pid=4004)
        raise cs.SupervisorError("ALREADY_STARTED", cs.FAULT_ALREADY_STARTED)

    customers.hooks["signal"] = exit_then_autorestart
    customers.hooks["start"] = start_loses_race
    _changed, result = controller(customers, FakeProbe(clock), clock).run()
    assert result["programs"][0]["pid_after"] == 4004


def test_restart_fails_when_start_fails_again(clock, customers):
    customers.hooks["signal"] = lambda fake, name, _sig: fake.schedule(2, name, statename="FATAL", pid=0)
    customers.hooks["start"] = lambda fake, name: fake.schedule(
        0, name, statename="FATAL", pid=0, spawnerr="can't find command '/opt/celery/bin/celery-run'"
    )
    with pytest.raises(cs.CeleryWorkerError) as info:
        controller(customers, FakeProbe(clock), clock).run()
    message = info.value.message
    assert "worker 'celery-customers' did not come back: supervisor reports FATAL (can't find command" in message
    assert "supervisorctl tail celery-customers stderr" in message
    assert "/var/log/supervisor/celery-customers.log" in message
    [item] = info.value.programs
    assert item["changed"] is True
    assert item["state_after"] == "FATAL"


def test_restart_fails_when_never_running_within_start_timeout(clock, customers):
    customers.hooks["signal"] = lambda fake, name, _sig: fake.schedule(
        1, name, statename="BACKOFF", pid=0, spawnerr="Exited too quickly (process log may have details)"
    )
    with pytest.raises(cs.CeleryWorkerError, match="did not come back: supervisor reports BACKOFF") as info:
        controller(customers, FakeProbe(clock), clock, start_timeout=30).run()
    assert "start_timeout=30 s, startsecs=5" in info.value.message
    assert clock.now <= 1 + 30 + 1


def test_restart_fails_when_ping_never_answers(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=2)
    probe = FakeProbe(clock, answers_after=None)
    with pytest.raises(cs.CeleryWorkerError) as info:
        controller(customers, probe, clock, start_timeout=60).run()
    message = info.value.message
    assert "is RUNNING (pid 2002) but node celery@customers.app1 did not answer `celery inspect ping`" in message
    assert "env file loaded by /opt/celery/bin/celery-run" in message
    assert "No nodes replied" in message
    assert info.value.programs[0]["pid_after"] == 2002
    assert len(probe.pings) > 10


def test_restart_old_pid_running_is_not_up(clock, customers):
    """supervisor still says RUNNING with the old pid while draining: never pinged, never counted as up."""
    customers.hooks["signal"] = warm_exit_and_respawn(drain=30)
    probe = FakeProbe(clock)
    controller(customers, probe, clock).run()
    assert all(when >= 30 for when, _node in probe.pings)


@pytest.mark.parametrize(
    ("on_timeout", "signal_name", "shutdown"),
    [("cold", "QUIT", "cold"), ("kill", "KILL", "kill")],
)
def test_restart_drain_timeout_escalates(clock, customers, on_timeout, signal_name, shutdown):
    def escalate(fake, name, sig):
        if sig == signal_name:
            warm_exit_and_respawn(drain=2)(fake, name)

    customers.hooks["signal"] = escalate
    _changed, result = controller(customers, FakeProbe(clock), clock, timeout=50, on_timeout=on_timeout).run()
    assert customers.mutations() == [
        ("signal", "celery-customers", "TERM"),
        ("signal", "celery-customers", signal_name),
    ]
    item = result["programs"][0]
    assert item["shutdown"] == shutdown
    assert item["drain_seconds"] == 52.0
    assert item["pid_after"] == 2002


def test_restart_drain_timeout_fail_leaves_it_draining(clock, customers):
    with pytest.raises(cs.CeleryWorkerError) as info:
        controller(customers, FakeProbe(clock, active=7), clock, timeout=40).run()
    message = info.value.message
    assert "was still draining after timeout=40 seconds (7 task(s) were active" in message
    assert "on_timeout=fail left it draining" in message
    assert "autorestart" in message
    assert customers.mutations() == [("signal", "celery-customers", "TERM")]
    item = info.value.programs[0]
    assert item["drain_seconds"] == 40.0
    assert item["state_after"] == "RUNNING"
    assert item["pid_after"] == 1001
    assert item["changed"] is True


def test_restart_escalation_that_does_not_help(clock, customers):
    with pytest.raises(cs.CeleryWorkerError, match="did not exit within 30 seconds after SIGQUIT") as info:
        controller(customers, FakeProbe(clock, active=None), clock, timeout=10, on_timeout="cold").run()
    assert info.value.programs[0]["shutdown"] == "cold"


def test_restart_signal_to_a_process_that_just_exited(clock, customers):
    def gone(fake, name, _sig):
        fake.infos[name].update(statename="EXITED", pid=0)
        fake.schedule(1, name, statename="RUNNING", pid=5005)
        raise cs.SupervisorError("NOT_RUNNING", cs.FAULT_NOT_RUNNING)

    customers.hooks["signal"] = gone
    _changed, result = controller(customers, FakeProbe(clock), clock).run()
    assert result["programs"][0]["pid_after"] == 5005


def test_restart_other_supervisor_errors_propagate(clock, customers):
    customers.errors["signal"] = cs.SupervisorError("supervisor.signalProcess failed: FAILED", 30)
    with pytest.raises(cs.SupervisorError, match="FAILED") as info:
        controller(customers, FakeProbe(clock), clock).run()
    assert info.value.programs[0]["name"] == "celery-customers"


def test_restart_without_inspect_active(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=1)
    _changed, result = controller(customers, FakeProbe(clock), clock, inspect_active=False).run()
    assert result["programs"][0]["active_tasks"] is None


def test_restart_of_a_stopped_program_starts_it(clock, customers):
    customers.infos["celery-customers"].update(statename="STOPPED", pid=0)
    customers.hooks["start"] = lambda fake, name: fake.schedule(0, name, statename="RUNNING", pid=6006)
    changed, result = controller(customers, FakeProbe(clock), clock).run()
    assert changed is True
    assert customers.mutations() == [("start", "celery-customers")]
    item = result["programs"][0]
    assert (item["pid_before"], item["pid_after"], item["drain_seconds"], item["shutdown"]) == (None, 6006, None, None)


def test_restart_rolls_through_a_queue_one_program_at_a_time(clock):
    configs = [
        make_config("celery-batch_00", f"{WRAPPER} {APP} worker -Q batch -n b0@%h", group="celery-batch"),
        make_config("celery-batch_01", f"{WRAPPER} {APP} worker -Q batch -n b1@%h", group="celery-batch"),
    ]
    infos = [
        make_info("celery-batch_00", "RUNNING", 10, group="celery-batch"),
        make_info("celery-batch_01", "RUNNING", 11, group="celery-batch"),
    ]
    fake = FakeSupervisor(clock, configs, infos)
    order = []

    def term(fake, name, _sig):
        order.append((clock.now, name))
        warm_exit_and_respawn(drain=3, new_pid=20 + len(order))(fake, name)

    fake.hooks["signal"] = term
    changed, result = controller(fake, FakeProbe(clock), clock, name=None, queue="batch").run()
    assert changed is True
    assert [name for _when, name in order] == ["celery-batch:celery-batch_00", "celery-batch:celery-batch_01"]
    assert order[1][0] > order[0][0] + 8  # the second drain starts once the first worker answers again
    assert [item["pid_after"] for item in result["programs"]] == [21, 22]
    assert [item["node"] for item in result["programs"]] == ["b0@app1", "b1@app1"]


def test_failure_in_second_program_reports_the_first(clock):
    configs = [make_config("a", f"{WRAPPER} worker -Q q -n a@%h"), make_config("b", f"{WRAPPER} worker -Q q -n b@%h")]
    fake = FakeSupervisor(clock, configs, [make_info("a", "RUNNING", 1), make_info("b", "RUNNING", 2)])

    def term(fake, name, _sig):
        if name == "a":
            warm_exit_and_respawn(drain=1)(fake, name)

    fake.hooks["signal"] = term
    with pytest.raises(cs.CeleryWorkerError, match="'b'.*still draining") as info:
        controller(fake, FakeProbe(clock), clock, name=None, queue="q", timeout=5).run()
    assert [item["name"] for item in info.value.programs] == ["a", "b"]
    assert info.value.programs[0]["pid_after"] == 2002


# ---------------------------------------------------------------------------------------------------------------
# Controller: started / stopped
# ---------------------------------------------------------------------------------------------------------------


def test_started_on_running_is_unchanged(clock, customers):
    changed, result = controller(customers, FakeProbe(clock), clock, state="started").run()
    assert changed is False
    assert customers.mutations() == []
    item = result["programs"][0]
    assert (item["action"], item["pid_after"], item["state_after"]) == ("none", 1001, "RUNNING")


@pytest.mark.parametrize("state", ["STOPPED", "EXITED", "FATAL"])
def test_started_starts_a_down_program(clock, customers, state):
    customers.infos["celery-customers"].update(statename=state, pid=0)
    customers.hooks["start"] = lambda fake, name: (
        fake.schedule(0, name, statename="STARTING", pid=7007),
        fake.schedule(5.1, name, statename="RUNNING"),
    )
    changed, result = controller(customers, FakeProbe(clock), clock, state="started").run()
    assert changed is True
    assert customers.mutations() == [("start", "celery-customers")]
    assert result["programs"][0]["pid_after"] == 7007


def test_started_on_backoff_waits_then_starts_after_fatal(clock, customers):
    customers.infos["celery-customers"].update(statename="BACKOFF", pid=0)
    customers.schedule(4, "celery-customers", statename="FATAL")
    customers.hooks["start"] = lambda fake, name: fake.schedule(0, name, statename="RUNNING", pid=8008)
    changed, result = controller(customers, FakeProbe(clock), clock, state="started").run()
    assert changed is True
    assert customers.mutations() == [("start", "celery-customers")]
    assert result["programs"][0]["action"] == "wait_up"


def test_started_on_starting_only_waits(clock, customers):
    customers.infos["celery-customers"].update(statename="STARTING", pid=1001)
    customers.schedule(3, "celery-customers", statename="RUNNING")
    changed, result = controller(customers, FakeProbe(clock), clock, state="started").run()
    assert changed is False
    assert customers.mutations() == []
    assert result["programs"][0]["pid_after"] == 1001


def test_started_after_someone_elses_stop(clock, customers):
    customers.infos["celery-customers"].update(statename="STOPPING", pid=1001)
    customers.schedule(5, "celery-customers", statename="STOPPED", pid=0)
    customers.hooks["start"] = lambda fake, name: fake.schedule(0, name, statename="RUNNING", pid=9009)
    changed, result = controller(customers, FakeProbe(clock), clock, state="started").run()
    assert changed is True
    assert customers.mutations() == [("start", "celery-customers")]
    assert result["programs"][0]["pid_after"] == 9009


def test_started_after_someone_elses_stop_that_hangs(clock, customers):
    customers.infos["celery-customers"].update(statename="STOPPING", pid=1001)
    with pytest.raises(cs.CeleryWorkerError, match="already STOPPING and is still STOPPING after timeout=20"):
        controller(customers, FakeProbe(clock), clock, state="started", timeout=20).run()


def test_stopped_uses_stop_process_and_stays_stopped(clock, customers):
    def stop(fake, name):
        fake.infos[name].update(statename="STOPPING")
        fake.schedule(25, name, statename="STOPPED", pid=0)

    customers.hooks["stop"] = stop
    changed, result = controller(customers, FakeProbe(clock, active=2), clock, state="stopped").run()
    assert changed is True
    assert customers.mutations() == [("stop", "celery-customers")]
    item = result["programs"][0]
    assert (item["state_after"], item["pid_after"], item["active_tasks"]) == ("STOPPED", None, 2)
    assert item["drain_seconds"] == 25.0
    assert item["shutdown"] == "warm"


@pytest.mark.parametrize("state", ["STOPPED", "EXITED", "FATAL"])
def test_stopped_on_stopped_is_unchanged(clock, customers, state):
    customers.infos["celery-customers"].update(statename=state, pid=0)
    changed, result = controller(customers, FakeProbe(clock), clock, state="stopped").run()
    assert changed is False
    assert customers.mutations() == []
    assert result["programs"][0]["state_after"] == state


@pytest.mark.parametrize(
    ("on_timeout", "signal_name"),
    [("cold", "QUIT"), ("kill", "KILL")],
)
def test_stopped_drain_timeout_escalates(clock, customers, on_timeout, signal_name):
    customers.hooks["stop"] = lambda fake, name: fake.infos[name].update(statename="STOPPING")
    customers.hooks["signal"] = lambda fake, name, sig: fake.schedule(1, name, statename="STOPPED", pid=0)
    changed, result = controller(
        customers, FakeProbe(clock), clock, state="stopped", timeout=100, on_timeout=on_timeout
    ).run()
    assert changed is True
    assert customers.mutations() == [("stop", "celery-customers"), ("signal", "celery-customers", signal_name)]
    assert result["programs"][0]["shutdown"] == on_timeout
    assert result["programs"][0]["state_after"] == "STOPPED"


def test_stopped_drain_timeout_fail_mentions_stopwaitsecs(clock, customers):
    customers.hooks["stop"] = lambda fake, name: fake.infos[name].update(statename="STOPPING")
    with pytest.raises(cs.CeleryWorkerError, match="SIGKILLs its process group after stopwaitsecs=900"):
        controller(customers, FakeProbe(clock), clock, state="stopped", timeout=100).run()


def test_stopped_killed_by_supervisor_is_a_warning(clock):
    configs = [make_config("celery-customers", CUSTOMERS_CMD, stopwaitsecs=60)]
    fake = FakeSupervisor(clock, configs, [make_info("celery-customers", "RUNNING", 1001)])

    def stop(fake, name):
        fake.infos[name].update(statename="STOPPING")
        fake.schedule(60, name, statename="STOPPED", pid=0)

    fake.hooks["stop"] = stop
    ctl = controller(fake, FakeProbe(clock), clock, state="stopped", timeout=600)
    ctl.run()
    assert any("stopwaitsecs=60 < timeout=600" in warning for warning in ctl.warnings)
    assert any("probably SIGKILLed" in warning for warning in ctl.warnings)


def test_stopped_wait_down_for_someone_elses_stop(clock, customers):
    customers.infos["celery-customers"].update(statename="STOPPING", pid=1001)
    customers.schedule(4, "celery-customers", statename="STOPPED", pid=0)
    changed, result = controller(customers, FakeProbe(clock), clock, state="stopped").run()
    assert changed is False
    assert customers.mutations() == []
    assert result["programs"][0]["state_after"] == "STOPPED"


def test_stopped_stop_race_not_running_is_fine(clock, customers):
    def stop(fake, name):
        fake.infos[name].update(statename="EXITED", pid=0)
        raise cs.SupervisorError("NOT_RUNNING", cs.FAULT_NOT_RUNNING)

    customers.hooks["stop"] = stop
    _changed, result = controller(customers, FakeProbe(clock), clock, state="stopped").run()
    assert result["programs"][0]["state_after"] == "EXITED"


def test_stopped_refuses_a_non_term_stopsignal_before_changing_anything(clock):
    configs = [make_config("celery-customers", CUSTOMERS_CMD, stopsignal=9)]
    fake = FakeSupervisor(clock, configs, [make_info("celery-customers", "RUNNING", 1001)])
    with pytest.raises(cs.CeleryWorkerError, match="stopsignal=9, not TERM"):
        controller(fake, FakeProbe(clock), clock, state="stopped").run()
    assert fake.mutations() == []


# ---------------------------------------------------------------------------------------------------------------
# Controller: check mode and early failures
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "process_state", "changed", "state_after", "pid_after"),
    [
        ("restarted", "RUNNING", True, "RUNNING", None),
        ("started", "RUNNING", False, "RUNNING", 1001),
        ("started", "STOPPED", True, "RUNNING", None),
        ("stopped", "RUNNING", True, "STOPPED", None),
        ("stopped", "STOPPED", False, "STOPPED", None),
    ],
)
def test_check_mode_probes_only(clock, customers, state, process_state, changed, state_after, pid_after):
    pid = 1001 if process_state == "RUNNING" else 0
    customers.infos["celery-customers"].update(statename=process_state, pid=pid)
    result_changed, result = controller(
        customers, FakeProbe(clock, active=5), clock, check_mode=True, state=state
    ).run()
    assert result_changed is changed
    assert customers.mutations() == []
    item = result["programs"][0]
    assert (item["state_after"], item["pid_after"], item["check_mode"]) == (state_after, pid_after, True)
    assert item["active_tasks"] == (5 if item["action"] in ("restart", "stop") else None)
    assert clock.sleeps == []


def test_unknown_program_fails_before_anything(clock, customers):
    with pytest.raises(cs.CeleryWorkerError, match="unknown supervisor program 'celery-nope'. Known programs: "):
        controller(customers, FakeProbe(clock), clock, name="celery-nope").run()
    assert customers.mutations() == []


def test_supervisor_down_fails_first(clock, customers):
    customers.errors["check_running"] = cs.SupervisorError(
        cs.explain_socket_error("/var/run/supervisor.sock", FileNotFoundError(errno.ENOENT, "x"))
    )
    with pytest.raises(cs.SupervisorError, match="does not exist"):
        controller(customers, FakeProbe(clock), clock).run()
    assert customers.calls == [("check_running",)]


def test_unknown_process_state_fails_before_anything(clock, customers):
    customers.infos["celery-customers"].update(statename="UNKNOWN")
    with pytest.raises(cs.CeleryWorkerError, match="lost track"):
        controller(customers, FakeProbe(clock), clock).run()
    assert customers.mutations() == []


def test_group_with_a_non_worker_fails_before_anything(clock):
    configs = [
        make_config("celery-a", f"{WRAPPER} worker", group="g"),
        make_config("beat", f"{WRAPPER} beat", group="g"),
    ]
    fake = FakeSupervisor(
        clock, configs, [make_info("celery-a", "RUNNING", 1, group="g"), make_info("beat", "RUNNING", 2, group="g")]
    )
    with pytest.raises(cs.CeleryWorkerError, match="'g:beat' is not a Celery worker"):
        controller(fake, FakeProbe(clock), clock, name="g:*").run()
    assert fake.mutations() == []


# ---------------------------------------------------------------------------------------------------------------
# Quiesce before a prefork worker's warm shutdown
# ---------------------------------------------------------------------------------------------------------------

DEFAULT_CMD = f"{WRAPPER} worker {APP} --queues=celery,mail --hostname=default.%h --concurrency=8"


@pytest.mark.parametrize(
    ("command", "pool"),
    [
        (DEFAULT_CMD, "prefork"),
        (CUSTOMERS_CMD, "eventlet"),
        (INVOICES_CMD, "eventlet"),
        (f"{WRAPPER} worker --pool threads", "threads"),
        (f"{WRAPPER} worker -Pgevent", "gevent"),
    ],
)
def test_parse_worker_command_reads_the_pool(command, pool):
    assert cs.parse_worker_command(command)["pool"] == pool


def test_control_argv_and_its_confirmation():
    spec = cs.build_worker_spec(make_config("celery-default", DEFAULT_CMD), "app2")
    assert cs.build_control_argv(spec, "cancel_consumer", ["mail"], 5.0) == [
        WRAPPER,
        APP,
        "control",
        "cancel_consumer",
        "mail",
        "--destination",
        "celery@default.app2",
        "--timeout",
        "5",
        "--json",
    ]
    node = "celery@default.app2"
    assert cs.control_confirmed(0, '{"celery@default.app2": {"ok": "no longer consuming from mail"}}', node)
    assert not cs.control_confirmed(0, '{"celery@default.app2": {"error": "nope"}}', node)
    assert not cs.control_confirmed(0, '{"celery@other.app2": {"ok": "x"}}', node)
    assert not cs.control_confirmed(1, "Error: No nodes replied within time constraint", node)


@pytest.fixture
def default_worker(clock):
    configs = [make_config("celery-default", DEFAULT_CMD)]
    return FakeSupervisor(clock, configs, [make_info("celery-default", "RUNNING", 1001)])


def restart_default(default_worker, probe, clock, **overrides):
    signals = []

    def hook(fake, name, signal_name):
        signals.append((clock.now, signal_name))
        warm_exit_and_respawn(drain=12)(fake, name, signal_name)

    default_worker.hooks["signal"] = hook
    ctl = cs.WorkerController(
        default_worker,
        probe,
        params(name="celery-default", **overrides),
        clock=clock,
        sleep=clock.sleep,
        hostname="app2",
    )
    _changed, result = ctl.run()
    return result["programs"][0], signals, ctl.warnings


def test_prefork_restart_cancels_every_queue_and_waits_for_the_received_tasks_first(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    probe.reserved = [5, 2]  # then 0
    item, signals, warnings = restart_default(default_worker, probe, clock)
    assert [queue for _when, _node, queue in probe.cancelled] == ["celery", "mail"]
    assert len(probe.reserved_asks) == 3
    # TERM only once nothing received is waiting: after the third `inspect reserved`
    assert [name for _when, name in signals] == ["TERM"]
    assert signals[0][0] >= probe.reserved_asks[-1]
    assert item["quiesce_seconds"] == pytest.approx(signals[0][0])
    assert item["shutdown"] == "warm"
    assert warnings == []


def test_prefork_quiesce_is_bounded(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    probe.reserved = [3] * 100
    item, signals, _warnings = restart_default(default_worker, probe, clock, quiesce_timeout=4.0)
    assert 4.0 <= signals[0][0] <= 5.0
    assert 4.0 <= item["quiesce_seconds"] <= 5.0


def test_prefork_quiesce_unconfirmed_warns_and_shuts_down_at_once(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    probe.confirms = False
    item, signals, warnings = restart_default(default_worker, probe, clock)
    assert probe.reserved_asks == []
    assert signals[0][0] == 0
    assert item["quiesce_seconds"] == 0
    assert "did not confirm `celery control cancel_consumer` for celery, mail" in warnings[0]


def test_prefork_quiesce_timeout_zero_skips_it(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    item, _signals, _warnings = restart_default(default_worker, probe, clock, quiesce_timeout=0)
    assert probe.cancelled == []
    assert item["quiesce_seconds"] is None


def test_green_pool_restart_has_no_quiesce(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=12)
    probe = FakeProbe(clock, answers_after=0)
    _changed, result = controller(customers, probe, clock).run()
    assert probe.cancelled == []
    assert result["programs"][0]["quiesce_seconds"] is None


def test_negative_quiesce_timeout_is_refused():
    assert cs.validate_params({"quiesce_timeout": -1}) == ["quiesce_timeout must be 0 (no quiesce) or more (got -1)"]


def test_prefork_check_mode_does_not_quiesce(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    ctl = cs.WorkerController(
        default_worker, probe, params(name="celery-default"), check_mode=True, clock=clock, sleep=clock.sleep
    )
    _changed, result = ctl.run()
    assert probe.cancelled == []
    assert default_worker.mutations() == []
    assert result["programs"][0]["quiesce_seconds"] is None
