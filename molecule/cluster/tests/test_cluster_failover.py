"""Tasks keep flowing, each run once, while a node of the cluster is down: the leader of the task queue stopped
under load, and the rolling maintenance playbook. While the leader is stopped, monitoring reports that node down,
and only that node.

Tasks are published from app1 to the queue `celery` (a quorum queue), which app2's prefork worker consumes; both
connect through CELERY_BROKER_URL, which lists every node. Every task is counted by id in the worker's ledger.
"""

import re
import time

import pytest
from cluster_helpers import NODES, Stream, api, check_runs, cluster_status
from conftest import PROJECT
from monitoring_helpers import AlertClock, prometheus_state
from stack_helpers import run_playbook

METRICS_PORT = 15691  # each node's HTTPS metrics, Prometheus's target (the monitoring role's default)
MAINTENANCE = PROJECT / "playbooks" / "rabbitmq_maintenance.yml"


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
    waited, twice = check_runs(app2, stream.sent, stream.errors)
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
    _waited, twice = check_runs(app2, stream.sent, stream.errors)
    assert len(stream.sent) >= 200, len(stream.sent)
    for host in brokers.values():
        status = cluster_status(host)
        assert set(status["running_nodes"]) == NODES, status
    observe(
        f"the playbook took {took:.0f} s for 3 nodes; {len(stream.sent)} tasks published, none lost, {len(twice)} "
        "ran twice (redelivered: a drained node closed the worker's connection before their acknowledgement)"
    )
