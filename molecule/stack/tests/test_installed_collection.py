"""The collection as users get it: the built tarball, installed outside the checkout, deploys and restarts the stack.

The tarball is built from the checkout and installed with ``ansible-galaxy collection install --offline`` (its
dependencies come from the ansible package, as on the controller of a user who cannot reach Galaxy) into a
temporary collections path. The playbooks then run by their full names from a directory outside the checkout,
with no project ansible.cfg, roles path or library: everything must resolve through the installed collection.
Against hosts the checkout has converged, its site playbook must change nothing; its restart playbook must bring
every worker back with a new process that answers.
"""

import json
import os
import subprocess

import pytest
from stack_helpers import PROJECT, recap_changes, running_pid, worker_lists

PROGRAM_PREFIX = "celery-"


def _env(collections):
    """A user's environment: none of the project's ANSIBLE_* settings, only the installed collections path and
    the two settings of the project's ansible.cfg the README tells users to copy: pipelining (it only saves round
    trips) and the inventory ignore patterns (the roles refuse a credentials directory Ansible would read as
    inventory, and the lab's lies inside its inventory directory).
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(collections),
        ANSIBLE_PIPELINING="true",
        ANSIBLE_INVENTORY_IGNORE_REGEX="^(credentials|tls)$",
        ANSIBLE_NOCOLOR="1",
    )
    return env


def _run(argv, workdir, collections, timeout=1800):
    result = subprocess.run(
        argv, cwd=workdir, env=_env(collections), capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout[-6000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(workdir, collections): the tarball installed into ``collections``; ``workdir`` is outside the checkout."""
    dist = tmp_path_factory.mktemp("dist")
    collections = tmp_path_factory.mktemp("collections")
    workdir = tmp_path_factory.mktemp("operator")
    assert PROJECT not in workdir.parents
    _run(["ansible-galaxy", "collection", "build", str(PROJECT), "--output-path", str(dist)], workdir, collections)
    (tarball,) = dist.glob("celeryops-stack-*.tar.gz")
    _run(
        ["ansible-galaxy", "collection", "install", str(tarball), "-p", str(collections), "--offline"],
        workdir,
        collections,
    )
    listed = json.loads(
        _run(["ansible-galaxy", "collection", "list", "celeryops.stack", "--format", "json"], workdir, collections)
    )
    assert list(listed) == [str(collections / "ansible_collections")], f"celeryops.stack resolves to {listed}"
    return workdir, collections


def _absolute(inventory):
    path = PROJECT / inventory if not os.path.isabs(inventory) else inventory
    return str(path)


def test_installed_site_playbook_changes_nothing_on_the_converged_stack(installed, inventory):
    workdir, collections = installed
    output = _run(["ansible-playbook", "celeryops.stack.site", "-i", _absolute(inventory)], workdir, collections)
    recap = recap_changes(output)
    assert set(recap) >= {"broker", "app1", "app2"}, output[-3000:]
    changed = {host: count for host, count in recap.items() if count}
    assert not changed, f"the installed collection changed {changed}:\n{output[-6000:]}"


def test_installed_restart_playbook_restarts_every_worker(installed, inventory, app1, app2):
    workdir, collections = installed
    hosts = {"app1": app1, "app2": app2}
    programs = {
        name: [PROGRAM_PREFIX + worker["name"] for worker in workers]
        for name, workers in worker_lists(inventory).items()
    }
    before = {(name, program): running_pid(hosts[name], program) for name in programs for program in programs[name]}
    assert all(before.values()), f"not every worker runs before the restart: {before}"
    _run(["ansible-playbook", "celeryops.stack.restart_workers", "-i", _absolute(inventory)], workdir, collections)
    # The module returns once each new process answered a ping: its PID is the one supervisor reports now.
    after = {key: running_pid(hosts[key[0]], key[1]) for key in before}
    same = [key for key in before if not after[key] or after[key] == before[key]]
    assert not same, f"not restarted by the installed collection's playbook: {same} (before {before}, after {after})"
