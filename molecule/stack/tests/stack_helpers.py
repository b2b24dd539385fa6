"""Helpers shared by the stack's tests: the workers role's paths, the controller's ansible runs, the
inventory's worker lists, the PIDs supervisor reports on a host (a testinfra host) and HTTP from a host."""

import base64
import json
import os
import pathlib
import re
import subprocess
import textwrap
import time

import pytest

PROJECT = pathlib.Path(__file__).resolve().parents[3]
SITE = PROJECT / "playbooks" / "site.yml"

# The workers role's paths on the app hosts (docs/architecture.md) and the example project's app.
APP = "myproject.celery_config:app"
WRAPPER = "/opt/celery/bin/celery-run"
ENV_FILE = "/etc/celery/worker.env"
VENV_PYTHON = "/opt/celery/venv/bin/python"
APP_DIR = "/srv/myproject"
LEDGER_DIR = "/var/lib/celery/ledger"
# The lab CA's certificate as the roles install it: on the app hosts beside the workers' environment file, on the
# broker in RabbitMQ's TLS directory. Flower on app1 serves HTTPS with app1's certificate.
CA_FILE = "/etc/celery/broker-ca.crt"
BROKER_CA_FILE = "/etc/rabbitmq/tls/ca.crt"
FLOWER_URL = "https://app1:5555"

# Runs on a lab host: one HTTP request, prints the status code and the body as JSON. The request (method, URL,
# credentials) reaches python on stdin, from the shell's builtin printf, not in python's argv.
_HTTP = textwrap.dedent(
    """
    import base64, json, ssl, sys, urllib.error, urllib.request
    req = json.loads(sys.stdin.read())
    context = ssl.create_default_context(cafile=req["cafile"]) if req["url"].startswith("https:") else None
    data = b"" if req["method"] == "POST" else None
    request = urllib.request.Request(req["url"], data=data, method=req["method"])
    if req["auth"]:
        token = base64.b64encode(req["auth"].encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=req["timeout"], context=context) as response:
            status, body = response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as error:
        print(json.dumps({"status": None, "body": None, "error": type(error).__name__ + ": " + str(error)}))
        sys.exit(0)
    print(json.dumps({"status": status, "body": body}))
    """
)


def http_from(host, url, method="GET", auth=None, timeout=15, cafile=CA_FILE):
    """``{"status", "body"}`` of one request sent from ``host`` (basic auth from ``auth``, "user:password"); an
    https URL's certificate is verified against ``cafile`` on that host, and its name against the URL's."""
    payload = json.dumps({"url": url, "method": method, "auth": auth, "timeout": timeout, "cafile": cafile})
    script = base64.b64encode(_HTTP.encode()).decode()
    out = host.check_output(
        "printf '%%s' %s | python3 -c 'import base64,sys; exec(base64.b64decode(sys.argv[1]))' %s", payload, script
    )
    return json.loads(out)


# Runs on an app host with the workers' environment: sends tasks to one queue without waiting for results and
# prints their ids as one JSON list. The plan ([[seconds, count], ...]) arrives as argv[1].
SEND = """
import json, sys
from myproject.celery_config import app
plan = json.loads(sys.argv[1])
ids = []
with app.producer_or_acquire() as producer:
    for seconds, queue, *name in plan:
        task = name[0] if name else "core.sleep"
        ids.append(app.send_task(task, args=(seconds,), queue=queue, producer=producer).id)
print(json.dumps(ids))
"""


def send_tasks(host, plan, sender=SEND):
    """Send sleep tasks from ``host`` ([[seconds, queue], ...] for core.sleep, or [[seconds, queue, task name],
    ...]) without waiting for them, with the Python of ``sender`` (the plan in its sys.argv[1]); their ids."""
    script = f'set -a; . {ENV_FILE}; set +a; cd {APP_DIR}; exec {VENV_PYTHON} -c "$0" "$1"'
    cmd = host.run("sh -c %s %s %s", script, sender, json.dumps(plan))
    assert cmd.rc == 0, cmd.stderr[-3000:]
    return json.loads(cmd.stdout.strip().splitlines()[-1])


def ansible_env():
    """The environment of every ansible command the tests run: the project's ansible.cfg, no colours."""
    return {**os.environ, "ANSIBLE_CONFIG": str(PROJECT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}


def run_playbook(inventory, playbook, *args, extra_vars=None, timeout=1800, check=True):
    """ansible-playbook from the checkout; with ``check``, a failure fails the test with the output's tail."""
    argv = ["ansible-playbook", "-i", str(inventory), str(playbook), *args]
    if extra_vars is not None:
        argv += ["-e", f"@{extra_vars}"]
    result = subprocess.run(
        argv, cwd=PROJECT, env=ansible_env(), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check:
        assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-3000:]
    return result


def recap_changes(output):
    """{host: changed} from the PLAY RECAP of an ansible-playbook ``output`` (colour codes removed: molecule's
    environment asks Ansible for colours)."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    recap = plain[plain.rfind("PLAY RECAP") :]
    return {host: int(changed) for host, changed in re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", recap, re.M)}


def worker_lists(inventory):
    """The worker list of each app host in the inventory (workers_celery_workers from host or group vars)."""
    lists = {}
    for name in ("app1", "app2"):
        out = subprocess.run(
            ["ansible-inventory", "-i", str(inventory), "--host", name],
            cwd=PROJECT, env=ansible_env(), capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        lists[name] = json.loads(out)["workers_celery_workers"]
    return lists


def handover_node(node):
    """The node name of the handover of the worker ``node`` (`celery@<queue>.<host>` gives
    `celery@<queue>-handover.<host>`), which runs the worker's tasks while it restarts (workers_restart_overlap)."""
    name, rest = node.split("@", 1)
    queue, host = rest.split(".", 1)
    return f"{name}@{queue}-handover.{host}"


def ledger_entries(host, node, handover=True):
    """The completion ledger of ``node`` on ``host`` (one JSON object per finished task; [] when none yet), with
    its handover's unless ``handover`` is false: the worker's queue is served by one or the other."""
    nodes = [node, handover_node(node)] if handover else [node]
    paths = [f"{LEDGER_DIR}/{name}.jsonl" for name in nodes]
    out = host.run("cat" + " %s" * len(paths) + " 2>/dev/null || true", *paths).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def active_ids(host, node):
    """The ids of the tasks ``node`` runs now (`celery inspect active` on ``host``; [] when it does not answer)."""
    cmd = host.run("%s --app=%s inspect active --destination=%s --timeout=5 --json", WRAPPER, APP, node)
    replies = json.loads(cmd.stdout) if cmd.rc == 0 and cmd.stdout.strip() else {}
    if isinstance(replies, list):
        replies = {name: reply for item in replies for name, reply in item.items()}
    return [task["id"] for task in replies.get(node) or []]


def running_pid(host, program):
    """The main PID of ``program`` when supervisor reports it RUNNING, else None."""
    out = host.run("supervisorctl status %s", program).stdout
    match = re.search(r"RUNNING\s+pid (\d+)", out)
    return int(match.group(1)) if match else None


def wait_new_pid(host, program, old_pid, timeout=90):
    """Wait until ``program`` is RUNNING with a PID other than ``old_pid``; that PID."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pid = running_pid(host, program)
        if pid and pid != old_pid:
            return pid
        time.sleep(1)
    status = host.run("supervisorctl status %s", program).stdout
    pytest.fail(f"{program} is not RUNNING with a PID other than {old_pid} after {timeout} s: {status}")


def wait_completed(host, node, sent, timeout, settle=3):
    """Wait until every task id of ``sent`` is in ``node``'s ledger on ``host`` (at most ``timeout`` seconds), then
    ``settle`` seconds more for a late second run; returns (the ids of ``sent`` completed, each as often as it
    completed; the seconds the wait took)."""
    wanted = set(sent)
    began = time.monotonic()
    while True:
        done = [entry["id"] for entry in ledger_entries(host, node) if entry["id"] in wanted]
        if set(done) == wanted or time.monotonic() - began > timeout:
            break
        time.sleep(2)
    waited = time.monotonic() - began
    time.sleep(settle)
    return [entry["id"] for entry in ledger_entries(host, node) if entry["id"] in wanted], waited


def answering(host):
    """The node names of the workers that answer a ping sent from ``host``."""
    cmd = host.run("%s --app=%s inspect ping --timeout=5 --json", WRAPPER, APP)
    replies = json.loads(cmd.stdout) if cmd.rc == 0 and cmd.stdout.strip() else {}
    if isinstance(replies, list):
        replies = {name: reply for item in replies for name, reply in item.items()}
    return set(replies)
