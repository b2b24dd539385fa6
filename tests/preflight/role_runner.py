"""Run one role of the collection on localhost in check mode (local connection, no facts), as the preflight tests
do: the variables come from a JSON file, the inventory may add other groups' hosts with their own variables."""

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

PROJECT = pathlib.Path(__file__).resolve().parents[2]


def _ansible_playbook():
    beside = pathlib.Path(sys.executable).parent / "ansible-playbook"
    found = str(beside) if beside.exists() else shutil.which("ansible-playbook")
    assert found, "ansible-playbook not found"
    return found


def run_playbook(argv, environment=None, timeout=300):
    """ansible-playbook ``argv`` from the project, with its ansible.cfg, no colours and ``environment`` added."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        **(environment or {}),
    }
    return subprocess.run(
        [_ansible_playbook(), *argv], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def run_role(tmp_path, role, extra_vars, *args, inventory=""):
    """ansible-playbook --check of ``role`` on localhost with ``extra_vars``; ``inventory`` is appended to the
    inventory (INI lines, e.g. a group of brokers with their host variables)."""
    (tmp_path / "play.yml").write_text(
        f"- name: Apply {role} to localhost\n  hosts: localhost\n  gather_facts: false\n"
        f"  roles:\n    - role: celeryops.stack.{role}\n"
    )
    (tmp_path / "vars.json").write_text(json.dumps(extra_vars))
    (tmp_path / "hosts.ini").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n{inventory}\n"
    )
    link = PROJECT / "collections" / "ansible_collections" / "celeryops" / "stack"
    assert link.exists(), "run `make collection-link` first"
    argv = ["--check", "-i", str(tmp_path / "hosts.ini"), "-e", "@" + str(tmp_path / "vars.json")]
    environment = {
        "ANSIBLE_COLLECTIONS_PATH": str(PROJECT / "collections"),
        "ANSIBLE_ROLES_PATH": str(PROJECT / "roles"),
        "ANSIBLE_FACT_CACHING": "memory",
    }
    return run_playbook([*argv, *args, str(tmp_path / "play.yml")], environment)


def changed(output):
    """The changed= count of localhost in the play recap."""
    match = re.search(r"^localhost\s*:.*\bchanged=(\d+)", output, re.M)
    assert match, output[-2000:]
    return int(match.group(1))


def failed_task(output):
    """The name of the task that failed first (a task fails with "fatal:", a loop item with "failed: [...] (item=")."""
    failure = re.search(r"^(fatal|failed): \[localhost\]", output, re.M)
    assert failure, output[-3000:]
    return re.findall(r"^TASK \[([^\]]*)\]", output[: failure.start()], re.M)[-1]


def refused(result, role, *names):
    """The output of a run of ``role`` that must have stopped in its argument validation or preflight: it failed,
    named each of ``names``, changed nothing, and its first failure is one of the role's checks."""
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for name in names:
        assert name in output, output[-3000:]
    assert changed(output) == 0, output[-3000:]
    assert re.match(rf"celeryops\.stack\.{role} : (Validating arguments|Check )", failed_task(output))
    return output
