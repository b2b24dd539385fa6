# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Unit tests of the worker state machine: selection, decisions and the controller, with a fake supervisor, a fake
probe and a fake clock."""

from __future__ import annotations

import errno

import pytest

from ansible_collections.celeryops.stack.plugins.module_utils import celery_cli as cli
from ansible_collections.celeryops.stack.plugins.module_utils import celery_supervisor as cs
from ansible_collections.celeryops.stack.plugins.module_utils import supervisor_rpc as rpc
from ansible_collections.celeryops.stack.tests.unit.plugins.module_utils.worker_samples import (
    APP,
    CUSTOMERS_CMD,
    DEFAULT_CMD,
    INVOICES_CMD,
    SPEC,
    WRAPPER,
    make_config,
)

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


def make_info(name, state, pid=0, group=None, **extra):
    info = {"name": name, "group": group or name, "statename": state, "pid": pid, "spawnerr": "", "description": ""}
    info.update(extra)
    return info


class FakeSupervisor:
    """Scripted supervisord: process infos change at scheduled (fake) times; RPC calls are recorded."""

    def __init__(self, clock, configs, infos):
        self.clock = clock
        self.configs = configs
        self.infos = {rpc.make_namespec(i["group"], i["name"]): dict(i) for i in infos}
        self.events = []
        self.calls = []
        self.hooks = {}
        self.errors = {}
        # reloadConfig: the configuration it reads from the files (None: unchanged) and its (added, changed,
        # removed) answer
        self.files = None
        self.diff = ([], [], [])
        self.add_answer = True

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
        if name not in self.infos:
            raise rpc.SupervisorError(
                f"supervisor.getProcessInfo('{name}',) failed: BAD_NAME: {name}", rpc.FAULT_BAD_NAME
            )
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

    def reload_config(self):
        self._record("reload_config")
        if self.files is not None:
            self.configs = self.files
        return self.diff

    def add_group(self, name):
        """A new group's process is STOPPED until supervisord's autostart (a hook) or a startProcess."""
        self.infos[name] = make_info(name, "STOPPED")
        self._record("add_group", name)
        return self.add_answer

    def remove_group(self, name):
        self._record("remove_group", name)
        self.infos.pop(name, None)
        return True

    def mutations(self):
        return [call for call in self.calls if call[0] in ("signal", "start", "stop", "add_group", "remove_group")]


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
        self.handed = None  # successive hand-back answers (lists of ids), then []; None: the node cannot
        self.hand_back_asks = []

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

    def hand_back(self, spec):
        self.hand_back_asks.append((self.clock.now, spec["node"]))
        if self.handed is None:
            return None
        return self.handed.pop(0) if self.handed else []


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
    with pytest.raises(rpc.CeleryWorkerError, match=message):
        cs.select_programs(CONFIGS, "app1", name=name, queue=queue)


def test_select_programs_not_in_use():
    configs = [make_config("celery-new", f"{WRAPPER} worker", inuse=False)]
    with pytest.raises(rpc.CeleryWorkerError, match="not active in supervisord.*supervisorctl update"):
        cs.select_programs(configs, "app1", name="celery-new")


def test_select_programs_none_known():
    with pytest.raises(rpc.CeleryWorkerError, match=r"Known programs: \(none\)"):
        cs.select_programs([], "app1", name="x")
    with pytest.raises(rpc.CeleryWorkerError, match=r"Known workers \(queues\): \(none\)"):
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
    with pytest.raises(rpc.CeleryWorkerError, match="supervisor lost track"):
        cs.decide_action("started", state)


def test_decide_action_unknown_desired_state():
    with pytest.raises(rpc.CeleryWorkerError, match="unknown state 'reloaded'"):
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
        ({"state": "present"}, []),
        ({"state": "absent", "name": "celery-old"}, []),
        ({"state": "present", "name": None, "queue": "customers"}, ["queue cannot be used with state=present"]),
        ({"state": "absent", "name": "celery-batch:*"}, ["state=absent takes the name of one standalone program"]),
        ({"state": "present", "name": "celery-batch:celery-batch_00"}, ["state=present takes the name of one"]),
        ({"state": "present", "name": "*"}, ["state=present takes the name of one standalone program ("]),
        ({"state": "stopped", "name": "*"}, []),
    ],
)
def test_validate_params(overrides, messages):
    errors = cs.validate_params(params(**overrides))
    assert len(errors) == len(messages)
    for error, message in zip(errors, messages):
        assert error.startswith(message)


def test_preflight_stop_needs_term():
    spec = dict(SPEC, stopsignal=2)
    with pytest.raises(rpc.CeleryWorkerError, match="stopsignal=2, not TERM"):
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
        raise rpc.SupervisorError("ALREADY_STARTED", rpc.FAULT_ALREADY_STARTED)

    customers.hooks["signal"] = exit_then_autorestart
    customers.hooks["start"] = start_loses_race
    _changed, result = controller(customers, FakeProbe(clock), clock).run()
    assert result["programs"][0]["pid_after"] == 4004


def test_restart_fails_when_start_fails_again(clock, customers):
    customers.hooks["signal"] = lambda fake, name, _sig: fake.schedule(2, name, statename="FATAL", pid=0)
    customers.hooks["start"] = lambda fake, name: fake.schedule(
        0, name, statename="FATAL", pid=0, spawnerr="can't find command '/opt/celery/bin/celery-run'"
    )
    with pytest.raises(rpc.CeleryWorkerError) as info:
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
    with pytest.raises(rpc.CeleryWorkerError, match="did not come back: supervisor reports BACKOFF") as info:
        controller(customers, FakeProbe(clock), clock, start_timeout=30).run()
    assert "start_timeout=30 s, startsecs=5" in info.value.message
    assert clock.now <= 1 + 30 + 1


def test_restart_fails_when_ping_never_answers(clock, customers):
    customers.hooks["signal"] = warm_exit_and_respawn(drain=2)
    probe = FakeProbe(clock, answers_after=None)
    with pytest.raises(rpc.CeleryWorkerError) as info:
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
    with pytest.raises(rpc.CeleryWorkerError) as info:
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
    with pytest.raises(rpc.CeleryWorkerError, match="did not exit within 30 seconds after SIGQUIT") as info:
        controller(customers, FakeProbe(clock, active=None), clock, timeout=10, on_timeout="cold").run()
    assert info.value.programs[0]["shutdown"] == "cold"


def test_restart_signal_to_a_process_that_just_exited(clock, customers):
    def gone(fake, name, _sig):
        fake.infos[name].update(statename="EXITED", pid=0)
        fake.schedule(1, name, statename="RUNNING", pid=5005)
        raise rpc.SupervisorError("NOT_RUNNING", rpc.FAULT_NOT_RUNNING)

    customers.hooks["signal"] = gone
    _changed, result = controller(customers, FakeProbe(clock), clock).run()
    assert result["programs"][0]["pid_after"] == 5005


def test_restart_other_supervisor_errors_propagate(clock, customers):
    customers.errors["signal"] = rpc.SupervisorError("supervisor.signalProcess failed: FAILED", 30)
    with pytest.raises(rpc.SupervisorError, match="FAILED") as info:
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
    with pytest.raises(rpc.CeleryWorkerError, match="'b'.*still draining") as info:
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
    with pytest.raises(rpc.CeleryWorkerError, match="already STOPPING and is still STOPPING after timeout=20"):
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
    with pytest.raises(rpc.CeleryWorkerError, match="SIGKILLs its process group after stopwaitsecs=900"):
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
        raise rpc.SupervisorError("NOT_RUNNING", rpc.FAULT_NOT_RUNNING)

    customers.hooks["stop"] = stop
    _changed, result = controller(customers, FakeProbe(clock), clock, state="stopped").run()
    assert result["programs"][0]["state_after"] == "EXITED"


def test_stopped_refuses_a_non_term_stopsignal_before_changing_anything(clock):
    configs = [make_config("celery-customers", CUSTOMERS_CMD, stopsignal=9)]
    fake = FakeSupervisor(clock, configs, [make_info("celery-customers", "RUNNING", 1001)])
    with pytest.raises(rpc.CeleryWorkerError, match="stopsignal=9, not TERM"):
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
    with pytest.raises(rpc.CeleryWorkerError, match="unknown supervisor program 'celery-nope'. Known programs: "):
        controller(customers, FakeProbe(clock), clock, name="celery-nope").run()
    assert customers.mutations() == []


def test_supervisor_down_fails_first(clock, customers):
    customers.errors["check_running"] = rpc.SupervisorError(
        rpc.explain_socket_error("/var/run/supervisor.sock", FileNotFoundError(errno.ENOENT, "x"))
    )
    with pytest.raises(rpc.SupervisorError, match="does not exist"):
        controller(customers, FakeProbe(clock), clock).run()
    assert customers.calls == [("check_running",)]


def test_unknown_process_state_fails_before_anything(clock, customers):
    customers.infos["celery-customers"].update(statename="UNKNOWN")
    with pytest.raises(rpc.CeleryWorkerError, match="lost track"):
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
    with pytest.raises(rpc.CeleryWorkerError, match="'g:beat' is not a Celery worker"):
        controller(fake, FakeProbe(clock), clock, name="g:*").run()
    assert fake.mutations() == []


# ---------------------------------------------------------------------------------------------------------------
# Quiesce before a prefork worker's warm shutdown
# ---------------------------------------------------------------------------------------------------------------


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


def test_prefork_quiesce_hands_back_what_no_process_could_start_then_shuts_down(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    probe.handed = [["t1", "t2", "t3"]]
    item, signals, warnings = restart_default(default_worker, probe, clock, quiesce_timeout=60.0)
    # after cancel_consumer on every queue, before the first `inspect reserved`
    assert probe.hand_back_asks[0][0] >= probe.cancelled[-1][0]
    assert probe.hand_back_asks[0][0] <= probe.reserved_asks[0]
    assert item["handed_back"] == ["t1", "t2", "t3"]
    assert [name for _when, name in signals] == ["TERM"]
    assert item["quiesce_seconds"] < 60.0
    assert warnings == []


def test_prefork_quiesce_asks_again_for_deliveries_that_arrived_after_the_cancel(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    probe.handed = [["t1"], ["t2"]]
    probe.reserved = [1]  # then 0
    item, _signals, _warnings = restart_default(default_worker, probe, clock)
    assert len(probe.hand_back_asks) == 2
    assert item["handed_back"] == ["t1", "t2"]


def test_prefork_quiesce_without_the_hand_back_command_waits_as_before(clock, default_worker):
    probe = FakeProbe(clock, answers_after=0)
    probe.reserved = [2, 1]  # then 0
    item, signals, _warnings = restart_default(default_worker, probe, clock)
    assert len(probe.hand_back_asks) == 1
    assert item["handed_back"] is None
    assert len(probe.reserved_asks) == 3
    assert signals[0][0] >= probe.reserved_asks[-1]


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


# ---------------------------------------------------------------------------------------------------------------
# name='*': every Celery worker
# ---------------------------------------------------------------------------------------------------------------


def test_select_all_workers_skips_other_programs_and_idle_ones():
    configs = CONFIGS + [make_config("celery-new", f"{WRAPPER} worker -Q new", inuse=False)]
    specs = cs.select_programs(configs, "app1", name="*")
    assert [spec["name"] for spec in specs] == [
        "celery-customers",
        "celery-invoices",
        "celery-batch:celery-batch_00",
        "celery-batch:celery-batch_01",
        "celery-default",
    ]


def test_select_all_workers_of_none_is_no_error():
    assert cs.select_programs([make_config("flower", "/opt/flower/bin/flower")], "app1", name="*") == []
    assert cs.select_programs([], "app1", name="*") == []


def test_all_workers_stopped_one_after_the_other(clock):
    configs = [
        make_config("celery-a", f"{WRAPPER} worker -Q a -n a@%h -P threads"),
        make_config("flower", "/opt/flower/bin/flower --port=5555"),
        make_config("celery-b", f"{WRAPPER} worker -Q b -n b@%h -P threads"),
    ]
    infos = [make_info("celery-a", "RUNNING", 1), make_info("flower", "RUNNING", 2), make_info("celery-b", "STOPPED")]
    fake = FakeSupervisor(clock, configs, infos)

    def stop(fake, name):
        fake.infos[name].update(statename="STOPPING")
        fake.schedule(3, name, statename="STOPPED", pid=0)

    fake.hooks["stop"] = stop
    changed, result = controller(fake, FakeProbe(clock), clock, name="*", state="stopped").run()
    assert changed is True
    assert fake.mutations() == [("stop", "celery-a")]
    assert [(item["name"], item["action"]) for item in result["programs"]] == [
        ("celery-a", "stop"),
        ("celery-b", "none"),
    ]


def test_all_workers_when_there_is_none(clock):
    fake = FakeSupervisor(clock, [make_config("flower", "/opt/flower/bin/flower")], [make_info("flower", "RUNNING", 2)])
    changed, result = controller(fake, FakeProbe(clock), clock, name="*", state="started").run()
    assert changed is False
    assert result["programs"] == []
    assert result["diff"] == {"before": {}, "after": {}}


# ---------------------------------------------------------------------------------------------------------------
# state=present / state=absent: pure parts
# ---------------------------------------------------------------------------------------------------------------


def test_find_program_config():
    assert cs.find_program_config(CONFIGS, "celery-customers")["command"] == CUSTOMERS_CMD
    assert cs.find_program_config(CONFIGS, "celery-nope") is None
    assert cs.find_program_config([{"name": "solo", "command": "x"}], "solo") == {"name": "solo", "command": "x"}


@pytest.mark.parametrize(
    ("configs", "message"),
    [
        (CONFIGS, "group 'celery-batch' holds celery-batch:celery-batch_00, celery-batch:celery-batch_01"),
        ([make_config("celery-x", f"{WRAPPER} worker", group="celery-batch")], "holds celery-batch:celery-x"),
    ],
)
def test_find_program_config_refuses_groups(configs, message):
    with pytest.raises(rpc.CeleryWorkerError, match=message):
        cs.find_program_config(configs, "celery-batch")


def test_program_file_spec():
    assert cs.program_file_spec(CONFIGS, "celery-invoices", "app1")["node"] == "invoices@app1"
    assert cs.program_file_spec(CONFIGS, "celery-nope", "app1") is None
    with pytest.raises(rpc.CeleryWorkerError, match="'flower' is not a Celery worker"):
        cs.program_file_spec(CONFIGS, "flower", "app1")


def test_stop_preflight_names_the_state():
    with pytest.raises(rpc.CeleryWorkerError, match="stopsignal=2, not TERM: state=present uses supervisor's stop"):
        cs.stop_preflight(dict(SPEC, stopsignal=2), params(state="present"))
    assert cs.stop_preflight(SPEC, params(state="absent")) == []
    assert cs.stop_preflight(cli.bare_spec("x"), params(state="absent")) == []


@pytest.mark.parametrize(
    ("action", "info", "desired", "state_after", "pid_after"),
    [
        ("add", {}, "present", "RUNNING", None),
        ("remove", {"statename": "RUNNING", "pid": 1001}, "absent", None, None),
        ("remove", {"statename": "STOPPED", "pid": 0}, "absent", None, None),
        ("none", {}, "absent", None, None),
    ],
)
def test_predict_after_of_file_states(action, info, desired, state_after, pid_after):
    result = cs.program_result(SPEC, info, action, True)
    cs.predict_after(result, desired)
    assert (result["state_after"], result["pid_after"]) == (state_after, pid_after)
    assert result["changed"] is (action != "none")


# ---------------------------------------------------------------------------------------------------------------
# Controller: state=present
# ---------------------------------------------------------------------------------------------------------------


OLD_CMD = f"{WRAPPER} worker {APP} --queues=customers --hostname=customers.%h --concurrency=8"


NEW_CMD = f"{WRAPPER} worker {APP} --queues=customers,vip --hostname=cust.%h --concurrency=16"


def autostart(new_pid=4004, startsecs=5):
    """supervisord's autostart of an added group: STARTING at once, RUNNING past startsecs."""

    def hook(fake, name):
        fake.schedule(0, name, statename="STARTING", pid=new_pid)
        fake.schedule(startsecs + 0.1, name, statename="RUNNING")

    return hook


def stop_after(seconds):
    def hook(fake, name):
        fake.infos[name].update(statename="STOPPING")
        fake.schedule(seconds, name, statename="STOPPED", pid=0)

    return hook


def reconfigured(clock, state="RUNNING", pid=1001, old=OLD_CMD, new=NEW_CMD):
    """celery-customers runs with ``old``; its file now says ``new``; reloadConfig reports it changed."""
    fake = FakeSupervisor(clock, [make_config("celery-customers", old)], [make_info("celery-customers", state, pid)])
    fake.files = [make_config("celery-customers", new)]
    fake.diff = ([], ["celery-customers"], [])
    return fake


def apply_file(fake, probe, clock, check_mode=False, **overrides):
    overrides.setdefault("state", "present")
    ctl = controller(fake, probe, clock, check_mode=check_mode, **overrides)
    changed, result = ctl.run()
    return changed, result, ctl


def test_present_adds_a_new_program_and_waits_until_it_answers(clock):
    fake = FakeSupervisor(clock, [], [])
    fake.files = [make_config("celery-customers", NEW_CMD, inuse=False)]
    fake.diff = (["celery-customers"], [], [])
    fake.hooks["add_group"] = autostart()
    probe = FakeProbe(clock)
    changed, result, ctl = apply_file(fake, probe, clock)
    assert changed is True
    assert fake.calls[:3] == [("check_running",), ("all_config_info",), ("reload_config",)]
    assert fake.mutations() == [("add_group", "celery-customers")]
    [item] = result["programs"]
    assert (item["action"], item["state_before"], item["pid_before"]) == ("add", None, None)
    assert (item["state_after"], item["pid_after"], item["node"]) == ("RUNNING", 4004, "celery@cust.app1")
    assert item["queues"] == ["customers", "vip"]
    assert {node for _when, node in probe.pings} == {"celery@cust.app1"}
    assert ctl.warnings == []


def test_present_adds_a_program_that_is_not_autostarted_and_leaves_it_stopped(clock):
    """Like `supervisorctl update`: a program declared with autostart=false (a handover) is added, not started."""
    fake = FakeSupervisor(clock, [], [])
    fake.files = [make_config("celery-customers", NEW_CMD, inuse=False, autostart=False)]
    fake.diff = (["celery-customers"], [], [])
    probe = FakeProbe(clock)
    changed, result, _ctl = apply_file(fake, probe, clock)
    assert changed is True
    assert fake.mutations() == [("add_group", "celery-customers")]
    [item] = result["programs"]
    assert (item["action"], item["state_after"], item["pid_after"]) == ("add", "STOPPED", None)
    assert probe.pings == []


def test_present_already_added_by_someone_else_still_waits(clock):
    fake = FakeSupervisor(clock, [], [])
    fake.files = [make_config("celery-customers", NEW_CMD, inuse=False)]
    fake.diff = (["celery-customers"], [], [])
    fake.hooks["add_group"] = autostart()
    fake.add_answer = False  # what the client returns for ALREADY_ADDED
    _changed, result, _ctl = apply_file(fake, FakeProbe(clock), clock)
    assert result["programs"][0]["pid_after"] == 4004


def test_present_changed_prefork_is_quiesced_with_its_old_settings_then_runs_the_new(clock):
    fake = reconfigured(clock)
    fake.hooks["stop"] = stop_after(6)
    fake.hooks["add_group"] = autostart(new_pid=2002)
    probe = FakeProbe(clock, active=2)
    changed, result, ctl = apply_file(fake, probe, clock)
    assert changed is True
    assert fake.mutations() == [
        ("stop", "celery-customers"),
        ("remove_group", "celery-customers"),
        ("add_group", "celery-customers"),
    ]
    # the quiesce speaks to the running node about the queues it consumes; the wait to the new one
    assert [(node, queue) for _when, node, queue in probe.cancelled] == [("celery@customers.app1", "customers")]
    assert {node for _when, node in probe.pings} == {"celery@cust.app1"}
    [item] = result["programs"]
    assert item["action"] == "reload"
    assert (item["pid_before"], item["pid_after"]) == (1001, 2002)
    assert (item["state_before"], item["state_after"]) == ("RUNNING", "RUNNING")
    assert (item["node"], item["queues"]) == ("celery@cust.app1", ["customers", "vip"])
    assert (item["active_tasks"], item["shutdown"], item["drain_seconds"]) == (2, "warm", 6.0)
    assert item["quiesce_seconds"] is not None
    assert ctl.warnings == []


def test_present_changed_but_not_running_is_replaced_and_started(clock):
    fake = reconfigured(clock, state="STOPPED", pid=0)
    fake.hooks["start"] = autostart(new_pid=3003)
    probe = FakeProbe(clock)
    changed, result, _ctl = apply_file(fake, probe, clock)
    assert changed is True
    assert fake.mutations() == [
        ("remove_group", "celery-customers"),
        ("add_group", "celery-customers"),
        ("start", "celery-customers"),
    ]
    assert probe.cancelled == []
    assert result["programs"][0]["drain_seconds"] is None
    assert result["programs"][0]["pid_after"] == 3003


def test_present_changed_while_someone_stops_it_waits_for_that_stop(clock):
    fake = reconfigured(clock, state="STOPPING")
    fake.schedule(4, "celery-customers", statename="STOPPED", pid=0)
    fake.hooks["add_group"] = autostart(new_pid=2002)
    _changed, result, _ctl = apply_file(fake, FakeProbe(clock), clock)
    assert [call[0] for call in fake.mutations()] == ["remove_group", "add_group"]
    assert clock.now >= 4
    assert result["programs"][0]["pid_after"] == 2002


def test_present_changed_without_its_old_settings_uses_the_new_and_warns(clock):
    fake = reconfigured(clock)
    fake.configs = []  # someone ran `supervisorctl reread` after the file was deleted, then it came back
    fake.hooks["stop"] = stop_after(2)
    fake.hooks["add_group"] = autostart()
    probe = FakeProbe(clock)
    _changed, result, ctl = apply_file(fake, probe, clock)
    assert [(node, queue) for _when, node, queue in probe.cancelled] == [
        ("celery@cust.app1", "customers"),
        ("celery@cust.app1", "vip"),
    ]
    assert result["programs"][0]["action"] == "reload"
    [warning] = ctl.warnings
    assert "worker 'celery-customers': the configuration supervisord had read before this task does not" in warning
    assert "used the node name and queues of its new file" in warning


def test_present_changed_old_stopsignal_refused_before_the_stop(clock):
    fake = reconfigured(clock)
    fake.configs = [make_config("celery-customers", OLD_CMD, stopsignal=2)]
    with pytest.raises(rpc.CeleryWorkerError, match="stopsignal=2, not TERM: state=present") as info:
        apply_file(fake, FakeProbe(clock), clock)
    assert fake.mutations() == []
    assert info.value.programs == []


def test_present_changed_drain_timeout_reports_the_program(clock):
    fake = reconfigured(clock)
    fake.hooks["stop"] = lambda fake, name: fake.infos[name].update(statename="STOPPING")
    with pytest.raises(rpc.CeleryWorkerError, match="still draining after timeout=30 seconds") as info:
        apply_file(fake, FakeProbe(clock), clock, timeout=30)
    assert fake.mutations() == [("stop", "celery-customers")]
    [item] = info.value.programs
    assert (item["action"], item["changed"], item["state_after"]) == ("reload", True, "STOPPING")


@pytest.mark.parametrize(
    ("state", "pid", "changed", "mutations"),
    [
        ("RUNNING", 1001, False, []),
        ("STOPPED", 0, True, [("start", "celery-customers")]),
    ],
)
def test_present_unchanged_acts_like_started(clock, state, pid, changed, mutations):
    fake = FakeSupervisor(
        clock, [make_config("celery-customers", OLD_CMD)], [make_info("celery-customers", state, pid)]
    )
    fake.hooks["start"] = autostart(new_pid=3003)
    result_changed, result, _ctl = apply_file(fake, FakeProbe(clock), clock)
    assert result_changed is changed
    assert fake.mutations() == mutations
    assert ("reload_config",) in fake.calls
    assert result["programs"][0]["action"] == ("none" if state == "RUNNING" else "start")


@pytest.mark.parametrize(
    ("files", "diff", "message"),
    [
        (
            [],
            ([], [], ["celery-customers"]),
            "no file of supervisord's configuration declares the program "
            "'celery-customers' \\(known programs: \\(none\\)\\).*/etc/supervisor/conf.d/celery-customers.conf",
        ),
        (
            [make_config("celery-customers", f"{WRAPPER} beat")],
            ([], ["celery-customers"], []),
            "is not a Celery worker",
        ),
        (
            [make_config("w0", NEW_CMD, group="celery-customers")],
            ([], ["celery-customers"], []),
            "holds celery-customers:w0",
        ),
    ],
)
def test_present_fails_before_any_stop_when_the_file_is_not_a_worker_program(clock, files, diff, message):
    fake = reconfigured(clock)
    fake.files = files
    fake.diff = diff
    with pytest.raises(rpc.CeleryWorkerError, match=message):
        apply_file(fake, FakeProbe(clock), clock)
    assert fake.mutations() == []


@pytest.mark.parametrize(
    ("configs", "infos", "action", "changed", "state_after", "pid_after"),
    [
        ([], [], "add", True, "RUNNING", None),
        ([make_config("celery-customers", OLD_CMD, inuse=False)], [], "add", True, "RUNNING", None),
        (
            [make_config("celery-customers", OLD_CMD)],
            [make_info("celery-customers", "RUNNING", 1001)],
            "none",
            False,
            "RUNNING",
            1001,
        ),
        (
            [make_config("celery-customers", OLD_CMD)],
            [make_info("celery-customers", "EXITED")],
            "start",
            True,
            "RUNNING",
            None,
        ),
    ],
)
def test_present_check_mode_predicts_without_reloading(clock, configs, infos, action, changed, state_after, pid_after):
    fake = FakeSupervisor(clock, configs, infos)
    fake.diff = (["celery-customers"], [], [])
    result_changed, result, _ctl = apply_file(fake, FakeProbe(clock), clock, check_mode=True)
    assert result_changed is changed
    assert ("reload_config",) not in fake.calls
    assert fake.mutations() == []
    [item] = result["programs"]
    assert (item["action"], item["state_after"], item["pid_after"], item["check_mode"]) == (
        action,
        state_after,
        pid_after,
        True,
    )


def test_present_check_mode_of_a_known_program_that_is_not_a_worker(clock):
    fake = FakeSupervisor(
        clock, [make_config("celery-customers", f"{WRAPPER} beat")], [make_info("celery-customers", "RUNNING", 1)]
    )
    with pytest.raises(rpc.CeleryWorkerError, match="supervisor program 'celery-customers': .*not a Celery worker"):
        apply_file(fake, FakeProbe(clock), clock, check_mode=True)


# ---------------------------------------------------------------------------------------------------------------
# Controller: state=absent
# ---------------------------------------------------------------------------------------------------------------


def retired(clock, state="RUNNING", pid=1001, command=OLD_CMD):
    """celery-customers still runs; its file was deleted: reloadConfig reports it removed."""
    fake = FakeSupervisor(
        clock, [make_config("celery-customers", command)], [make_info("celery-customers", state, pid)]
    )
    fake.files = []
    fake.diff = ([], [], ["celery-customers"])
    return fake


def test_absent_quiesces_stops_and_removes(clock):
    fake = retired(clock)
    fake.hooks["stop"] = stop_after(5)
    probe = FakeProbe(clock, active=1)
    changed, result, ctl = apply_file(fake, probe, clock, state="absent")
    assert changed is True
    assert fake.calls[:3] == [("check_running",), ("all_config_info",), ("reload_config",)]
    assert fake.mutations() == [("stop", "celery-customers"), ("remove_group", "celery-customers")]
    assert [(node, queue) for _when, node, queue in probe.cancelled] == [("celery@customers.app1", "customers")]
    [item] = result["programs"]
    assert (item["action"], item["state_before"], item["state_after"], item["pid_after"]) == (
        "remove",
        "RUNNING",
        None,
        None,
    )
    assert (item["active_tasks"], item["shutdown"], item["drain_seconds"]) == (1, "warm", 5.0)
    assert result["diff"]["after"] == {"celery-customers": {"state": None, "pid": None}}
    assert ctl.warnings == []


def test_absent_of_a_stopped_program_only_removes_it(clock):
    fake = retired(clock, state="STOPPED", pid=0)
    probe = FakeProbe(clock)
    changed, result, _ctl = apply_file(fake, probe, clock, state="absent")
    assert changed is True
    assert fake.mutations() == [("remove_group", "celery-customers")]
    assert probe.cancelled == []
    assert result["programs"][0]["shutdown"] is None


def test_absent_of_a_program_supervisord_does_not_run_is_no_change(clock):
    fake = FakeSupervisor(clock, [], [])
    changed, result, _ctl = apply_file(fake, FakeProbe(clock), clock, state="absent")
    assert changed is False
    assert fake.mutations() == []
    [item] = result["programs"]
    assert (item["action"], item["state_before"], item["state_after"], item["node"]) == ("none", None, None, None)


def test_absent_fails_before_any_stop_while_a_file_still_declares_it(clock):
    fake = retired(clock)
    fake.files = [make_config("celery-customers", OLD_CMD)]
    fake.diff = ([], [], [])
    with pytest.raises(
        rpc.CeleryWorkerError,
        match="'celery-customers' is still declared by a file.*"
        "/etc/supervisor/conf.d/celery-customers.conf.*Nothing was stopped",
    ) as info:
        apply_file(fake, FakeProbe(clock), clock, state="absent")
    assert fake.mutations() == []
    assert info.value.programs == []


def test_absent_without_its_old_settings_stops_without_the_quiesce_and_warns(clock):
    fake = retired(clock)
    fake.configs = []  # an earlier reloadConfig (another program's absent) already dropped it
    fake.hooks["stop"] = stop_after(3)
    probe = FakeProbe(clock)
    changed, result, ctl = apply_file(fake, probe, clock, state="absent")
    assert changed is True
    assert fake.mutations() == [("stop", "celery-customers"), ("remove_group", "celery-customers")]
    assert probe.cancelled == []
    [item] = result["programs"]
    assert (item["node"], item["queues"], item["active_tasks"]) == (None, [], None)
    [warning] = ctl.warnings
    assert warning.startswith("worker 'celery-customers': the configuration supervisord had read before this task")
    assert warning.endswith("it was stopped without the quiesce")


def test_absent_of_a_program_that_is_not_a_worker_warns(clock):
    fake = retired(clock, command="/opt/flower/bin/flower")
    fake.hooks["stop"] = stop_after(1)
    _changed, _result, ctl = apply_file(fake, FakeProbe(clock), clock, state="absent")
    assert fake.mutations() == [("stop", "celery-customers"), ("remove_group", "celery-customers")]
    assert "is not a Celery worker" in ctl.warnings[0]
    assert ctl.warnings[0].endswith("it was stopped without the quiesce")


@pytest.mark.parametrize(
    ("state", "pid", "active_tasks"),
    [("RUNNING", 1001, 4), ("STOPPED", 0, None)],
)
def test_absent_check_mode_predicts_the_removal(clock, state, pid, active_tasks):
    fake = retired(clock, state=state, pid=pid)
    fake.files = [make_config("celery-customers", OLD_CMD)]  # the deletion was only predicted: no failure
    changed, result, _ctl = apply_file(fake, FakeProbe(clock, active=4), clock, check_mode=True, state="absent")
    assert changed is True
    assert ("reload_config",) not in fake.calls
    assert fake.mutations() == []
    [item] = result["programs"]
    assert (item["action"], item["state_after"], item["pid_after"], item["active_tasks"]) == (
        "remove",
        None,
        None,
        active_tasks,
    )


def test_absent_check_mode_of_an_unknown_program(clock):
    changed, result, _ctl = apply_file(
        FakeSupervisor(clock, [], []), FakeProbe(clock), clock, check_mode=True, state="absent"
    )
    assert changed is False
    assert result["programs"][0]["action"] == "none"


def test_absent_refuses_a_group_of_several_programs(clock):
    fake = FakeSupervisor(clock, CONFIGS, [])
    with pytest.raises(rpc.CeleryWorkerError, match="group 'celery-batch' holds"):
        apply_file(fake, FakeProbe(clock), clock, state="absent", name="celery-batch")
    assert ("reload_config",) not in fake.calls


# ---------------------------------------------------------------------------------------------------------------
# Overlapping restarts: the handover program NAME-handover
# ---------------------------------------------------------------------------------------------------------------

HANDOVER = "celery-default-handover"
HANDOVER_CMD = DEFAULT_CMD.replace("--hostname=default.%h", "--hostname=default-handover.%h")


def overlap_supervisor(clock, handover_state="STOPPED", **handover_config):
    handover_config.setdefault("autostart", False)
    command = handover_config.pop("command", HANDOVER_CMD)
    configs = [
        make_config("celery-default", DEFAULT_CMD),
        make_config(HANDOVER, command, **handover_config),
        make_config("flower", "/opt/flower/bin/flower"),
    ]
    infos = [
        make_info("celery-default", "RUNNING", 1001),
        make_info(HANDOVER, handover_state, 3003 if handover_state == "RUNNING" else 0),
        make_info("flower", "RUNNING", 77),
    ]
    return FakeSupervisor(clock, configs, infos)


def overlap_hooks(fake, drain=20.0, boot=3.0, handover_drain=2.0, handover_fails=False):
    """The worker drains ``drain`` s after its TERM, then autorestart spawns 2002; the handover boots in ``boot``
    s (or goes FATAL), and stops ``handover_drain`` s after its stopProcess."""

    def start(fake, name):
        if handover_fails:
            fake.schedule(0, name, statename="BACKOFF", pid=0)
            fake.schedule(boot, name, statename="FATAL", pid=0, spawnerr="Exited too quickly")
        else:
            fake.schedule(0, name, statename="STARTING", pid=5005)
            fake.schedule(boot, name, statename="RUNNING")

    fake.hooks["start"] = start
    fake.hooks["signal"] = warm_exit_and_respawn(drain=drain, startsecs=5)
    fake.hooks["stop"] = stop_after(handover_drain)


def test_without_handovers_keeps_a_handover_whose_worker_is_not_selected():
    specs = [{"name": "celery-a"}, {"name": "celery-a-handover"}, {"name": "celery-b-handover"}]
    assert [spec["name"] for spec in cs.without_handovers(specs)] == ["celery-a", "celery-b-handover"]


def test_find_handover(clock):
    fake = overlap_supervisor(clock)
    spec = cli.build_worker_spec(fake.configs[0], "app1")
    handover = cs.find_handover(fake.configs, spec, "app1")
    assert (handover["name"], handover["node"]) == (HANDOVER, "celery@default-handover.app1")
    assert cs.find_handover(fake.configs[:1], spec, "app1") is None
    idle = overlap_supervisor(clock, inuse=False)
    assert cs.find_handover(idle.configs, spec, "app1") is None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"command": HANDOVER_CMD.replace("celery,mail", "celery")}, "serves celery, not the worker's queues"),
        ({"command": DEFAULT_CMD}, "has the worker's own node name celery@default.app1"),
        ({"autostart": True}, "autostart=true"),
        ({"command": "/usr/bin/sleep 60"}, "is not a Celery worker"),
    ],
)
def test_find_handover_refuses_a_handover_that_is_no_stand_in(clock, config, message):
    fake = overlap_supervisor(clock, **config)
    spec = cli.build_worker_spec(fake.configs[0], "app1")
    with pytest.raises(rpc.CeleryWorkerError, match=message):
        cs.find_handover(fake.configs, spec, "app1")


def test_overlap_restart_starts_the_handover_before_the_worker_stops_consuming(clock):
    fake = overlap_supervisor(clock)
    overlap_hooks(fake)
    probe = FakeProbe(clock, active=8)
    probe.handed = [["t1", "t2"]]
    changed, result = controller(fake, probe, clock, name="celery-default", overlap=True).run()
    assert changed is True
    assert fake.mutations() == [("start", HANDOVER), ("signal", "celery-default", "TERM"), ("stop", HANDOVER)]
    handover_up = [when for when, node in probe.pings if node == "celery@default-handover.app1"][0]
    cancels = {node: when for when, node, _queue in reversed(probe.cancelled)}
    # The handover answered before the worker's consumers were cancelled; the worker answered before the
    # handover's were.
    assert handover_up <= cancels["celery@default.app1"]
    worker_up = [when for when, node in probe.pings if node == "celery@default.app1"][-1]
    assert worker_up <= cancels["celery@default-handover.app1"]
    [item] = result["programs"]
    assert (item["action"], item["pid_before"], item["pid_after"], item["shutdown"]) == ("restart", 1001, 2002, "warm")
    assert item["handed_back"] == ["t1", "t2"]
    handover = item["handover"]
    assert (handover["name"], handover["node"], handover["pid"]) == (HANDOVER, "celery@default-handover.app1", 5005)
    assert handover["boot_seconds"] == 3.0
    assert (handover["shutdown"], handover["drain_seconds"], handover["active_tasks"]) == ("warm", 2.0, 8)
    assert fake.infos[HANDOVER]["statename"] == "STOPPED"


def test_overlap_false_restarts_the_worker_alone(clock):
    fake = overlap_supervisor(clock)
    overlap_hooks(fake)
    _changed, result = controller(fake, FakeProbe(clock), clock, name="celery-default", overlap=False).run()
    assert fake.mutations() == [("signal", "celery-default", "TERM")]
    assert result["programs"][0]["handover"] is None


def test_overlap_restart_leaves_the_worker_alone_when_the_handover_does_not_come_up(clock):
    fake = overlap_supervisor(clock)
    overlap_hooks(fake, handover_fails=True)
    probe = FakeProbe(clock)
    with pytest.raises(rpc.CeleryWorkerError) as caught:
        controller(fake, probe, clock, name="celery-default", overlap=True).run()
    assert fake.mutations() == [("start", HANDOVER), ("stop", HANDOVER)]
    assert probe.cancelled == []
    assert "handover of worker 'celery-default', which was not touched" in caught.value.message
    assert "Exited too quickly" in caught.value.message
    [item] = caught.value.programs
    assert (item["name"], item["pid_before"], item["shutdown"]) == ("celery-default", 1001, None)


def test_overlap_restart_that_times_out_says_the_handover_still_serves(clock):
    fake = overlap_supervisor(clock)
    overlap_hooks(fake, drain=900)
    with pytest.raises(rpc.CeleryWorkerError) as caught:
        controller(fake, FakeProbe(clock), clock, name="celery-default", overlap=True, timeout=60).run()
    assert fake.mutations() == [("start", HANDOVER), ("signal", "celery-default", "TERM")]
    assert "still draining after timeout=60" in caught.value.message
    assert f"Its handover '{HANDOVER}' (node celery@default-handover.app1) still runs" in caught.value.message
    assert fake.infos[HANDOVER]["statename"] == "RUNNING"


def test_overlap_restart_drains_a_handover_left_running_first(clock):
    fake = overlap_supervisor(clock, handover_state="RUNNING")
    overlap_hooks(fake)
    ctl = controller(fake, FakeProbe(clock), clock, name="celery-default", overlap=True)
    _changed, result = ctl.run()
    assert fake.mutations() == [
        ("stop", HANDOVER),
        ("start", HANDOVER),
        ("signal", "celery-default", "TERM"),
        ("stop", HANDOVER),
    ]
    assert result["programs"][0]["handover"]["pid"] == 5005
    assert "was already RUNNING" in ctl.warnings[0]


def test_overlap_restart_refuses_an_unusable_handover_before_any_change(clock):
    fake = overlap_supervisor(clock, autostart=True)
    with pytest.raises(rpc.CeleryWorkerError, match="Nothing was changed"):
        controller(fake, FakeProbe(clock), clock, name="celery-default", overlap=True).run()
    assert fake.mutations() == []


def test_overlap_restart_in_check_mode_names_the_handover_and_changes_nothing(clock):
    fake = overlap_supervisor(clock)
    _changed, result = controller(
        fake, FakeProbe(clock), clock, check_mode=True, name="celery-default", overlap=True
    ).run()
    assert fake.mutations() == []
    handover = result["programs"][0]["handover"]
    assert (handover["name"], handover["pid"], handover["boot_seconds"]) == (HANDOVER, None, None)


@pytest.mark.parametrize(
    ("selection", "state", "expected"),
    [
        ({"name": "*"}, "restarted", ["celery-default"]),
        ({"name": None, "queue": "mail"}, "restarted", ["celery-default"]),
        ({"name": "*"}, "started", ["celery-default"]),
        ({"name": "*"}, "stopped", ["celery-default", HANDOVER]),
        ({"name": HANDOVER}, "started", [HANDOVER]),
    ],
)
def test_selections_leave_the_handover_to_its_worker(clock, selection, state, expected):
    fake = overlap_supervisor(clock)
    overlap_hooks(fake)
    _changed, result = controller(fake, FakeProbe(clock), clock, state=state, overlap=False, **selection).run()
    assert [item["name"] for item in result["programs"]] == expected


def test_present_of_a_changed_handover_that_runs_drains_it_and_leaves_it_stopped(clock):
    fake = overlap_supervisor(clock, handover_state="RUNNING")
    fake.files = [dict(config) for config in fake.configs]
    fake.files[1]["command"] = HANDOVER_CMD.replace("--concurrency=8", "--concurrency=4")
    fake.diff = ([], [HANDOVER], [])
    fake.hooks["stop"] = stop_after(2)
    changed, result, _ctl = apply_file(fake, FakeProbe(clock), clock, name=HANDOVER)
    assert changed is True
    assert fake.mutations() == [("stop", HANDOVER), ("remove_group", HANDOVER), ("add_group", HANDOVER)]
    [item] = result["programs"]
    assert (item["action"], item["state_after"], item["pid_after"]) == ("reload", "STOPPED", None)


def test_present_of_an_unchanged_stopped_handover_does_nothing(clock):
    fake = overlap_supervisor(clock)
    changed, result, _ctl = apply_file(fake, FakeProbe(clock), clock, name=HANDOVER)
    assert changed is False
    assert fake.mutations() == []
    assert result["programs"][0]["action"] == "none"
