"""Changes to the broker's inventory, observed: a new password is applied without restarting the broker, a new
limit restarts it exactly once, and no password shows in `ps` on the broker or in the converge's output.

Runs playbooks/site.yml again for the `rabbitmq` group (a few minutes), then converges back.
"""

import secrets
import string
import subprocess
import threading
import time

import pytest
from broker_client import run_client
from stack_helpers import SITE, run_playbook

RESTART_HANDLER = "RUNNING HANDLER [celeryops.stack.rabbitmq : Restart RabbitMQ]"


def converge_broker(inventory, *options):
    result = run_playbook(inventory, SITE, "--limit", "rabbitmq", *options, timeout=1200)
    return result.stdout + result.stderr


def started_at(broker):
    """When systemd last started the broker's main process (changes on every start, and only then)."""
    return broker.check_output("systemctl show --property=ExecMainStartTimestampMonotonic --value rabbitmq-server")


class ArgvWatcher:
    """Samples every command line on the broker container (docker exec ps) while a converge runs."""

    def __init__(self, container):
        self.container, self.samples, self._stop = container, [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            ps = subprocess.run(
                ["docker", "exec", self.container, "ps", "-eo", "args"], capture_output=True, text=True, check=False
            )
            self.samples.append(ps.stdout)
            time.sleep(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def container(broker):
    return broker.ansible.get_variables().get("ansible_host", "broker")


@pytest.fixture(scope="module")
def admin(broker, credentials_dir):
    name = broker.ansible.get_variables().get("rabbitmq_admin_user", "admin")
    return name, credentials_dir / f"rabbitmq_{name}.password"


def api_status(broker, user, password):
    port = int(broker.ansible.get_variables().get("rabbitmq_management_port", 15672))
    return run_client(broker, "http", user, "/api/whoami", port, password, server="127.0.0.1", cafile="")["status"]


def test_new_password_is_applied_without_a_restart_and_never_shown(broker, inventory, container, admin):
    user, path = admin
    old = path.read_text().strip()
    new = "".join(secrets.choice(string.ascii_letters + string.digits) for _char in range(40))
    before = started_at(broker)
    path.write_text(new + "\n")
    try:
        with ArgvWatcher(container) as watcher:
            output = converge_broker(inventory)
    except BaseException:
        path.write_text(old + "\n")
        raise
    assert started_at(broker) == before, "the broker restarted for a password change"
    assert api_status(broker, user, new) == 200
    assert api_status(broker, user, old) == 401
    assert len(watcher.samples) > 5, "too few ps samples to judge"
    for secret in (new, old):
        assert secret not in output
        assert not [sample for sample in watcher.samples if secret in sample]
    assert path.stat().st_mode & 0o777 == 0o600


def test_new_limit_restarts_the_broker_exactly_once(broker, inventory):
    heartbeat = int(broker.ansible.get_variables().get("rabbitmq_heartbeat", 60))
    before = started_at(broker)
    output = converge_broker(inventory, "-e", f"rabbitmq_heartbeat={heartbeat + 1}")
    assert output.count(RESTART_HANDLER) == 1
    after = started_at(broker)
    assert after != before
    assert f"heartbeat = {heartbeat + 1}" in broker.file("/etc/rabbitmq/rabbitmq.conf").content_string
    broker.run_expect([0], "rabbitmq-diagnostics --quiet check_running")

    unchanged = converge_broker(inventory, "-e", f"rabbitmq_heartbeat={heartbeat + 1}")
    assert RESTART_HANDLER not in unchanged
    assert started_at(broker) == after

    converge_broker(inventory)
    assert f"heartbeat = {heartbeat}" in broker.file("/etc/rabbitmq/rabbitmq.conf").content_string
