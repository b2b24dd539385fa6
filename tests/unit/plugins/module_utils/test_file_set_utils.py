# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Unit tests of the input checks, the plan, the apply step and the diff, with a fake filesystem."""

from __future__ import annotations

import os
import stat

import pytest

from ansible_collections.celeryops.stack.plugins.module_utils import file_set as fs

USERS = {"root": 0, "celery": 999}
GROUPS = {"root": 0, "celery": 999, "adm": 4}


def directory(uid=0, gid=0, mode=0o755):
    return {"type": "directory", "uid": uid, "gid": gid, "mode": mode}


def regular(content=b"", uid=0, gid=0, mode=0o644):
    return {"type": "file", "uid": uid, "gid": gid, "mode": mode, "content": content}


class FakeFiles:
    """A filesystem in a dict: path -> state; symlinks have a ``target``. Mutations are recorded in ``calls``."""

    def __init__(self, entries=None):
        self.entries = {"/": directory(), "/etc": directory(), "/opt": directory()}
        self.entries.update(entries or {})
        self.calls = []
        self.fail_on = None

    def describe(self, path):
        entry = self.entries.get(path)
        return None if entry is None else {key: entry[key] for key in ("type", "uid", "gid", "mode")}

    def isdir(self, path):
        entry = self.entries.get(path)
        while entry is not None and entry["type"] == "symlink":
            entry = self.entries.get(entry["target"])
        return entry is not None and entry["type"] == "directory"

    def read(self, path):
        return self.entries[path]["content"]

    @staticmethod
    def uid(name):
        return USERS.get(name)

    @staticmethod
    def gid(name):
        return GROUPS.get(name)

    @staticmethod
    def user_name(uid):
        return {value: key for key, value in USERS.items()}.get(uid, str(uid))

    @staticmethod
    def group_name(gid):
        return {value: key for key, value in GROUPS.items()}.get(gid, str(gid))

    @staticmethod
    def ids():
        return 0, 0

    def _call(self, *call):
        if self.fail_on == call[:2]:
            raise PermissionError(13, "Permission denied", call[1])
        self.calls.append(call)

    def mkdir(self, path, mode):
        self._call("mkdir", path, oct(mode))
        self.entries[path] = directory(mode=mode)

    def set_attrs(self, path, uid, gid, mode):
        self._call("set_attrs", path, uid, gid, oct(mode))
        entry = self.entries[path]
        entry.update(mode=mode, **({} if uid is None else {"uid": uid, "gid": gid}))

    def write(self, path, data, uid, gid, mode):
        self._call("write", path, data, uid, gid, oct(mode))
        self.entries[path] = regular(data, uid, gid, mode)


def entry(path, owner="root", group="root", mode="0755", **extra):
    return dict(path=path, owner=owner, group=group, mode=mode, **extra)


ENV = entry("/etc/celery/worker.env", group="celery", mode="0640", content="BROKER=amqp://x\n")


# ---------------------------------------------------------------------------------------------------------------
# Input checks


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("0755", 0o755),
        ("755", 0o755),
        ("0640", 0o640),
        ("2750", 0o2750),
        ("02750", 0o2750),
        ("0600", 0o600),
        ("00755", 0o755),
    ],
)
def test_parse_mode(text, mode):
    assert fs.parse_mode(text) == mode


@pytest.mark.parametrize("text", ["999", "75", "12345", "0o755", "u=rwx", "", " 0755", "0755\n", "+x", "000755"])
def test_parse_mode_refuses_what_is_not_octal(text):
    with pytest.raises(ValueError, match="octal digits"):
        fs.parse_mode(text)


@pytest.mark.parametrize("value", [416, 755, None, True])
def test_parse_mode_refuses_numbers(value):
    with pytest.raises(ValueError, match="quote it"):
        fs.parse_mode(value)


def test_normalise_normalises_paths_and_modes():
    directories, files = fs.normalise([entry("/opt/celery/")], [entry("/etc//celery/../x", mode="600", content="")])
    assert directories == [entry("/opt/celery", mode=0o755)]
    assert files == [entry("/etc/x", mode=0o600, content="")]


@pytest.mark.parametrize(
    ("directories", "files", "messages"),
    [
        ([entry("opt/celery")], [], ["directories: path 'opt/celery' is not absolute"]),
        ([], [entry("worker.env", content="")], ["files: path 'worker.env' is not absolute"]),
        ([entry("/opt/celery", mode="999")], [], ["directories: mode '999' is not 3 or 4", "(path '/opt/celery')"]),
        ([], [entry("/etc/x", mode=640, content="")], ["files: mode 640 is not a string", "(path '/etc/x')"]),
        ([entry("/opt/a"), entry("/opt/a/")], [], ["directories: path '/opt/a' is listed twice"]),
        ([], [ENV, ENV], ["files: path '/etc/celery/worker.env' is listed twice"]),
        ([entry("/etc/celery/worker.env")], [ENV], ["files: path '/etc/celery/worker.env' is listed in both"]),
        # Every problem is reported at once.
        ([entry("a"), entry("/b", mode="8")], [], ["path 'a' is not absolute; directories: mode '8'"]),
    ],
)
def test_bad_input_fails_before_any_change(directories, files, messages):
    fake = FakeFiles()
    with pytest.raises(fs.FileSetError) as error:
        fs.run({"directories": directories, "files": files}, False, fake)
    for message in messages:
        assert message in error.value.message
    assert fake.calls == []
    assert error.value.changed_paths == []


# ---------------------------------------------------------------------------------------------------------------
# Plan


def plan(directories=(), files=(), entries=None):
    fake = FakeFiles(entries)
    directories, files = fs.normalise(list(directories), list(files))
    return fs.plan(directories, files, fake)


def test_missing_file_is_created_and_written():
    (step,) = plan(files=[ENV], entries={"/etc/celery": directory()})
    assert (step["create"], step["write"], step["attrs"]) == (True, True, True)
    assert step["before"] is None
    assert (step["uid"], step["gid"], step["mode"], step["data"]) == (0, 999, 0o640, b"BROKER=amqp://x\n")


def test_same_file_changes_nothing():
    entries = {"/etc/celery": directory(), ENV["path"]: regular(b"BROKER=amqp://x\n", 0, 999, 0o640)}
    (step,) = plan(files=[ENV], entries=entries)
    assert not fs.changes(step)


@pytest.mark.parametrize("content", [b"BROKER=amqp://y\n", b"BROKER=amqp://x", b"BROKER=amqp://x\n\n", b""])
def test_different_content_is_written(content):
    entries = {"/etc/celery": directory(), ENV["path"]: regular(content, 0, 999, 0o640)}
    (step,) = plan(files=[ENV], entries=entries)
    assert (step["create"], step["write"], step["attrs"]) == (False, True, False)
    assert step["old"] == content


@pytest.mark.parametrize(("uid", "gid", "mode"), [(999, 999, 0o640), (0, 0, 0o640), (0, 999, 0o644), (0, 999, 0o2640)])
def test_attributes_only(uid, gid, mode):
    entries = {"/etc/celery": directory(), ENV["path"]: regular(b"BROKER=amqp://x\n", uid, gid, mode)}
    (step,) = plan(files=[ENV], entries=entries)
    assert (step["create"], step["write"], step["attrs"]) == (False, False, True)
    assert step["before"]["owner"] == {0: "root", 999: "celery"}[uid]


def test_content_is_written_as_utf8_exactly():
    (step,) = plan(files=[entry("/etc/motd", content="café\r\nno newline")])
    assert step["data"] == "café\r\nno newline".encode()


def test_directories_missing_same_and_different():
    entries = {"/opt/same": directory(), "/opt/other": directory(999, 4, 0o700)}
    missing, same, other = plan([entry("/opt/new"), entry("/opt/same"), entry("/opt/other")], entries=entries)
    assert (missing["create"], missing["attrs"], missing["before"]) == (True, True, None)
    assert not fs.changes(same)
    assert (other["create"], other["attrs"]) == (False, True)
    assert other["before"] == {**directory(999, 4, 0o700), "owner": "celery", "group": "adm"}


def test_missing_parents_of_a_directory_get_steps_of_their_own():
    steps = plan([entry("/opt/celery/app/releases", owner="celery", mode="0750")])
    assert [(step["path"], step["uid"], step["mode"], step["create"]) for step in steps] == [
        ("/opt/celery", None, 0o755, True),
        ("/opt/celery/app", None, 0o755, True),
        ("/opt/celery/app/releases", 999, 0o750, True),
    ]


def test_a_parent_listed_after_its_child_is_fixed_after_the_implicit_creation():
    steps = plan([entry("/opt/celery/app"), entry("/opt/celery", group="celery", mode="0750")])
    assert [(step["path"], step["create"], step["attrs"]) for step in steps] == [
        ("/opt/celery", True, True),
        ("/opt/celery/app", True, True),
        ("/opt/celery", False, True),
    ]
    assert steps[2]["before"]["mode"] == 0o755
    assert fs.summary(steps) == (["/opt/celery", "/opt/celery/app"], ["/opt/celery", "/opt/celery/app"])


def test_a_file_may_go_into_a_directory_created_by_the_same_call():
    steps = plan([entry("/etc/celery")], [ENV])
    assert [step["path"] for step in steps] == ["/etc/celery", ENV["path"]]


def test_a_symlink_to_a_directory_is_a_fine_parent():
    entries = {
        "/run": directory(),
        "/var": directory(),
        "/var/run": {**directory(), "type": "symlink", "target": "/run"},
    }
    steps = plan([entry("/var/run/celery")], [entry("/var/run/x.pid", content="1")], entries=entries)
    assert [step["path"] for step in steps] == ["/var/run/celery", "/var/run/x.pid"]


# fmt: off
@pytest.mark.parametrize(
    ("directories", "files", "entries", "message"),
    [
        ([], [ENV], {}, "files: the directory of '/etc/celery/worker.env', '/etc/celery', does not exist"),
        ([], [ENV], {"/etc/celery": regular()}, "'/etc/celery', does not exist and is not created"),
        ([], [ENV], {"/etc/celery": directory(), ENV["path"]: directory()}, "is a directory, not a regular file"),
        ([], [ENV], {"/etc/celery": directory(), ENV["path"]: {**regular(), "type": "symlink", "target": "/etc/x"}},
         "files: '/etc/celery/worker.env' exists and is a symlink, not a regular file"),
        ([], [ENV], {"/etc/celery": directory(), ENV["path"]: {**regular(), "type": "special file"}},
         "is a special file, not a regular file"),
        ([entry("/opt/celery")], [], {"/opt/celery": regular()},
         "directories: '/opt/celery' exists and is a regular file, not a directory"),
        ([entry("/opt/celery")], [], {"/opt/celery": {**directory(), "type": "symlink", "target": "/opt"}},
         "'/opt/celery' exists and is a symlink, not a directory"),
        ([entry("/opt/x/y/z")], [], {"/opt/x": regular()}, "directories: '/opt/x', a parent of '/opt/x/y/z', is not"),
        # A file path that a directory of the same call would create as a parent.
        ([entry("/etc/a/b")], [entry("/etc/a", content="")], {}, "files: '/etc/a' exists and is a directory"),
        ([entry("/opt/celery", owner="nobody")], [], {}, "directories: unknown user 'nobody' for path '/opt/celery'"),
        ([], [{**ENV, "group": "celeryd"}], {"/etc/celery": directory()},
         "files: unknown group 'celeryd' for path '/etc/celery/worker.env'"),
    ],
)
# fmt: on
def test_problems_fail_the_plan(directories, files, entries, message):
    fake = FakeFiles(entries)
    with pytest.raises(fs.FileSetError) as error:
        fs.run({"directories": directories, "files": files}, False, fake)
    assert message in error.value.message
    assert fake.calls == []


def test_every_problem_is_reported_and_nothing_changes():
    directories = [entry("/opt/ok"), entry("/opt/bad", owner="nobody")]
    fake = FakeFiles()
    with pytest.raises(fs.FileSetError) as error:
        fs.run({"directories": directories, "files": [ENV]}, False, fake)
    assert "unknown user 'nobody'" in error.value.message
    assert "the directory of '/etc/celery/worker.env'" in error.value.message
    assert fake.calls == []
    assert "/opt/ok" not in fake.entries


# ---------------------------------------------------------------------------------------------------------------
# Apply, summary and diff


def test_apply_in_order():
    fake = FakeFiles({"/etc/celery": directory(0, 999, 0o755)})
    directories = [entry("/opt/celery/bin"), entry("/etc/celery", group="celery", mode="0750")]
    result = fs.run({"directories": directories, "files": [ENV]}, False, fake)
    assert fake.calls == [
        ("mkdir", "/opt/celery", "0o700"),
        ("set_attrs", "/opt/celery", None, None, "0o755"),
        ("mkdir", "/opt/celery/bin", "0o700"),
        ("set_attrs", "/opt/celery/bin", 0, 0, "0o755"),
        ("set_attrs", "/etc/celery", 0, 999, "0o750"),
        ("write", ENV["path"], b"BROKER=amqp://x\n", 0, 999, "0o640"),
    ]
    assert result["changed"] is True
    assert result["changed_paths"] == ["/opt/celery", "/opt/celery/bin", "/etc/celery", ENV["path"]]
    assert result["created_paths"] == ["/opt/celery", "/opt/celery/bin", ENV["path"]]
    again = fs.run({"directories": directories, "files": [ENV]}, False, fake)
    assert again["changed"] is False
    assert again["changed_paths"] == again["created_paths"] == again["diff"] == []


def test_attributes_only_are_set_in_place():
    fake = FakeFiles({"/etc/celery": directory(), ENV["path"]: regular(b"BROKER=amqp://x\n", 0, 0, 0o644)})
    result = fs.run({"files": [ENV]}, False, fake)
    assert fake.calls == [("set_attrs", ENV["path"], 0, 999, "0o640")]
    assert result["changed_paths"] == [ENV["path"]]
    assert result["created_paths"] == []


def test_check_mode_plans_but_changes_nothing():
    fake = FakeFiles()
    result = fs.run({"directories": [entry("/etc/celery")], "files": [ENV]}, True, fake)
    assert fake.calls == []
    assert result["changed"] is True
    assert result["changed_paths"] == result["created_paths"] == ["/etc/celery", ENV["path"]]


@pytest.mark.parametrize(
    ("entries", "created"),
    [
        # A fresh host in a check-mode run: the group and the directory come from earlier (unapplied) tasks.
        ({}, [ENV["path"]]),
        # The directory exists, the group not yet: the file would get it.
        ({"/etc/celery": directory(), ENV["path"]: regular(b"BROKER=amqp://x\n", 0, 0, 0o640)}, []),
    ],
)
def test_check_mode_tolerates_what_earlier_tasks_would_create(entries, created):
    fake = FakeFiles(entries)
    wanted = {**ENV, "group": "celeryd"}
    home = entry("/opt/celeryd", owner="celeryd", group="celeryd", mode="0750")
    result = fs.run({"directories": [home], "files": [wanted]}, True, fake)
    assert fake.calls == []
    assert result["changed"] is True
    assert result["changed_paths"] == ["/opt/celeryd", ENV["path"]]
    assert result["created_paths"] == ["/opt/celeryd", *created]
    assert [item["after_header"] for item in result["diff"]] == ["/opt/celeryd", ENV["path"]]
    assert "group: celeryd" in result["diff"][1]["after"]
    # The same input outside check mode fails, naming what is missing.
    with pytest.raises(fs.FileSetError) as error:
        fs.run({"directories": [home], "files": [wanted]}, False, fake)
    assert "unknown group 'celeryd'" in error.value.message
    assert fake.calls == []


def test_a_failure_reports_what_was_changed_before_it():
    fake = FakeFiles({"/etc/celery": directory()})
    fake.fail_on = ("write", ENV["path"])
    with pytest.raises(fs.FileSetError) as error:
        fs.run({"directories": [entry("/opt/celery")], "files": [ENV]}, False, fake)
    assert error.value.message == f"file '{ENV['path']}': [Errno 13] Permission denied: '{ENV['path']}'"
    assert error.value.changed_paths == error.value.created_paths == ["/opt/celery"]


def test_a_read_error_while_planning_fails_cleanly():
    fake = FakeFiles({"/etc/celery": directory(), ENV["path"]: regular()})

    def unreadable(path):
        raise PermissionError(13, "Permission denied", path)

    fake.read = unreadable
    with pytest.raises(fs.FileSetError, match="cannot read the current state: .*Permission denied"):
        fs.run({"files": [ENV]}, False, fake)


def test_diff_of_files_and_directories():
    entries = {
        "/etc/celery": directory(),
        ENV["path"]: regular(b"BROKER=amqp://old\n", 0, 0, 0o644),
        "/opt/same": directory(),
    }
    new = entry("/etc/celery/new.env", mode="0600", content="A=1")
    result = fs.run(
        {"directories": [entry("/opt/same"), entry("/opt/new", mode="2750")], "files": [ENV, new]},
        True,
        FakeFiles(entries),
    )
    assert result["diff"] == [
        {
            "before_header": "/opt/new",
            "after_header": "/opt/new",
            "before": "state: absent\n",
            "after": "state: directory\nowner: root\ngroup: root\nmode: 2750\n",
        },
        {
            "before_header": ENV["path"],
            "after_header": ENV["path"],
            "before": "owner: root\ngroup: root\nmode: 0644\n\nBROKER=amqp://old\n",
            "after": "owner: root\ngroup: celery\nmode: 0640\n\nBROKER=amqp://x\n",
        },
        {
            "before_header": new["path"],
            "after_header": new["path"],
            "before": "",
            "after": "owner: root\ngroup: root\nmode: 0600\n\nA=1",
        },
    ]
    assert all("BROKER" not in str(value) for key, value in result.items() if key != "diff")


# ---------------------------------------------------------------------------------------------------------------
# The real filesystem layer


def test_local_ids_accept_names_and_numbers():
    local = fs.LocalFiles()
    assert local.uid("root") == 0
    assert local.gid("root") == 0
    assert local.uid("4242") == 4242
    assert local.gid("4242") == 4242
    assert local.uid("no-such-user-here") is None
    assert local.gid("no-such-group-here") is None
    assert local.uid("-1") is None
    assert local.user_name(0) == "root"
    assert local.user_name(4_000_000) == "4000000"


def test_local_describe(tmp_path):
    local = fs.LocalFiles()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    os.mkfifo(tmp_path / "fifo")
    os.chmod(tmp_path / "file", 0o640)
    assert local.describe(str(tmp_path / "file"))["type"] == "file"
    assert local.describe(str(tmp_path / "file"))["mode"] == 0o640
    assert local.describe(str(tmp_path))["type"] == "directory"
    assert local.describe(str(tmp_path / "link"))["type"] == "symlink"
    assert local.describe(str(tmp_path / "fifo"))["type"] == "special file"
    assert local.describe(str(tmp_path / "missing")) is None
    assert local.describe(str(tmp_path / "file" / "below")) is None


def test_local_write_is_never_readable_by_others(tmp_path, monkeypatch):
    """The temporary file is 0600 from its creation and has its final mode before it replaces the path."""
    seen = []
    real_mkstemp, real_replace = fs.tempfile.mkstemp, os.replace

    def mkstemp(**kwargs):
        fd, temp = real_mkstemp(**kwargs)
        seen.append(("created", os.path.dirname(temp), stat.S_IMODE(os.fstat(fd).st_mode)))
        return fd, temp

    def replace(source, target):
        with open(source, "rb") as handle:
            seen.append(("replace", stat.S_IMODE(os.fstat(handle.fileno()).st_mode), handle.read()))
        real_replace(source, target)

    monkeypatch.setattr(fs.tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(fs.os, "replace", replace)
    target = tmp_path / "secret"
    target.write_text("old")
    os.chmod(target, 0o644)
    fs.LocalFiles.write(str(target), b"s3cret\n", os.geteuid(), os.getegid(), 0o600)
    assert seen == [("created", str(tmp_path), 0o600), ("replace", 0o600, b"s3cret\n")]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_bytes() == b"s3cret\n"
    assert os.listdir(tmp_path) == ["secret"]


def test_local_write_cleans_up_after_a_failure(tmp_path, monkeypatch):
    def replace(source, target):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(fs.os, "replace", replace)
    target = tmp_path / "kept"
    target.write_text("old")
    with pytest.raises(OSError, match="cross-device"):
        fs.LocalFiles.write(str(target), b"new", os.geteuid(), os.getegid(), 0o644)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["kept"]
