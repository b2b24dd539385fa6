# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""supervisord's XML-RPC interface, reached over its UNIX socket (stdlib only).

Part of the module ``celeryops.stack.celery_worker``: process state names and fault codes, the errors the module
reports, and :class:`SupervisorClient`, the few RPCs it needs with faults turned into :class:`SupervisorError`.
The Celery side is in ``celery_cli``, the state machine in ``celery_supervisor``.
"""

from __future__ import annotations

import errno
import http.client
import os
import socket
import xmlrpc.client

DEFAULT_SOCKET = "/var/run/supervisor.sock"

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
FAULT_ALREADY_ADDED = 90
FAULT_STILL_RUNNING = 91
FAULT_CANT_REREAD = 92


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


def make_namespec(group, name):
    """Return the name supervisor's RPC uses for a process: ``name`` for a standalone program, else ``group:name``."""
    if not group or group == name:
        return name
    return f"{group}:{name}"


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

    def reload_config(self):
        """``reloadConfig``: re-read the configuration files into supervisord's options, like ``supervisorctl
        reread`` (no process is touched). Returns ``(added, changed, removed)``, lists of group names that differ
        from the groups supervisord runs."""
        try:
            result = self._call("reloadConfig")
        except SupervisorError as exc:
            if exc.fault_code == FAULT_CANT_REREAD:
                raise SupervisorError(
                    f"supervisord cannot read its configuration files ({exc.message}); no program was changed. "
                    "Fix the file it names (`supervisorctl reread` shows the same error).",
                    exc.fault_code,
                ) from None
            raise
        added, changed, removed = result[0]
        return list(added), list(changed), list(removed)

    def add_group(self, name):
        """``addProcessGroup``: run the group as supervisord's options declare it (autostart applies).

        Returns False when supervisord already runs the group (``ALREADY_ADDED``: someone else added it).
        """
        try:
            return self._call("addProcessGroup", name)
        except SupervisorError as exc:
            if exc.fault_code == FAULT_ALREADY_ADDED:
                return False
            raise

    def remove_group(self, name):
        """``removeProcessGroup`` of a group whose processes are all stopped.

        Returns False when supervisord no longer has the group (``BAD_NAME``: already removed).
        """
        try:
            return self._call("removeProcessGroup", name)
        except SupervisorError as exc:
            if exc.fault_code == FAULT_BAD_NAME:
                return False
            if exc.fault_code == FAULT_STILL_RUNNING:
                raise SupervisorError(
                    f"supervisord did not remove the program '{name}': its process runs again (STILL_RUNNING; "
                    f"did something start it meanwhile?). Check `supervisorctl status {name}` and run the task again.",
                    exc.fault_code,
                ) from None
            raise
