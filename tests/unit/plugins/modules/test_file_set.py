# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Tests of the module through main(), on a real temporary directory, as whatever user runs the tests."""

from __future__ import annotations

import grp
import json
import os
import pwd
import stat

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.celeryops.stack.plugins.modules import file_set

USER = pwd.getpwuid(os.geteuid()).pw_name
GROUP = grp.getgrgid(os.getegid()).gr_name


def run_module(capsys, args, check_mode=False, diff=False):
    args = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    with patch_module_args(args), pytest.raises(SystemExit) as exit_info:
        file_set.main()
    return exit_info.value.code, json.loads(capsys.readouterr().out)


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def layout(tmp_path):
    """Module arguments for a directory tree and two files under ``tmp_path``."""
    top = tmp_path / "opt"
    return {
        "directories": [
            {"path": str(top), "owner": USER, "group": GROUP, "mode": "0755"},
            {"path": str(top / "etc"), "owner": USER, "group": GROUP, "mode": "750"},
        ],
        "files": [
            {
                "path": str(top / "etc" / "worker.env"),
                "content": "BROKER=amqp://s3cret\n",
                "owner": USER,
                "group": GROUP,
                "mode": "0600",
            },
            {
                "path": str(top / "run"),
                "content": '#!/bin/sh\nexec celery "$@"',
                "owner": str(os.geteuid()),
                "group": str(os.getegid()),
                "mode": "0755",
            },
        ],
    }


def test_creates_then_changes_nothing(capsys, tmp_path, layout):
    code, result = run_module(capsys, layout)
    assert code == 0
    paths = [item["path"] for item in layout["directories"] + layout["files"]]
    assert result["changed"] is True
    assert result["changed_paths"] == result["created_paths"] == paths
    assert "diff" not in result
    assert mode_of(paths[0]) == 0o755
    assert mode_of(paths[1]) == 0o750
    assert mode_of(paths[2]) == 0o600
    assert mode_of(paths[3]) == 0o755
    assert read(paths[2]) == "BROKER=amqp://s3cret\n"
    assert read(paths[3]) == '#!/bin/sh\nexec celery "$@"'
    for path in paths:
        info = os.lstat(path)
        assert (info.st_uid, info.st_gid) == (os.geteuid(), os.getegid())
    assert sorted(os.listdir(tmp_path / "opt" / "etc")) == ["worker.env"]

    code, result = run_module(capsys, layout, diff=True)
    assert code == 0
    assert result["changed"] is False
    assert result["changed_paths"] == result["created_paths"] == result["diff"] == []


def test_content_change_replaces_the_file(capsys, layout):
    run_module(capsys, layout)
    path = layout["files"][0]["path"]
    inode = os.stat(path).st_ino
    layout["files"][0]["content"] = "BROKER=amqp://other\n"
    code, result = run_module(capsys, layout)
    assert code == 0
    assert result["changed_paths"] == [path]
    assert result["created_paths"] == []
    assert os.stat(path).st_ino != inode
    assert read(path) == "BROKER=amqp://other\n"
    assert mode_of(path) == 0o600


def test_mode_only_change_keeps_the_file(capsys, layout):
    run_module(capsys, layout)
    path = layout["files"][0]["path"]
    inode = os.stat(path).st_ino
    layout["files"][0]["mode"] = "0640"
    layout["directories"][1]["mode"] = "2750"
    code, result = run_module(capsys, layout, diff=True)
    assert code == 0
    assert result["changed_paths"] == [layout["directories"][1]["path"], path]
    assert os.stat(path).st_ino == inode
    assert mode_of(path) == 0o640
    assert mode_of(layout["directories"][1]["path"]) == 0o2750
    before, after = result["diff"][1]["before"], result["diff"][1]["after"]
    assert before.replace("mode: 0600", "mode: 0640") == after


def test_check_mode_changes_nothing(capsys, tmp_path, layout):
    code, result = run_module(capsys, layout, check_mode=True, diff=True)
    assert code == 0
    assert result["changed"] is True
    assert len(result["created_paths"]) == 4
    assert os.listdir(tmp_path) == []

    run_module(capsys, layout)
    path = layout["files"][0]["path"]
    layout["files"][0]["content"] = "changed"
    layout["files"][1]["mode"] = "0700"
    code, result = run_module(capsys, layout, check_mode=True)
    assert result["changed_paths"] == [path, layout["files"][1]["path"]]
    assert read(path) == "BROKER=amqp://s3cret\n"
    assert mode_of(layout["files"][1]["path"]) == 0o755


def test_diff(capsys, layout):
    code, result = run_module(capsys, layout, check_mode=True, diff=True)
    assert code == 0
    assert [item["before_header"] for item in result["diff"]] == result["changed_paths"]
    assert result["diff"][0] == {
        "before_header": layout["directories"][0]["path"],
        "after_header": layout["directories"][0]["path"],
        "before": "state: absent\n",
        "after": f"state: directory\nowner: {USER}\ngroup: {GROUP}\nmode: 0755\n",
    }
    assert result["diff"][2]["before"] == ""
    assert result["diff"][2]["after"] == f"owner: {USER}\ngroup: {GROUP}\nmode: 0600\n\nBROKER=amqp://s3cret\n"
    # The numeric owner and group are shown by name.
    assert result["diff"][3]["after"] == f'owner: {USER}\ngroup: {GROUP}\nmode: 0755\n\n#!/bin/sh\nexec celery "$@"'
    # The content is in the diff only (and in the arguments Ansible echoes as invocation: hence task no_log).
    others = {key: value for key, value in result.items() if key not in ("diff", "invocation")}
    assert "s3cret" not in json.dumps(others)


def test_missing_parents_are_created_0755_whatever_the_umask(capsys, tmp_path):
    deep = tmp_path / "a" / "b" / "c"
    old_umask = os.umask(0o077)
    try:
        args = {"directories": [{"path": str(deep), "owner": USER, "group": GROUP, "mode": "0700"}]}
        code, result = run_module(capsys, args)
    finally:
        os.umask(old_umask)
    assert code == 0
    assert result["created_paths"] == [str(tmp_path / "a"), str(tmp_path / "a" / "b"), str(deep)]
    assert mode_of(tmp_path / "a") == mode_of(tmp_path / "a" / "b") == 0o755
    assert mode_of(deep) == 0o700


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"path": "relative/x"}, "files: path 'relative/x' is not absolute"),
        ({"mode": "0999"}, "files: mode '0999' is not 3 or 4 octal digits"),
        ({"mode": 416}, "files: mode 416 is not a string"),
        ({"owner": "no-such-user-here"}, "files: unknown user 'no-such-user-here' for path"),
        ({"group": "no-such-group-here"}, "files: unknown group 'no-such-group-here' for path"),
    ],
)
def test_bad_input_fails_before_any_change(capsys, tmp_path, layout, change, message):
    layout["files"][1].update(change)
    code, result = run_module(capsys, layout)
    assert code == 1
    assert result["failed"] is True
    assert message in result["msg"]
    assert result["changed"] is False
    assert result["changed_paths"] == []
    assert os.listdir(tmp_path) == []


def test_ansible_checks_the_suboptions(capsys, layout):
    del layout["files"][0]["content"]
    code, result = run_module(capsys, layout)
    assert code == 1
    assert "content" in result["msg"]


def test_non_regular_files_fail(capsys, tmp_path, layout):
    os.makedirs(tmp_path / "opt" / "etc")
    (tmp_path / "target").write_text("x")
    os.symlink(tmp_path / "target", layout["files"][0]["path"])
    code, result = run_module(capsys, layout)
    assert code == 1
    assert f"files: '{layout['files'][0]['path']}' exists and is a symlink, not a regular file" in result["msg"]
    assert os.listdir(tmp_path / "opt") == ["etc"]
    assert (tmp_path / "target").read_text() == "x"


def test_a_file_without_its_directory_fails(capsys, tmp_path, layout):
    del layout["directories"][1]
    code, result = run_module(capsys, layout)
    assert code == 1
    assert f"the directory of '{layout['files'][0]['path']}'" in result["msg"]
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------------------------------------------------------
# Documentation


def test_documentation_matches_the_argument_spec():
    doc = yaml.safe_load(file_set.DOCUMENTATION)
    spec = file_set.argument_spec()
    assert set(doc["options"]) == set(spec)
    for name, option in spec.items():
        documented = doc["options"][name]
        assert (documented["type"], documented["elements"], documented["default"]) == ("list", "dict", [])
        assert set(documented["suboptions"]) == set(option["options"])
        for key, suboption in option["options"].items():
            assert documented["suboptions"][key]["type"] == suboption["type"], key
            assert documented["suboptions"][key]["required"] is suboption["required"] is True
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"


def test_examples_use_the_fqcn_and_names():
    for task in yaml.safe_load(file_set.EXAMPLES):
        assert task["name"]
        assert "celeryops.stack.file_set" in task or "ansible.builtin.debug" in task


def test_return_documents_every_key(capsys, layout):
    returned = yaml.safe_load(file_set.RETURN)
    code, result = run_module(capsys, layout, check_mode=True, diff=True)
    assert code == 0
    # Ansible adds the arguments (invocation) and the warnings collected in this process (by earlier tests).
    assert set(result) - {"invocation", "warnings"} == set(returned)
    for value in returned.values():
        assert {"description", "returned", "type", "sample"} <= set(value)
