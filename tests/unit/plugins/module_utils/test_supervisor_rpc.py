# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Unit tests of the supervisord XML-RPC client: calls, faults, and the transport over a real UNIX socket."""

from __future__ import annotations

import errno
import http.client
import os
import socketserver
import threading
import xmlrpc.client
from xmlrpc.server import SimpleXMLRPCDispatcher, SimpleXMLRPCRequestHandler

import pytest

from ansible_collections.celeryops.stack.plugins.module_utils import supervisor_rpc as rpc

# ---------------------------------------------------------------------------------------------------------------
# Program names
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group", "name", "expected"),
    [("celery-a", "celery-a", "celery-a"), ("batch", "celery-a", "batch:celery-a"), (None, "x", "x")],
)
def test_make_namespec(group, name, expected):
    assert rpc.make_namespec(group, name) == expected


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
    client = rpc.SupervisorClient("/s.sock", proxy=FakeProxy(lambda method, args: error))
    with pytest.raises(rpc.SupervisorError, match=message) as info:
        client.process_info("celery-x")
    assert info.value.fault_code == code


def test_client_calls():
    proxy = FakeProxy(lambda method, args: True)
    client = rpc.SupervisorClient("/s.sock", proxy=proxy)
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
    client = rpc.SupervisorClient(str(sock), proxy=FakeProxy(lambda method, args: next(states)))
    assert client.check_running() == {"statename": "RUNNING"}
    with pytest.raises(rpc.SupervisorError, match="supervisord is in state RESTARTING, not RUNNING"):
        client.check_running()


def test_client_check_running_socket_missing(tmp_path):
    client = rpc.SupervisorClient(str(tmp_path / "nope.sock"), proxy=FakeProxy(lambda method, args: None))
    with pytest.raises(rpc.SupervisorError, match="nope.sock does not exist"):
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
        client = rpc.SupervisorClient(path, timeout=5)
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
    client = rpc.SupervisorClient(path, timeout=5)
    with pytest.raises(rpc.SupervisorError, match="connection refused"):
        client.check_running()


# ---------------------------------------------------------------------------------------------------------------
# SupervisorClient: reloadConfig, addProcessGroup, removeProcessGroup
# ---------------------------------------------------------------------------------------------------------------


def test_client_reload_add_remove_calls():
    answers = {"reloadConfig": [[["celery-new"], ["celery-a"], ["celery-old"]]]}
    proxy = FakeProxy(lambda method, args: answers.get(method, True))
    client = rpc.SupervisorClient("/s.sock", proxy=proxy)
    assert client.reload_config() == (["celery-new"], ["celery-a"], ["celery-old"])
    assert client.add_group("celery-new") is True
    assert client.remove_group("celery-old") is True
    assert proxy.supervisor.calls == [
        ("reloadConfig", ()),
        ("addProcessGroup", ("celery-new",)),
        ("removeProcessGroup", ("celery-old",)),
    ]


@pytest.mark.parametrize(
    ("method", "fault", "expected"),
    [
        ("add_group", xmlrpc.client.Fault(90, "ALREADY_ADDED: celery-a"), False),
        ("remove_group", xmlrpc.client.Fault(10, "BAD_NAME: celery-a"), False),
    ],
)
def test_client_group_faults_that_are_no_error(method, fault, expected):
    client = rpc.SupervisorClient("/s.sock", proxy=FakeProxy(lambda method, args: fault))
    assert getattr(client, method)("celery-a") is expected


@pytest.mark.parametrize(
    ("method", "fault", "message", "code"),
    [
        (
            "reload_config",
            xmlrpc.client.Fault(92, "CANT_REREAD: File contains parsing errors"),
            "cannot read its configuration files \\(supervisor.reloadConfig\\(\\) failed: CANT_REREAD: "
            "File contains parsing errors\\); no program was changed",
            92,
        ),
        ("add_group", xmlrpc.client.Fault(10, "BAD_NAME: celery-a"), "addProcessGroup.*BAD_NAME", 10),
        (
            "remove_group",
            xmlrpc.client.Fault(91, "STILL_RUNNING"),
            "did not remove the program 'celery-a'.*supervisorctl status celery-a",
            91,
        ),
        ("remove_group", xmlrpc.client.Fault(6, "SHUTDOWN_STATE"), "shutting down", 6),
    ],
)
def test_client_group_faults(method, fault, message, code):
    client = rpc.SupervisorClient("/s.sock", proxy=FakeProxy(lambda method, args: fault))
    args = () if method == "reload_config" else ("celery-a",)
    with pytest.raises(rpc.SupervisorError, match=message) as info:
        getattr(client, method)(*args)
    assert info.value.fault_code == code
