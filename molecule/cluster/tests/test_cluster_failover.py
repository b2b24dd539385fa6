"""Tasks keep flowing, each run once, while a node of the cluster is down: the leader of the task queue stopped
under load, and the rolling maintenance playbook. While the leader is stopped, monitoring reports that node down,
and only that node.

Tasks are published from app1 to the queue `celery` (a quorum queue), which app2's prefork worker consumes; both
connect through CELERY_BROKER_URL, which lists every node. Every task is counted by id in the worker's ledger.
"""

import re
import threading
import time

import pytest
from cluster_helpers import NODES, api, cluster_status
from conftest import PROJECT
from monitoring_helpers import AlertClock, prometheus_state
from stack_helpers import ledger_entries, run_playbook, send_tasks, wait_completed

NODE = "celery@celery.app2"
METRICS_PORT = 15691  # each node's HTTPS metrics, Prometheus's target (the monitoring role's default)
MAINTENANCE = PROJECT / "playbooks" / "rabbitmq_maintenance.yml"
BATCH = [[0.05, "celery"]] * 25  # 25 short tasks, published at once


class Stream:
    """Publishes a batch of tasks from app1 every second in a thread, until stopped; the ids sent and the errors."""

    def __init__(self, app1):
        self.app1, self.sent, self.errors = app1, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sent += send_tasks(self.app1, BATCH)
            except AssertionError as error:  # a failed publish is recorded, the stream goes on
                self.errors.append(str(error)[-500:])
            time.sleep(1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=120)


def check_runs(app2, stream):
    """Every task sent ran; one that ran twice was redelivered by the broker (its node closed the worker's connection
    before the task's acknowledgement arrived: at-least-once delivery). The wait's seconds and those tasks."""
    done, waited = wait_completed(app2, NODE, stream.sent, timeout=180)
    lost = set(stream.sent) - set(done)
    assert not lost, f"{len(lost)} of {len(stream.sent)} tasks never ran (errors while publishing: {stream.errors})"
    assert not stream.errors, stream.errors
    twice = {task for task in done if done.count(task) > 1}
    runs = [entry for entry in ledger_entries(app2, NODE) if entry["id"] in twice]
    unexplained = {task for task in twice if not any(run.get("redelivered") for run in runs if run["id"] == task)}
    assert not unexplained, f"{len(unexplained)} tasks ran twice without a redelivery: {sorted(unexplained)[:5]}"
    return waited, twice


@pytest.mark.reliability(
    "Cluster of three: the node leading the queue `celery` stopped for 30 s while tasks are published to it "
    "every second, then started",
    "the queue gets a leader on another node; publishing goes on without an error; every task runs, by id, once or, "
    "when the broker redelivered it, twice; RabbitMQNodeDown fires for that node only and resolves once it is back; "
    "the node rejoins",
)
def test_the_leader_stopped_under_load_loses_no_task(brokers, app1, app2, monitor, admin_auth, vhost, observe):
    leader = api(brokers["broker1"], f"queues/{vhost}/celery", admin_auth)["leader"]
    assert leader in NODES, leader
    name = leader.split("@", 1)[1]
    other = next(host for host in brokers if host != name)
    others_down = []
    with Stream(app1) as stream:
        time.sleep(10)
        brokers[name].run_expect([0], "systemctl stop rabbitmq-server")
        stopped = time.monotonic()
        alert = AlertClock(monitor, [("RabbitMQNodeDown", {"job": "rabbitmq", "instance": f"{name}:{METRICS_PORT}"})])
        try:
            alert.wait_fired(timeout=90)
            others_down = [
                host
                for host in brokers
                if host != name
                and prometheus_state(monitor, "RabbitMQNodeDown", {"instance": f"{host}:{METRICS_PORT}"}) is not None
            ]
            time.sleep(max(0.0, 30 - (time.monotonic() - stopped)))
            during = len(stream.sent)
            new_leader = api(brokers[other], f"queues/{vhost}/celery", admin_auth)["leader"]
        finally:  # the node comes back whatever failed, for the tests after this one
            brokers[name].run_expect([0], "systemctl start rabbitmq-server")
            alert.clear()
        time.sleep(10)
    down = time.monotonic() - stopped
    assert new_leader != leader, f"the queue's leader stayed {leader} while it was stopped"
    assert not others_down, f"RabbitMQNodeDown for running nodes: {others_down}"
    waited, twice = check_runs(app2, stream)
    assert len(stream.sent) > during > 0
    status = cluster_status(brokers[other])
    assert set(status["running_nodes"]) == NODES, status
    alert.wait_resolved(timeout=90)
    observe(
        f"leader {leader} stopped {down:.0f} s, new leader {new_leader}; {len(stream.sent)} tasks published "
        f"({len(stream.sent) - during} after the stop's first 30 s), none lost, {len(twice)} ran twice (redelivered: "
        f"acknowledgement cut off); all done {waited:.0f} s after the stream ended; 3 nodes running; "
        f"{alert.summary()}; no other node reported down"
    )


@pytest.mark.reliability(
    "Cluster of three: playbooks/rabbitmq_maintenance.yml (drain, restart, revive each node in turn) while tasks "
    "are published every second",
    "each node drained, restarted and revived in turn; publishing goes on without an error; every task runs, by id, "
    "once or, when the broker redelivered it, twice; the three nodes run after it",
)
def test_the_maintenance_playbook_under_load_loses_no_task(inventory, brokers, app1, app2, observe):
    with Stream(app1) as stream:
        time.sleep(5)
        began = time.monotonic()
        result = run_playbook(inventory, MAINTENANCE, timeout=1200)
        took = time.monotonic() - began
        time.sleep(5)
    # Molecule's environment asks Ansible for colours: the recap without them.
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    recap = output[output.rfind("PLAY RECAP") :]
    for name in brokers:
        assert re.search(rf"^{name}\s+: ok=\d+ .*failed=0", recap, re.M), recap
    _waited, twice = check_runs(app2, stream)
    assert len(stream.sent) >= 200, len(stream.sent)
    for host in brokers.values():
        status = cluster_status(host)
        assert set(status["running_nodes"]) == NODES, status
    observe(
        f"the playbook took {took:.0f} s for 3 nodes; {len(stream.sent)} tasks published, none lost, {len(twice)} "
        "ran twice (redelivered: a drained node closed the worker's connection before their acknowledgement)"
    )
