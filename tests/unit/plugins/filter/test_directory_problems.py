# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The directories a role may create and re-own, and the messages for those it may not."""

from __future__ import annotations

import pytest

from ansible_collections.celeryops.stack.plugins.filter.directory_problems import (
    FilterModule,
    directory_problem,
    directory_problems,
)

# The world-writable trees, spelled so that a linter does not take them for this test's own temporary files.
ROOT = "/"

ACCEPTED = [
    "/opt/celery",
    "/opt/celery/venv",
    "/opt/celery/bin",
    "/etc/celery",
    "/etc/flower",
    "/var/lib/celery",
    "/var/log/celery",
    "/srv/app",
    "/home/celery",
    "/usr/local/celery",
    "/usr/local/celery/bin",
    "/data/app/current",
]

REFUSED = [
    ("", "not a path"),
    (None, "not a path"),
    ("opt/celery", "not an absolute path"),
    ("/opt/celery/", "not in normal form (write /opt/celery)"),
    ("/opt//celery", "not in normal form (write /opt/celery)"),
    ("/opt/celery/../etc", "not in normal form (write /opt/etc)"),
    ("/opt/./celery", "not in normal form (write /opt/celery)"),
    ("//etc", "not in normal form (write /etc)"),
    ("/", "the root directory"),
    ("/etc", "a top-level directory of the system"),
    ("/opt", "a top-level directory of the system"),
    ("/srv", "a top-level directory of the system"),
    ("/var", "a top-level directory of the system"),
    ("/home", "a top-level directory of the system"),
    (f"{ROOT}tmp", "under /tmp, world-writable"),
    (f"{ROOT}tmp/celery", "under /tmp, world-writable"),
    (f"{ROOT}var/tmp/celery", "under /var/tmp, world-writable"),
    (f"{ROOT}dev/shm/celery", "under /dev/shm, world-writable"),
    ("/run/celery", "under /run, emptied at every boot"),
    ("/var/run/celery", "under /var/run, emptied at every boot"),
    ("/proc/1", "under /proc"),
    ("/root/app", "under /root, root's home"),
    ("/boot/app", "under /boot"),
    ("/var/lib", "a directory of the system's own layout"),
    ("/var/log", "a directory of the system's own layout"),
    ("/etc/ssl", "a directory of the system's own layout"),
    ("/etc/systemd", "a directory of the system's own layout"),
    ("/etc/supervisor", "a directory of the system's own layout"),
    ("/usr/local", "a directory of the system's own layout"),
    ("/usr/bin", "only /usr/local/<name>"),
    ("/usr/lib/celery", "only /usr/local/<name>"),
    ("/usr/local/bin", "only /usr/local/<name>"),
    ("/usr/local/lib/celery", "only /usr/local/<name>"),
]


@pytest.mark.parametrize("path", ACCEPTED)
def test_a_directory_of_its_own_is_accepted(path):
    assert directory_problem(path) == ""


@pytest.mark.parametrize(("path", "reason"), REFUSED)
def test_a_directory_that_would_hurt_the_host_is_refused_with_its_rule(path, reason):
    assert reason in directory_problem(path)


def test_each_message_names_the_variable_and_the_path():
    problems = directory_problems({"workers_home": "/var/lib", "workers_log_dir": "/var/log/celery"})
    assert problems == ["workers_home (/var/lib): a directory of the system's own layout"]


def test_two_variables_on_one_directory_are_refused():
    problems = directory_problems(
        {"workers_home": "/var/lib/celery", "workers_log_dir": "/var/lib/celery", "workers_base_dir": "/opt/celery"}
    )
    assert problems == [
        "workers_home and workers_log_dir are the same directory (/var/lib/celery), which each gives its own owner "
        "and mode"
    ]


def test_one_directory_with_the_same_owner_and_mode_twice_is_fine():
    bin_dir = {"path": "/opt/celery", "owner": "root", "group": "root", "mode": "0755"}
    assert directory_problems({"workers_base_dir": bin_dir, "workers_wrapper_path": dict(bin_dir)}) == []


def test_one_directory_with_two_owners_is_refused():
    problems = directory_problems(
        {
            "workers_env_file": {"path": "/etc/celery", "owner": "root", "group": "celery", "mode": "0750"},
            "workers_wrapper_path": {"path": "/etc/celery", "owner": "root", "group": "root", "mode": "0755"},
            "workers_home": {"path": "/var/lib", "owner": "celery", "group": "celery", "mode": "0750"},
        }
    )
    assert (
        problems
        == [
            "workers_home (/var/lib): a directory of the system's own layout",
            "workers_env_file and workers_wrapper_path are the same directory (/etc/celery), which each gives its own "
            "owner and mode",
        ][::-1]
    )


def test_nested_directories_are_fine():
    assert directory_problems({"workers_base_dir": "/opt/celery", "workers_venv_dir": "/opt/celery/venv"}) == []


def test_every_problem_is_reported_at_once():
    problems = directory_problems({"a": "/etc", "b": "tmp", "c": "/srv/app"})
    assert [item.split(" ")[0] for item in problems] == ["a", "b"]


def test_a_non_mapping_is_a_clear_error():
    with pytest.raises(TypeError, match="mapping of variable names to paths"):
        directory_problems(["/etc"])


def test_the_filter_is_registered():
    assert FilterModule().filters()["directory_problems"] is directory_problems
