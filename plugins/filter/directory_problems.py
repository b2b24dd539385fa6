# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Why a directory a role creates and re-owns would hurt the host (documentation: directory_problems.yml)."""

from __future__ import annotations

import posixpath

# Trees (relative to /) whose content is lost at boot, shared with every user, or not a file system of its own.
_FORBIDDEN_TREES = {
    "tmp": "world-writable: anyone on the host could plant a file or link there",
    "var/tmp": "world-writable: anyone on the host could plant a file or link there",
    "dev/shm": "world-writable: anyone on the host could plant a file or link there",
    "run": "emptied at every boot",
    "var/run": "emptied at every boot",
    "proc": "not a directory of files",
    "sys": "not a directory of files",
    "dev": "not a directory of files",
    "boot": "the boot loader's",
    "root": "root's home, closed to the service account",
}
# Second-level directories of Debian's own layout (the role would change their owner and mode).
_SYSTEM_DIRECTORIES = frozenset(
    [
        "/etc/apt",
        "/etc/cron.d",
        "/etc/default",
        "/etc/init.d",
        "/etc/logrotate.d",
        "/etc/pam.d",
        "/etc/profile.d",
        "/etc/rabbitmq",
        "/etc/security",
        "/etc/ssh",
        "/etc/ssl",
        "/etc/sudoers.d",
        "/etc/supervisor",
        "/etc/systemd",
        "/usr/local",
        "/var/backups",
        "/var/cache",
        "/var/lib",
        "/var/local",
        "/var/lock",
        "/var/log",
        "/var/mail",
        "/var/opt",
        "/var/spool",
        "/var/www",
    ]
)
# /usr/local holds these for every program of the host.
_USR_LOCAL_SHARED = frozenset(["bin", "etc", "include", "lib", "man", "sbin", "share", "src"])


def _under(path, tree):
    return path == tree or path.startswith(tree + "/")


def directory_problem(path):
    """The reason ``path`` must not be a directory a role creates and re-owns, or "" when it may be."""
    if not isinstance(path, str) or not path:
        return "not a path"
    if not path.startswith("/"):
        return "not an absolute path"
    normal = posixpath.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if normal != path:
        return f"not in normal form (write {normal})"
    if path == "/":
        return "the root directory"
    for tree, why in _FORBIDDEN_TREES.items():
        if _under(path, "/" + tree):
            return f"under /{tree}, {why}"
    parts = path.strip("/").split("/")
    if len(parts) == 1:
        return "a top-level directory of the system"
    if path in _SYSTEM_DIRECTORIES:
        return "a directory of the system's own layout"
    if parts[0] == "usr" and (parts[1] != "local" or parts[2] in _USR_LOCAL_SHARED):
        return "a directory of the system's own layout (only /usr/local/<name> may be the application's)"
    return ""


def _path_and_attributes(entry):
    """A directory as a path, or as a mapping with ``path`` and the owner, group and mode the role gives it."""
    if isinstance(entry, dict):
        attributes = tuple(str(entry.get(key, "")) for key in ("owner", "group", "mode"))
        return entry.get("path"), attributes
    return entry, None


def directory_problems(directories):
    """Problems of a mapping ``{variable name: directory}``: one message per bad directory, naming its variable,
    and one per directory that two variables give different owners or modes. Empty when all may be used.
    """
    if not isinstance(directories, dict):
        raise TypeError(
            f"directory_problems expects a mapping of variable names to paths, got {type(directories).__name__}"
        )
    problems = []
    seen = {}
    for variable, entry in directories.items():
        path, attributes = _path_and_attributes(entry)
        why = directory_problem(path)
        if why:
            problems.append(f"{variable} ({path}): {why}")
            continue
        if path not in seen:
            seen[path] = (variable, attributes)
            continue
        other, other_attributes = seen[path]
        if attributes is None or other_attributes is None or attributes != other_attributes:
            problems.append(
                f"{other} and {variable} are the same directory ({path}), which each gives its own owner and mode"
            )
    return problems


class FilterModule:
    """celeryops.stack filters that check the directories a role manages."""

    def filters(self):
        return {"directory_problems": directory_problems}
