# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Directories and small text files, with owner, group and mode, in one module call.

The module ``celeryops.stack.file_set`` is a thin shell around this file:

* :func:`normalise` checks the input (absolute paths, octal modes, each path listed once);
* :func:`plan` compares the wanted state with the current one, read through a filesystem object, and changes
  nothing: every problem it finds fails the call before the first change;
* :func:`apply` carries the plan out, :func:`summary` and :func:`build_diff` report it.

:class:`LocalFiles` is the real filesystem and user database; the tests pass fakes with the same methods.
Only the Python standard library is used; the code runs on the managed host (Python 3.8+).
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
import tempfile

MODE_PATTERN = re.compile(r"0?[0-7]{3,4}")
NUMERIC_ID = re.compile(r"[0-9]+")
#: mode of the missing parents of a listed directory, which this module creates with default ownership
PARENT_MODE = 0o755
#: mode a listed directory is created with, before its owner, group and mode are set
NEW_DIRECTORY_MODE = 0o700


class FileSetError(Exception):
    """A problem that fails the module; the paths say what had been changed before it."""

    def __init__(self, message, changed_paths=(), created_paths=()):
        super().__init__(message)
        self.message = message
        self.changed_paths = list(changed_paths)
        self.created_paths = list(created_paths)


class LocalFiles:
    """The filesystem and user database of the managed host."""

    @staticmethod
    def describe(path):
        """``None`` when ``path`` is missing, else its type (not following a symlink), uid, gid and mode."""
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if stat.S_ISDIR(info.st_mode):
            kind = "directory"
        elif stat.S_ISREG(info.st_mode):
            kind = "file"
        else:
            kind = "symlink" if stat.S_ISLNK(info.st_mode) else "special file"
        return {"type": kind, "uid": info.st_uid, "gid": info.st_gid, "mode": stat.S_IMODE(info.st_mode)}

    isdir = staticmethod(os.path.isdir)

    @staticmethod
    def read(path):
        with open(path, "rb") as handle:
            return handle.read()

    @staticmethod
    def uid(name):
        """The uid of a user name or of an all-digit string; ``None`` when unknown."""
        try:
            return pwd.getpwnam(name).pw_uid
        except KeyError:
            return int(name) if NUMERIC_ID.fullmatch(name) else None

    @staticmethod
    def gid(name):
        try:
            return grp.getgrnam(name).gr_gid
        except KeyError:
            return int(name) if NUMERIC_ID.fullmatch(name) else None

    @staticmethod
    def user_name(uid):
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    @staticmethod
    def group_name(gid):
        try:
            return grp.getgrgid(gid).gr_name
        except KeyError:
            return str(gid)

    @staticmethod
    def ids():
        """The uid and gid that new parent directories get."""
        return os.geteuid(), os.getegid()

    @staticmethod
    def mkdir(path, mode):
        os.mkdir(path, mode)

    @staticmethod
    def set_attrs(path, uid, gid, mode):
        """Owner and group (unless ``uid`` is None), then the mode: a chown may clear setuid and setgid bits."""
        if uid is not None:
            os.chown(path, uid, gid)
        os.chmod(path, mode)

    @staticmethod
    def write(path, data, uid, gid, mode):
        """Replace ``path`` atomically by a file that is 0600 (mkstemp) until it has its owner and mode."""
        directory, name = os.path.split(path)
        fd, temp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fchown(handle.fileno(), uid, gid)
                os.fchmod(handle.fileno(), mode)
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            if os.path.lexists(temp):
                os.unlink(temp)
            raise
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def parse_mode(value):
    """``"0750"``, ``"750"``, ``"2750"`` or ``"02750"`` -> the int; raises ValueError otherwise.

    A number is refused: YAML reads an unquoted ``0640`` as 416, which is no mode anyone meant.
    """
    if not isinstance(value, str):
        raise ValueError(f"mode {value!r} is not a string: quote it, like '0640' (YAML reads an unquoted 0640 as 416)")
    if not MODE_PATTERN.fullmatch(value):
        raise ValueError(f"mode '{value}' is not 3 or 4 octal digits with an optional leading 0, like '0640'")
    return int(value, 8)


def normalise(directories, files):
    """Check the module input; return ``(directories, files)`` with normalised paths and int modes."""
    errors, seen, result = [], {}, []
    for option, items in (("directories", directories or []), ("files", files or [])):
        entries = []
        for item in items:
            path = item["path"]
            if not os.path.isabs(path):
                errors.append(f"{option}: path '{path}' is not absolute")
                continue
            path = os.path.normpath(path)
            if path in seen:
                where = "twice" if seen[path] == option else "in both directories and files"
                errors.append(f"{option}: path '{path}' is listed {where}")
            seen.setdefault(path, option)
            try:
                entries.append(dict(item, path=path, mode=parse_mode(item["mode"])))
            except ValueError as exc:
                errors.append(f"{option}: {exc} (path '{path}')")
        result.append(entries)
    if errors:
        raise FileSetError("; ".join(errors))
    return result[0], result[1]


def _label(kind):
    return "regular file" if kind == "file" else kind


def _named(state, fs):
    """A described state with the owner and group names added, for the diff."""
    return dict(state, owner=fs.user_name(state["uid"]), group=fs.group_name(state["gid"]))


def plan(directories, files, fs, check_mode=False):
    """Compare the wanted state with the current one, changing nothing; return the steps, in order.

    A step is a dict with ``kind`` (directory or file), ``path``, the wanted ``uid``, ``gid``, ``mode``, ``owner``
    and ``group``, ``before`` (the state, or None when missing), and what to do: ``create``, ``write`` (content),
    ``attrs`` (owner, group, mode). Missing parents of a listed directory get steps of their own (``uid`` None).
    Raises FileSetError listing every problem found.

    In ``check_mode`` an owner or group that does not exist yet, or a missing directory of a file, is no error:
    earlier tasks of the same check-mode run would have created them. Such a path is reported as changing.
    """
    errors, steps, overlay = [], [], {}  # overlay: path -> the state the earlier steps give it

    def state(path):
        return overlay[path] if path in overlay else fs.describe(path)

    def is_directory(path):
        current = state(path)
        return current is not None and (current["type"] == "directory" or path not in overlay and fs.isdir(path))

    euid, egid = fs.ids()
    parent_state = _named({"type": "directory", "uid": euid, "gid": egid, "mode": PARENT_MODE}, fs)
    for kind, option, items in (("directory", "directories", directories), ("file", "files", files)):
        for item in items:
            path = item["path"]
            uid, gid = fs.uid(item["owner"]), fs.gid(item["group"])
            for value, what, name in ((uid, "user", item["owner"]), (gid, "group", item["group"])):
                if value is None and not check_mode:
                    errors.append(f"{option}: unknown {what} '{name}' for path '{path}'")
            current = state(path)
            if current is not None and current["type"] != kind:
                errors.append(f"{option}: '{path}' exists and is a {_label(current['type'])}, not a {_label(kind)}")
                continue
            parent = os.path.dirname(path)
            if kind == "file" and not is_directory(parent):
                if check_mode and state(parent) is None:
                    steps.append(_step(item, kind, None, uid, gid, fs))
                    continue
                errors.append(
                    f"files: the directory of '{path}', '{parent}', does not exist and is not created by this "
                    "task's directories (or is not a directory)"
                )
                continue
            if kind == "directory" and current is None:
                missing = []
                while state(parent) is None and parent != os.path.dirname(parent):
                    missing.insert(0, parent)
                    parent = os.path.dirname(parent)
                if not is_directory(parent):
                    errors.append(f"directories: '{parent}', a parent of '{path}', is not a directory")
                    continue
                for missing_path in missing:
                    overlay[missing_path] = parent_state
                    parent_step = dict(parent_state, kind="directory", path=missing_path, uid=None, gid=None)
                    steps.append(dict(parent_step, before=None, create=True, write=False, attrs=True))
            if None in (uid, gid) and not check_mode:
                continue
            step = _step(item, kind, current, uid, gid, fs)
            if None not in (uid, gid):
                overlay[path] = {key: step[key] for key in ("type", "uid", "gid", "mode", "owner", "group")}
            steps.append(step)
    if errors:
        raise FileSetError("; ".join(errors))
    return steps


def _step(item, kind, current, uid, gid, fs):
    """The step from ``current`` (None: missing) to the wanted state of ``item``.

    ``uid`` or ``gid`` is None for an owner or group that does not exist yet (check mode only): the path's owner
    and group would change then, and the diff shows the names asked for.
    """
    wanted = {"type": kind, "uid": uid, "gid": gid, "mode": item["mode"]}
    known = None not in (uid, gid)
    step = _named(wanted, fs) if known else dict(wanted, owner=item["owner"], group=item["group"])
    step.update(path=item["path"], kind=kind, create=current is None, write=False)
    step["before"] = None if current is None else _named(current, fs)
    step["attrs"] = current is None or not known or any(current[key] != wanted[key] for key in ("uid", "gid", "mode"))
    if kind == "file":
        step["data"] = item["content"].encode("utf-8")
        step["old"] = None if current is None else fs.read(item["path"])
        step["write"] = step["data"] != step["old"]
    return step


def changes(step):
    return step["create"] or step["write"] or step["attrs"]


def summary(steps):
    """``(changed_paths, created_paths)`` of the steps, in order, each path once."""
    changed = [step["path"] for step in steps if changes(step)]
    created = [step["path"] for step in steps if step["create"]]
    return list(dict.fromkeys(changed)), created


def apply(steps, fs):
    """Carry the steps out in order; a failure raises FileSetError with the paths changed before it."""
    done = []
    for step in steps:
        if not changes(step):
            continue
        path = step["path"]
        try:
            if step["write"]:
                fs.write(path, step["data"], step["uid"], step["gid"], step["mode"])
            else:
                if step["create"]:
                    fs.mkdir(path, NEW_DIRECTORY_MODE)
                fs.set_attrs(path, step["uid"], step["gid"], step["mode"])
        except OSError as exc:
            changed, created = summary(done)
            raise FileSetError(f"{step['kind']} '{path}': {exc}", changed, created) from exc
        done.append(step)


def _text(state, kind, content=None):
    if state is None:
        return "" if kind == "file" else "state: absent\n"
    text = f"owner: {state['owner']}\ngroup: {state['group']}\nmode: {state['mode']:04o}\n"
    if kind == "file":
        return f"{text}\n{content}"
    return f"state: directory\n{text}"


def build_diff(steps):
    """One ``before``/``after`` text per changed path: state, owner, group, mode, and the content of files."""
    diff = []
    for step in steps:
        if not changes(step):
            continue
        old = step.get("old")
        before = _text(step["before"], step["kind"], None if old is None else old.decode("utf-8", "replace"))
        after = _text(step, step["kind"], step["data"].decode("utf-8") if step["kind"] == "file" else None)
        diff.append({"before_header": step["path"], "after_header": step["path"], "before": before, "after": after})
    return diff


def run(params, check_mode, fs=None):
    """Check the input, plan, then apply unless ``check_mode``; return the result. Raises FileSetError."""
    fs = fs or LocalFiles()
    directories, files = normalise(params.get("directories"), params.get("files"))
    try:
        steps = plan(directories, files, fs, check_mode)
    except (OSError, ValueError) as exc:
        raise FileSetError(f"cannot read the current state: {exc}") from exc
    if not check_mode:
        apply(steps, fs)
    changed_paths, created_paths = summary(steps)
    return {
        "changed": bool(changed_paths),
        "changed_paths": changed_paths,
        "created_paths": created_paths,
        "diff": build_diff(steps),
    }
