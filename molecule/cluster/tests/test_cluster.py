"""The three brokers form one RabbitMQ cluster, and its application vhost serves quorum queues.

Observed on the nodes themselves: each node's own view of the cluster, the definitions read through another
node than the seed, the vhost's default queue type, the dead-letter queue and the quorum policy.
"""

import pytest
from cluster_helpers import BROKERS, NODES, api, cluster_status


@pytest.mark.parametrize("name", BROKERS)
def test_every_node_sees_the_same_three_running_nodes(brokers, name):
    status = cluster_status(brokers[name])
    assert set(status["running_nodes"]) == NODES, status
    assert set(status["disk_nodes"]) == NODES, status
    assert status.get("cluster_name") == "celeryops", status
    assert not status.get("partitions"), status


def test_definitions_made_on_the_seed_are_the_whole_clusters(brokers, admin_auth, vhost):
    """Users and the vhost were defined on broker1 only; broker3 answers with them, and guest is gone."""
    users = {user["name"] for user in api(brokers["broker3"], "users", admin_auth)}
    assert "guest" not in users
    assert {"admin", "monitoring", "flower"} <= users, users
    vhosts = {entry["name"]: entry for entry in api(brokers["broker3"], "vhosts", admin_auth)}
    assert vhost in vhosts, vhosts
    version = api(brokers["broker3"], "overview", admin_auth)["rabbitmq_version"]
    if int(version.split(".")[0]) >= 4:  # RabbitMQ 3.10 has no default queue type per vhost
        assert vhosts[vhost].get("default_queue_type") == "quorum", vhosts[vhost]


def test_the_task_queues_are_quorum_queues_on_every_node(brokers, admin_auth, vhost):
    """Celery declared its queues as quorum queues (CELERYOPS_BROKER_QUEUE_TYPE), each with a member on every node;
    its event and control queues stay classic."""
    queues = {queue["name"]: queue for queue in api(brokers["broker2"], f"queues/{vhost}", admin_auth)}
    for name in ("celery", "customers", "reports", "imports"):
        assert name in queues, sorted(queues)
        assert queues[name]["type"] == "quorum", queues[name]
        assert set(queues[name].get("members", [])) == NODES, queues[name]
    assert {queue["type"] for name, queue in queues.items() if name.endswith(".pidbox")} == {"classic"}
    leaders = {queues[name]["leader"] for name in ("celery", "customers", "reports", "imports")}
    assert len(leaders) >= 2, f"every task queue's leader is on {leaders}: queue_leader_locator does not balance"


def test_dead_letter_queue_and_quorum_policy(brokers, admin_auth, vhost):
    queue = api(brokers["broker2"], f"queues/{vhost}/celeryops.dead-letter", admin_auth)
    assert queue["type"] == "quorum", queue
    assert set(queue.get("members", [])) == NODES, queue
    policies = {policy["name"]: policy for policy in api(brokers["broker2"], f"policies/{vhost}", admin_auth)}
    policy = policies.get("celeryops-quorum")
    assert policy, policies
    assert policy["definition"]["dead-letter-exchange"] == "celeryops.dead-letter", policy
    assert policy["definition"]["delivery-limit"] == 10, policy
