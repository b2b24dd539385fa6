"""The three brokers form one RabbitMQ cluster, and its application vhost serves quorum queues.

Observed on the nodes themselves: each node's own view of the cluster, the definitions read through another
node than the seed, the vhost's default queue type, the dead-letter queue and the quorum policy; and a converge
with another Erlang cookie, refused before it changes a node.
"""

import json

import pytest
from cluster_helpers import BROKERS, NODES, api, broker_pid, cluster_status
from stack_helpers import SITE, run_playbook

COOKIE = "/var/lib/rabbitmq/.erlang.cookie"


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


def node_state(host):
    """(the cookie's checksum, the broker's main PID) on ``host``."""
    checksum = host.check_output("sha1sum %s", COOKIE).split()[0]
    return checksum, broker_pid(host)


@pytest.mark.reliability(
    "Cluster of three: site.yml runs with another Erlang cookie (a new controller without the credentials directory)",
    "every running node refuses before any change, naming its cookie file; no cookie printed; each node keeps its "
    "cookie and its broker process, and the cluster runs on",
)
def test_a_new_cookie_is_refused_by_the_running_cluster(inventory, brokers, tmp_path, observe):
    before = {name: node_state(host) for name, host in brokers.items()}
    cookie = "Zq8TnW3vLx6KpR2cYh9MdJ4sFb7GuA5eQw1"
    extra = tmp_path / "cookie.json"
    extra.write_text(json.dumps({"rabbitmq_erlang_cookie": cookie}))
    result = run_playbook(inventory, SITE, "--limit", "rabbitmq", extra_vars=extra, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    flat = " ".join(output.split())  # the messages as one line: the YAML callback wraps them
    for name in BROKERS:
        assert f"The Erlang cookie of {name} ({COOKIE}) is not the one this run would" in flat, output[-5000:]
    assert cookie not in output, "the cookie was printed"
    assert {name: node_state(host) for name, host in brokers.items()} == before
    for name, host in brokers.items():
        assert set(cluster_status(host)["running_nodes"]) == NODES, name
    observe(f"refused on {', '.join(BROKERS)}; cookies and broker PIDs unchanged; three nodes running")
