"""Queued tasks move from a vhost of classic queues into the cluster's quorum queues (rabbitmq_move_from_vhost).

The vhost OLD stands for a single broker's application vhost that the seed of a new cluster kept: classic queues
`celery` and `imports`, a backlog in them that nobody consumes, and publishers that still send there. site.yml with
rabbitmq_move_from_vhost (and the plugin rabbitmq_shovel, which restarts each node in turn) moves every message into
the queues of the same name in the application vhost, where app2's worker runs it; without the variable again, the
role removes its shovels and the users' permissions on OLD. Every task is counted by id in the worker's ledger.
"""

import json
import re
import time

import pytest
from cluster_helpers import BROKERS, Stream, broker_pid, check_runs
from stack_helpers import SEND, SITE, recap_changes, run_playbook, send_tasks, wait_completed

OLD = "celeryops-single"
QUEUES = ("celery", "imports")
BACKLOG = [[0.05, queue] for queue in QUEUES] * 100
OLD_BATCH = [[0.05, queue] for queue in QUEUES] * 10
# Queues of the old vhost that had no message yet when the move began: reports, which app1's gevent worker
# consumes in the application vhost, and one that nothing consumes and the application vhost does not have yet.
UNSERVED = "celeryops-unserved"
LATE = [[0.05, "reports"]] * 20 + [[0.05, UNSERVED]] * 5
REPORTS_NODE = "celery@reports.app1"  # app1's gevent worker of the queue reports
DEFAULT_PLUGINS = ["rabbitmq_management", "rabbitmq_prometheus"]  # the rabbitmq role's default
# The refusal of a publish to a classic queue of OLD while its node is down or stopping.
HOME_NODE_DOWN = (
    rf"NOT_FOUND - (home node \S+ of durable queue \S+ in vhost \S{OLD}\S is down or inaccessible"
    rf"|queue \S+ in vhost \S{OLD}\S process is stopped by supervisor)"
)

# A publisher of the old vhost: CELERY_BROKER_URL's nodes with the vhost OLD, classic queues as on a single broker,
# and publisher confirms, so that a publish the broker did not take (a node restarting) fails instead of vanishing.
OLD_SENDER = (
    "import os\n"
    "urls = os.environ['CELERY_BROKER_URL'].split(';')\n"
    f"os.environ['CELERY_BROKER_URL'] = ';'.join(url.rsplit('/', 1)[0] + '/{OLD}' for url in urls)\n"
    "os.environ.pop('CELERYOPS_BROKER_QUEUE_TYPE', None)\n"
    "from myproject.celery_config import app\n"
    "app.conf.broker_transport_options = {'confirm_publish': True}\n"
) + SEND


def send_old(host, plan):
    return send_tasks(host, plan, sender=OLD_SENDER)


def queues(seed, vhost):
    """The queues of ``vhost`` ({name, type, messages}), from rabbitmqctl on the seed."""
    out = seed.check_output("rabbitmqctl --quiet list_queues -p %s name type messages --formatter json", vhost)
    return json.loads(out)


def old_queues(seed):
    """{name: (type, messages)} of the task queues of OLD (the publisher's reply queue of the rpc:// result backend
    is there too)."""
    return {queue["name"]: (queue["type"], queue["messages"]) for queue in queues(seed, OLD) if queue["name"] in QUEUES}


def shovels(seed):
    """The names of the shovels defined in OLD (its runtime parameters of the component shovel). Whether they run
    shows in the messages they move: `rabbitmqctl shovel_status` is missing from RabbitMQ 4.0's CLI on Debian 13."""
    out = seed.check_output("rabbitmqctl --quiet list_parameters -p %s --formatter json", OLD)
    return sorted(param["name"] for param in json.loads(out) if param["component"] == "shovel")


def converge(inventory, tmp_path, variables, check=True):
    """site.yml on the brokers with ``variables``: the run, the number of changes per broker, its seconds."""
    extra = tmp_path / "move.json"
    extra.write_text(json.dumps(variables))
    began = time.monotonic()
    result = run_playbook(inventory, SITE, "--limit", "rabbitmq", extra_vars=extra, check=check)
    changed = recap_changes(result.stdout)
    assert set(changed) == set(BROKERS), result.stdout[-3000:]
    return result, changed, time.monotonic() - began


@pytest.mark.reliability(
    "Cluster of three: site.yml moves a vhost of classic queues (a single broker's, 200 tasks queued) into the "
    "cluster's quorum queues while tasks are still published there every second; then the move ends",
    "every task of the backlog and of the stream runs, by id, once or, when the broker redelivered it, twice (a "
    "publish refused while the old queues' node restarts raises an error); the old "
    "queues end empty; ending the move while a queue there holds messages is refused before any change; a second "
    "converge changes only new queues' shovels and creates their missing quorum queue; once the move ends its "
    "shovels and the users' permissions on the old vhost are gone, and a publisher there is refused",
)
def test_queued_tasks_move_from_a_classic_vhost_into_the_quorum_queues(
    inventory, brokers, app1, app2, vhost, tmp_path, observe
):
    seed = brokers["broker1"]
    plugins = seed.ansible.get_variables().get("rabbitmq_plugins", DEFAULT_PLUGINS)
    app_user = seed.ansible.get_variables().get("celeryops_broker_app_user", "celery")
    seed.run_expect([0], "rabbitmqctl --quiet add_vhost %s", OLD)
    try:
        seed.run_expect([0], "rabbitmqctl --quiet set_permissions -p %s %s '.*' '.*' '.*'", OLD, app_user)
        backlog = send_old(app1, BACKLOG)
        assert old_queues(seed) == {queue: ("classic", 100) for queue in QUEUES}
        moving = {"rabbitmq_move_from_vhost": OLD, "rabbitmq_plugins": [*plugins, "rabbitmq_shovel"]}
        pids = {name: broker_pid(host) for name, host in brokers.items()}
        with Stream(app1, send=send_old, batch=OLD_BATCH) as stream:
            time.sleep(3)
            _run, _changed, took = converge(inventory, tmp_path, moving)
            time.sleep(10)
        # The old vhost's classic queues live on one node: while it restarts, a publish there fails with an
        # error (as on the single broker), and the next batch goes through. Any other error fails the test.
        other = [error for error in stream.errors if not re.search(HOME_NODE_DOWN, error)]
        assert not other, other
        waited, twice = check_runs(app2, backlog + stream.sent, [])
        assert len(stream.sent) >= 20 * 10, len(stream.sent)
        restarted = sorted(name for name, host in brokers.items() if broker_pid(host) != pids[name])
        assert old_queues(seed) == {queue: ("classic", 0) for queue in QUEUES}
        assert shovels(seed) == [f"celeryops-move-{queue}" for queue in QUEUES]

        # A publisher begins to use another queue of the old vhost after the converge: no shovel moves it yet, and
        # ending the move now is refused, before any change; the next converge of the move gives it its shovel.
        late = send_old(app1, LATE)
        time.sleep(6)  # the management API counts a queue's messages every 5 s
        ending = {**moving, "rabbitmq_move_from_vhost": ""}
        refused, changes, _took = converge(inventory, tmp_path, ending, check=False)
        flat = " ".join((refused.stdout + refused.stderr).split())
        assert refused.returncode != 0, flat[-3000:]
        assert set(changes.values()) == {0}, changes
        assert f"The move from the vhost {OLD} ends" in flat, flat[-3000:]
        assert f"still hold messages: {UNSERVED}: 5, reports: 20." in flat, flat[-3000:]
        assert shovels(seed) == [f"celeryops-move-{queue}" for queue in QUEUES]
        _run, again, _took = converge(inventory, tmp_path, moving)
        # The new queues' shovels and the quorum queue UNSERVED in the application vhost, nothing else.
        assert again == {"broker1": 2, "broker2": 0, "broker3": 0}, again  # one task each, two items each
        reports = [task for task, (_seconds, queue) in zip(late, LATE, strict=True) if queue == "reports"]
        done, _waited = wait_completed(app1, REPORTS_NODE, reports, timeout=120)
        assert sorted(done) == sorted(reports)
        # RabbitMQ 3.10 has no default queue type per vhost: a queue the shovel declared would be classic.
        unserved = queues(seed, vhost)
        assert {"name": UNSERVED, "type": "quorum", "messages": 5} in unserved, unserved
        seed.run_expect([0], "rabbitmqctl --quiet delete_queue -p %s %s", vhost, UNSERVED)

        _run, ended, _took = converge(inventory, tmp_path, ending)
        assert shovels(seed) == []
        assert json.loads(seed.check_output("rabbitmqctl --quiet list_permissions -p %s --formatter json", OLD)) == []
        with pytest.raises(AssertionError, match="ACCESS_REFUSED|access to vhost"):
            send_old(app1, OLD_BATCH[:1])
    finally:
        seed.run("rabbitmqctl --quiet delete_vhost %s", OLD)
    observe(
        f"200 tasks queued in classic queues; the converge with the move took {took:.0f} s (plugin rabbitmq_shovel; "
        f"brokers restarted: {', '.join(restarted) or 'none'}) while {len(stream.sent)} more were published there "
        f"({len(stream.errors)} "
        "batches refused while the classic queues' node restarted); all "
        f"{len(backlog) + len(stream.sent)} ran, none lost, {len(twice)} twice (redelivered), the last {waited:.0f} s "
        f"after the stream ended; 25 tasks then sent to two other queues of the old vhost: ending the move refused, "
        "the next converge changed only their shovels and one new quorum queue, and they moved (20 ran, 5 wait in "
        f"a queue nothing consumes); ending the move then changed "
        f"{sum(ended.values())} (shovels and permissions removed; a publisher of the old vhost refused)"
    )
