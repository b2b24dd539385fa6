# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Unit tests of the Celery side: worker command parsing, node names, probe command lines and their output."""

from __future__ import annotations

import json

import pytest

from ansible_collections.celeryops.stack.plugins.module_utils import celery_cli as cli
from ansible_collections.celeryops.stack.tests.unit.plugins.module_utils.worker_samples import (
    APP,
    CUSTOMERS_CMD,
    DEFAULT_CMD,
    INVOICES_CMD,
    NODE,
    SPEC,
    WRAPPER,
    make_config,
)

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
    parsed = cli.parse_worker_command(command)
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
        cli.parse_worker_command(command)


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
    assert cli.expand_node_name(template, hostname) == expected


def test_expand_node_name_unknown_key():
    with pytest.raises(ValueError, match="unknown node name format key '%i'"):
        cli.expand_node_name("w%i@%h", "app1")


def test_build_worker_spec():
    spec = cli.build_worker_spec(make_config("celery-customers", CUSTOMERS_CMD), "app1")
    assert spec["name"] == "celery-customers"
    assert spec["node"] == "celery@customers.app1"
    assert spec["queues"] == ["customers"]
    assert spec["wrapper"] == WRAPPER
    assert spec["startsecs"] == 5
    assert spec["stopwaitsecs"] == 900


def test_build_worker_spec_bad_node_name():
    with pytest.raises(ValueError, match="supervisor program 'w': unknown node name format key"):
        cli.build_worker_spec(make_config("w", f"{WRAPPER} worker -n w%I@%h"), "app1")


# ---------------------------------------------------------------------------------------------------------------
# Probe output and commands
# ---------------------------------------------------------------------------------------------------------------


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
    result = cli.parse_inspect_json(stdout)
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
    assert cli.ping_answered(rc, stdout, NODE, custom=custom) is answered


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
    assert cli.listed_task_count(rc, stdout, NODE) == count


def test_build_inspect_argv():
    assert cli.build_inspect_argv(SPEC, "active", 5.0) == [
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
    assert cli.build_ping_argv(SPEC, 2.5, override) == expected


@pytest.mark.parametrize(
    ("timeout_bin", "limit", "expected"),
    [
        (None, 65, ["x", "y"]),
        ("/usr/bin/timeout", 65.0, ["/usr/bin/timeout", "--kill-after=5", "65", "x", "y"]),
        ("/usr/bin/timeout", 0.2, ["/usr/bin/timeout", "--kill-after=5", "1", "x", "y"]),
    ],
)
def test_bound_argv(timeout_bin, limit, expected):
    assert cli.bound_argv(["x", "y"], timeout_bin, limit) == expected


class RecordingRunner:
    def __init__(self, *replies):
        self.replies = list(replies)
        self.argvs = []
        self.environments = []

    def __call__(self, argv, environ_update=None):
        self.argvs.append(argv)
        self.environments.append(environ_update)
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
    probe = cli.CeleryProbe(runner, ping_timeout=5.0, timeout_bin="/usr/bin/timeout")
    assert probe.ping(SPEC) is True
    assert probe.active_tasks(SPEC) == 1
    assert probe.ping(SPEC) is False
    assert "No nodes replied" in probe.last_output
    assert probe.active_tasks(SPEC) is None
    assert runner.argvs[0][:3] == ["/usr/bin/timeout", "--kill-after=5", "65"]
    assert runner.argvs[0][3:] == cli.build_ping_argv(SPEC, 5.0)
    assert runner.argvs[1][3:] == cli.build_inspect_argv(SPEC, "active", 5.0)


def test_celery_probe_reserved_and_cancel_consumer():
    runner = RecordingRunner(
        (0, '{"celery@customers.app1": [{"id": 1}, {"id": 2}]}', ""),
        (0, '{"celery@customers.app1": {"ok": "no longer consuming from customers"}}', ""),
        OSError("boom"),
    )
    probe = cli.CeleryProbe(runner, ping_timeout=5.0)
    assert probe.reserved_tasks(SPEC) == 2
    assert probe.cancel_consumer(SPEC, "customers") is True
    assert probe.cancel_consumer(SPEC, "customers") is False
    assert runner.argvs[0] == cli.build_inspect_argv(SPEC, "reserved", 5.0)
    assert runner.argvs[1] == cli.build_control_argv(SPEC, "cancel_consumer", ["customers"], 5.0)


def test_hand_back_argv_makes_the_cli_load_the_command_module_and_the_worker_app_from_the_environment():
    spec = dict(SPEC, global_args=["--app=proj.celery:app", "--broker=amqp://b//"])
    argv, environment = cli.build_hand_back_argv(spec, 5.0)
    assert argv == [
        SPEC["wrapper"],
        "--app=celeryops_worker_control:app",
        "--broker=amqp://b//",
        "control",
        "celeryops_hand_back",
        "--destination",
        NODE,
        "--timeout",
        "5",
        "--json",
    ]
    assert environment == {"CELERYOPS_APP": "proj.celery:app"}


def test_hand_back_argv_needs_the_worker_app():
    assert cli.build_hand_back_argv(dict(SPEC, global_args=[]), 5.0) is None


@pytest.mark.parametrize(
    ("rc", "stdout", "expected"),
    [
        (0, json.dumps([{NODE: {"ok": "handed back 2", "handed_back": ["a", "b"]}}]), ["a", "b"]),
        (0, json.dumps({NODE: {"ok": "this pool holds no waiting tasks", "handed_back": []}}), []),
        # a worker without the module answers with an error
        (0, json.dumps({NODE: {"error": "No such command: celeryops_hand_back"}}), None),
        (0, json.dumps({"celery@other": {"ok": "handed back 0", "handed_back": []}}), None),
        (0, json.dumps({NODE: {"ok": "handed back 1", "handed_back": "a"}}), None),
        (2, "Error: Command celeryops_hand_back not recognized.", None),
        (69, "Error: No nodes replied within time constraint", None),
    ],
)
def test_handed_back_ids(rc, stdout, expected):
    assert cli.handed_back_ids(rc, stdout, NODE) == expected


def test_celery_probe_hand_back_passes_the_app_in_the_environment():
    runner = RecordingRunner(
        (0, json.dumps({NODE: {"ok": "handed back 1", "handed_back": ["t1"]}}), ""),
        OSError("boom"),
    )
    probe = cli.CeleryProbe(runner, ping_timeout=5.0)
    assert probe.hand_back(SPEC) == ["t1"]
    assert probe.hand_back(SPEC) is None
    argv, environment = cli.build_hand_back_argv(SPEC, 5.0)
    assert runner.argvs[0] == argv
    assert runner.environments[0] == environment
    assert probe.hand_back(dict(SPEC, global_args=[])) is None
    assert len(runner.argvs) == 2


def test_celery_probe_custom_ping():
    runner = RecordingRunner((0, "ok", ""))
    probe = cli.CeleryProbe(runner, ping_command=["/usr/local/bin/health", "{node}"])
    assert probe.ping(SPEC) is True
    assert runner.argvs == [["/usr/local/bin/health", NODE]]


# ---------------------------------------------------------------------------------------------------------------
# Quiesce: the pool and cancel_consumer
# ---------------------------------------------------------------------------------------------------------------


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
    assert cli.parse_worker_command(command)["pool"] == pool


def test_control_argv_and_its_confirmation():
    spec = cli.build_worker_spec(make_config("celery-default", DEFAULT_CMD), "app2")
    assert cli.build_control_argv(spec, "cancel_consumer", ["mail"], 5.0) == [
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
    assert cli.control_confirmed(0, '{"celery@default.app2": {"ok": "no longer consuming from mail"}}', node)
    assert not cli.control_confirmed(0, '{"celery@default.app2": {"error": "nope"}}', node)
    assert not cli.control_confirmed(0, '{"celery@other.app2": {"ok": "x"}}', node)
    assert not cli.control_confirmed(1, "Error: No nodes replied within time constraint", node)


# ---------------------------------------------------------------------------------------------------------------
# Worker specs
# ---------------------------------------------------------------------------------------------------------------


def test_bare_spec_has_nothing_to_probe_or_quiesce():
    spec = cli.bare_spec("celery-gone")
    assert set(spec) == set(SPEC)
    assert (spec["name"], spec["node"], spec["queues"], spec["pool"]) == ("celery-gone", None, [], None)
