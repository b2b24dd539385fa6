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
    assert vhosts[vhost].get("default_queue_type") == "quorum", vhosts[vhost]


def test_dead_letter_queue_and_quorum_policy(brokers, admin_auth, vhost):
    queue = api(brokers["broker2"], f"queues/{vhost}/celeryops.dead-letter", admin_auth)
    assert queue["type"] == "quorum", queue
    assert set(queue.get("members", [])) == NODES, queue
    policies = {policy["name"]: policy for policy in api(brokers["broker2"], f"policies/{vhost}", admin_auth)}
    policy = policies.get("celeryops-quorum")
    assert policy, policies
    assert policy["definition"]["dead-letter-exchange"] == "celeryops.dead-letter", policy
    assert policy["definition"]["delivery-limit"] == 10, policy
