# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Tests of the module shell: argument spec, check mode, diff, results and failures through main()."""

from __future__ import annotations

import json

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

from ansible_collections.celeryops.stack.plugins.module_utils import celery_cli as cli
from ansible_collections.celeryops.stack.plugins.module_utils import celery_supervisor as cs
from ansible_collections.celeryops.stack.plugins.module_utils import supervisor_rpc as rpc
from ansible_collections.celeryops.stack.plugins.modules import celery_worker

WRAPPER = "/opt/celery/bin/celery-run"
COMMAND = (
    f"{WRAPPER} worker --app=myproject.celery_config:app --queues=customers --hostname=customers.%h "
    "--pool=eventlet --concurrency=256 --loglevel=INFO -E"
)
NODE = "celery@customers.app1"


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class Supervisor:
    """A small scripted supervisord: TERM makes the worker exit after 4 s and autorestart spawn pid 2002."""

    def __init__(self, clock, statename="RUNNING", pid=1001, respawn=True, stopsignal=15):
        self.clock = clock
        self.info = {"name": "celery-customers", "group": "celery-customers", "statename": statename, "pid": pid}
        self.configs = [
            {
                "name": "celery-customers",
                "group": "celery-customers",
                "command": COMMAND,
                "startsecs": 5,
                "stopwaitsecs": 900,
                "stopsignal": stopsignal,
                "inuse": True,
                "stdout_logfile": "/var/log/supervisor/celery-customers.log",
            },
            {"name": "flower", "group": "flower", "command": "/opt/flower/bin/flower", "inuse": True},
        ]
        self.respawn = respawn
        self.pending = []
        self.mutations = []
        self.socket_path = None
        self.files = None  # what reloadConfig reads (None: the configs)
        self.diff = ([], [], [])
        self.reloads = 0

    def _at(self, delay, **changes):
        self.pending.append((self.clock.now + delay, changes))

    def check_running(self):
        return {"statename": "RUNNING"}

    def all_config_info(self):
        return self.configs

    def process_info(self, name):
        for when, changes in list(self.pending):
            if when <= self.clock.now:
                self.info.update(changes)
                self.pending.remove((when, changes))
        return dict(self.info)

    def signal(self, name, signal_name):
        self.mutations.append(("signal", name, signal_name))
        if signal_name == "TERM" and self.respawn:
            self._at(4, statename="EXITED", pid=0)
            self._at(4.5, statename="STARTING", pid=2002)
            self._at(10, statename="RUNNING")

    def start(self, name):
        self.mutations.append(("start", name))
        self._at(0, statename="STARTING", pid=3003)
        self._at(6, statename="RUNNING")

    def stop(self, name):
        self.mutations.append(("stop", name))
        self.info.update(statename="STOPPING")
        self._at(7, statename="STOPPED", pid=0)

    def reload_config(self):
        self.reloads += 1
        if self.files is not None:
            self.configs = self.files
        return self.diff

    def add_group(self, name):
        """autostart: STARTING at once, RUNNING past startsecs."""
        self.mutations.append(("add_group", name))
        self.info.update(statename="STARTING", pid=4004)
        self._at(6, statename="RUNNING")
        return True

    def remove_group(self, name):
        self.mutations.append(("remove_group", name))
        self.info.update(statename=None, pid=0)
        return True


def celery_output(argv, pong=True):
    """What the wrapper prints for ``inspect ping|active --json`` (Celery 5.5)."""
    if "ping" in argv:
        if pong:
            return 0, json.dumps({NODE: {"ok": "pong"}}) + "\n", ""
        return 69, "", "Error: No nodes replied within time constraint\n"
    if argv[-3:-1] == ["/usr/local/bin/health", NODE]:
        return 0, "healthy\n", ""
    if "active" in argv:
        return 0, json.dumps({NODE: [{"id": "t1"}, {"id": "t2"}]}) + "\n", ""
    return 2, "", "Usage: celery [OPTIONS] COMMAND [ARGS]..."


@pytest.fixture
def env(monkeypatch):
    clock = Clock()
    state = {"supervisor": Supervisor(clock), "argvs": [], "pong": True, "clients": 0}

    def make_client(socket_path):
        state["clients"] += 1
        state["supervisor"].socket_path = socket_path
        return state["supervisor"]

    def make_controller(client, probe, params, check_mode):
        return cs.WorkerController(client, probe, params, check_mode, clock=clock, sleep=clock.sleep, hostname="app1")

    def run_command(self, argv, check_rc=False, **kwargs):
        state["argvs"].append(argv)
        return celery_output(argv, pong=state["pong"])

    monkeypatch.setattr(celery_worker, "SupervisorClient", make_client)
    monkeypatch.setattr(celery_worker, "WorkerController", make_controller)
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(
        basic.AnsibleModule,
        "get_bin_path",
        lambda self, name, *a, **k: "/usr/bin/timeout" if name == "timeout" else None,
    )
    return state


def run_module(capsys, args):
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        celery_worker.main()
    output = json.loads(capsys.readouterr().out)
    return exit_info.value.code, output


def test_restarted(capsys, env):
    code, result = run_module(capsys, {"name": "celery-customers", "state": "restarted"})
    assert code == 0
    assert result["changed"] is True
    assert "diff" not in result
    [item] = result["programs"]
    assert item["name"] == "celery-customers"
    assert item["node"] == NODE
    assert item["queues"] == ["customers"]
    assert (item["pid_before"], item["pid_after"]) == (1001, 2002)
    assert (item["state_before"], item["state_after"]) == ("RUNNING", "RUNNING")
    assert item["active_tasks"] == 2
    assert item["drain_seconds"] == 4.0
    assert item["changed"] is True
    assert isinstance(result["total_seconds"], float)
    assert env["supervisor"].mutations == [("signal", "celery-customers", "TERM")]
    assert env["supervisor"].socket_path == "/var/run/supervisor.sock"


def test_probe_commands_are_argv_lists_with_the_app_before_inspect(capsys, env):
    run_module(capsys, {"name": "celery-customers", "state": "restarted", "ping_timeout": 3})
    active, ping = env["argvs"][0], env["argvs"][-1]
    bound = ["/usr/bin/timeout", "--kill-after=5", "63"]
    assert active == bound + [
        WRAPPER,
        "--app=myproject.celery_config:app",
        "inspect",
        "active",
        "--destination",
        NODE,
        "--timeout",
        "3",
        "--json",
    ]
    # the last ping may be one sent while the new process was STARTING: its reply wait is at most 0.5 s
    assert ping[:-3] == bound + [WRAPPER, "--app=myproject.celery_config:app", "inspect", "ping"] + active[7:-3]
    assert ping[-3:] in (["--timeout", "3", "--json"], ["--timeout", "0.3", "--json"])


def test_custom_ping_command(capsys, env):
    args = {
        "name": "celery-customers",
        "state": "restarted",
        "ping_command": ["/usr/local/bin/health", "{node}", "{program}"],
    }
    code, _result = run_module(capsys, args)
    assert code == 0
    assert env["argvs"][-1][3:] == ["/usr/local/bin/health", NODE, "celery-customers"]


def test_diff(capsys, env):
    _code, result = run_module(capsys, {"name": "celery-customers", "state": "restarted", "_ansible_diff": True})
    assert result["diff"] == {
        "before": {"celery-customers": {"state": "RUNNING", "pid": 1001}},
        "after": {"celery-customers": {"state": "RUNNING", "pid": 2002}},
    }


@pytest.mark.parametrize(
    ("args", "statename", "pid", "changed"),
    [
        ({"state": "restarted"}, "RUNNING", 1001, True),
        ({"state": "started"}, "RUNNING", 1001, False),
        ({"state": "started"}, "STOPPED", 0, True),
        ({"state": "stopped"}, "RUNNING", 1001, True),
        ({"state": "stopped"}, "STOPPED", 0, False),
    ],
)
def test_check_mode_changes_nothing(capsys, env, args, statename, pid, changed):
    env["supervisor"].info.update(statename=statename, pid=pid)
    args = dict(args, name="celery-customers", _ansible_check_mode=True, _ansible_diff=True)
    code, result = run_module(capsys, args)
    assert code == 0
    assert result["changed"] is changed
    assert env["supervisor"].mutations == []
    assert all("ping" not in argv for argv in env["argvs"])
    assert result["programs"][0]["check_mode"] is True
    assert set(result["diff"]) == {"before", "after"}


@pytest.mark.parametrize(
    ("args", "statename", "changed", "mutations"),
    [
        ({"state": "started"}, "RUNNING", False, []),
        ({"state": "started"}, "EXITED", True, [("start", "celery-customers")]),
        ({"state": "stopped"}, "RUNNING", True, [("stop", "celery-customers")]),
        ({"state": "stopped"}, "STOPPED", False, []),
        ({"state": "restarted", "queue": "customers"}, "RUNNING", True, [("signal", "celery-customers", "TERM")]),
    ],
)
def test_states(capsys, env, args, statename, changed, mutations):
    env["supervisor"].info.update(statename=statename, pid=1001 if statename == "RUNNING" else 0)
    args = dict(args)
    args.setdefault("name", None if "queue" in args else "celery-customers")
    code, result = run_module(capsys, {k: v for k, v in args.items() if v is not None})
    assert code == 0
    assert result["changed"] is changed
    assert env["supervisor"].mutations == mutations


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            {"name": "celery-customers", "state": "reloaded"},
            "value of state must be one of: started, stopped, restarted, present, absent",
        ),
        ({"name": "celery-customers"}, "missing required arguments: state"),
        ({"state": "started"}, "one of the following is required: name, queue"),
        ({"name": "a", "queue": "b", "state": "started"}, "parameters are mutually exclusive: name|queue"),
        ({"name": "celery-customers", "state": "started", "timeout": 0}, "timeout must be greater than 0 (got 0)"),
        ({"name": "celery-customers", "state": "started", "timeout": -1}, "timeout must be greater than 0"),
        ({"name": "celery-customers", "state": "started", "on_timeout": "wait"}, "value of on_timeout must be one of"),
        ({"name": " ", "state": "started"}, "name must not be empty"),
        ({"queue": "customers", "state": "present"}, "queue cannot be used with state=present: name the program"),
        ({"name": "celery-batch:*", "state": "absent"}, "state=absent takes the name of one standalone program"),
        ({"name": "*", "state": "present"}, "state=present takes the name of one standalone program ([program:NAME])"),
    ],
)
def test_bad_input_fails_before_anything(capsys, env, args, message):
    code, result = run_module(capsys, args)
    assert code == 1
    assert result["failed"] is True
    assert message in result["msg"]
    assert env["clients"] == 0
    assert env["supervisor"].mutations == []


def test_unknown_program_lists_known_ones(capsys, env):
    code, result = run_module(capsys, {"name": "celery-nope", "state": "restarted"})
    assert code == 1
    assert result["msg"] == "unknown supervisor program 'celery-nope'. Known programs: celery-customers, flower"
    assert result["changed"] is False
    assert result["programs"] == []


def test_not_a_celery_worker(capsys, env):
    code, result = run_module(capsys, {"name": "flower", "state": "restarted"})
    assert code == 1
    assert "supervisor program 'flower' is not a Celery worker" in result["msg"]
    assert "no 'worker' subcommand" in result["msg"]


def test_ping_never_answered(capsys, env):
    env["pong"] = False
    code, result = run_module(capsys, {"name": "celery-customers", "state": "restarted", "start_timeout": 30})
    assert code == 1
    assert result["changed"] is True
    assert f"node {NODE} did not answer `celery inspect ping`" in result["msg"]
    assert "broker URL in the env file" in result["msg"]
    assert "No nodes replied within time constraint" in result["msg"]
    assert result["programs"][0]["pid_after"] == 2002


def test_drain_timeout_fail(capsys, env):
    env["supervisor"].respawn = False
    code, result = run_module(capsys, {"name": "celery-customers", "state": "restarted", "timeout": 20})
    assert code == 1
    assert result["changed"] is True
    assert "still draining after timeout=20 seconds (2 task(s) were active" in result["msg"]
    assert env["supervisor"].mutations == [("signal", "celery-customers", "TERM")]


def test_drain_timeout_kill(capsys, env):
    supervisor = env["supervisor"]
    supervisor.respawn = False

    def signal(name, signal_name):
        supervisor.mutations.append(("signal", name, signal_name))
        if signal_name == "KILL":
            supervisor.start(name)
            supervisor.mutations.pop()

    supervisor.signal = signal
    args = {"name": "celery-customers", "state": "restarted", "timeout": 20, "on_timeout": "kill"}
    code, result = run_module(capsys, args)
    assert code == 0
    assert result["programs"][0]["shutdown"] == "kill"
    assert supervisor.mutations == [("signal", "celery-customers", "TERM"), ("signal", "celery-customers", "KILL")]


def test_supervisor_unreachable(capsys, env, monkeypatch):
    def broken(socket_path):
        env["clients"] += 1
        return rpc.SupervisorClient(socket_path, proxy=None)

    monkeypatch.setattr(celery_worker, "SupervisorClient", broken)
    code, result = run_module(capsys, {"name": "celery-customers", "state": "started", "socket": "/nonexistent.sock"})
    assert code == 1
    assert "the supervisord socket /nonexistent.sock does not exist: is supervisord running" in result["msg"]


def test_warnings_are_returned(capsys, env):
    env["supervisor"].configs[0]["stopwaitsecs"] = 60
    code, result = run_module(capsys, {"name": "celery-customers", "state": "stopped", "timeout": 600})
    assert code == 0
    # ansible-core 2.19 returns structured warnings; older releases plain strings
    assert "stopwaitsecs=60 < timeout=600" in json.dumps(result["warnings"])


def test_stopped_with_a_non_term_stopsignal(capsys, env):
    env["supervisor"].configs[0]["stopsignal"] = 2
    code, result = run_module(capsys, {"name": "celery-customers", "state": "stopped"})
    assert code == 1
    assert "stopsignal=2, not TERM" in result["msg"]
    assert env["supervisor"].mutations == []


# ---------------------------------------------------------------------------------------------------------------
# Documentation blocks
# ---------------------------------------------------------------------------------------------------------------


def test_documentation_matches_the_argument_spec():
    doc = yaml.safe_load(celery_worker.DOCUMENTATION)
    spec = celery_worker.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in spec.items():
        documented = doc["options"][name]
        assert documented["type"] == option["type"], name
        assert documented.get("default") == option.get("default"), name
        assert documented.get("choices") == option.get("choices"), name
        assert documented.get("required", False) == option.get("required", False), name
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"


def test_examples_use_the_fqcn_and_names():
    examples = yaml.safe_load(celery_worker.EXAMPLES)
    for task in examples:
        assert task["name"]
        modules = [key for key in task if key.startswith(("celeryops.stack.", "ansible.builtin."))]
        assert len(modules) == 1, task


def test_return_documents_every_program_key():
    returned = yaml.safe_load(celery_worker.RETURN)
    documented = set(returned["programs"]["contains"])
    item = cs.program_result(
        cli.build_worker_spec(Supervisor(Clock()).configs[0], "app1"), {"statename": "RUNNING", "pid": 1}, "none", False
    )
    assert documented == set(item)
    for key in ("changed", "total_seconds", "programs", "diff"):
        assert {"description", "returned", "type", "sample"} <= set(returned[key])


# ---------------------------------------------------------------------------------------------------------------
# state=present, state=absent, name=*
# ---------------------------------------------------------------------------------------------------------------


def changed_file(supervisor):
    """The file of celery-customers now adds a queue: reloadConfig reports the group changed."""
    new = dict(supervisor.configs[0], command=COMMAND.replace("--queues=customers", "--queues=customers,vip"))
    supervisor.files = [new, supervisor.configs[1]]
    supervisor.diff = ([], ["celery-customers"], [])


def test_present_applies_a_changed_file(capsys, env):
    supervisor = env["supervisor"]
    changed_file(supervisor)
    code, result = run_module(capsys, {"name": "celery-customers", "state": "present", "_ansible_diff": True})
    assert code == 0
    assert result["changed"] is True
    assert supervisor.reloads == 1
    assert supervisor.mutations == [
        ("stop", "celery-customers"),
        ("remove_group", "celery-customers"),
        ("add_group", "celery-customers"),
    ]
    [item] = result["programs"]
    assert (item["action"], item["pid_before"], item["pid_after"]) == ("reload", 1001, 4004)
    assert (item["node"], item["queues"]) == (NODE, ["customers", "vip"])
    assert result["diff"]["after"] == {"celery-customers": {"state": "RUNNING", "pid": 4004}}


def test_present_of_an_unchanged_running_program(capsys, env):
    code, result = run_module(capsys, {"name": "celery-customers", "state": "present"})
    assert code == 0
    assert result["changed"] is False
    assert result["programs"][0]["action"] == "none"
    assert env["supervisor"].mutations == []


def test_present_check_mode_does_not_reload(capsys, env):
    supervisor = env["supervisor"]
    changed_file(supervisor)
    args = {"name": "celery-customers", "state": "present", "_ansible_check_mode": True}
    code, result = run_module(capsys, args)
    assert code == 0
    # a changed file is reported by the task that writes it
    assert result["changed"] is False
    assert supervisor.reloads == 0
    assert supervisor.mutations == []


def test_absent_drains_and_removes(capsys, env):
    supervisor = env["supervisor"]
    supervisor.files = [supervisor.configs[1]]
    supervisor.diff = ([], [], ["celery-customers"])
    code, result = run_module(capsys, {"name": "celery-customers", "state": "absent"})
    assert code == 0
    assert result["changed"] is True
    assert supervisor.mutations == [("stop", "celery-customers"), ("remove_group", "celery-customers")]
    item = result["programs"][0]
    assert (item["action"], item["state_after"], item["pid_after"], item["active_tasks"]) == ("remove", None, None, 2)


def test_absent_while_the_file_is_still_there(capsys, env):
    code, result = run_module(capsys, {"name": "celery-customers", "state": "absent"})
    assert code == 1
    assert result["changed"] is False
    assert "is still declared by a file of supervisord's configuration: delete that file first" in result["msg"]
    assert env["supervisor"].mutations == []


def test_all_workers(capsys, env):
    code, result = run_module(capsys, {"name": "*", "state": "stopped"})
    assert code == 0
    assert [item["name"] for item in result["programs"]] == ["celery-customers"]
    assert env["supervisor"].mutations == [("stop", "celery-customers")]
