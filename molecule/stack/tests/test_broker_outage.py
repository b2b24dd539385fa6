"""RabbitMQ stopped for 30 seconds while tasks are queued and running, then started again.

Celery's messages are persistent and its queues durable: what waited in the queue must survive the broker's
restart, the workers and Flower must reconnect by themselves, and every task must complete. The monitoring host
must report the node down (RabbitMQNodeDown, in Alertmanager) while it is, and no more once it is back.
"""

import json
import time

import pytest
from monitoring_helpers import AlertClock
from stack_helpers import FLOWER_URL, answering, http_from, send_tasks, wait_completed

NODE = "celery@celery.app2"
NODES = ("celery@customers.app1", "celery@reports.app1", NODE)
OUTAGE_SECONDS = 30
TASKS = (120, 1.0)  # count, seconds: about 15 s of work for app2's 8 processes


def queued(broker, vhost, queue):
    out = broker.run("rabbitmqctl list_queues --quiet --formatter json -p %s name messages", vhost).stdout
    return {item["name"]: item["messages"] for item in json.loads(out or "[]")}.get(queue, 0)


@pytest.mark.reliability(
    f"RabbitMQ stopped for {OUTAGE_SECONDS} s while {TASKS[0]} tasks are queued and running, then started",
    "the queued messages survive; workers and Flower reconnect by themselves; every task completes; "
    "RabbitMQNodeDown fires during the outage and resolves after it",
)
def test_a_broker_outage_loses_no_queued_task(broker, app1, app2, monitor, flower_auth, observe):
    vhost = broker.ansible.get_variables().get("celeryops_broker_vhost", "celery")
    count, seconds = TASKS
    sent = send_tasks(app2, [[seconds, "celery"]] * count)
    time.sleep(3)
    waiting = queued(broker, vhost, "celery")
    assert waiting > 0, "nothing waited in the queue when the broker stopped: the check would prove nothing"

    alert = AlertClock(monitor, [("RabbitMQNodeDown", {"job": "rabbitmq"})])
    assert broker.run("systemctl stop rabbitmq-server").rc == 0
    try:
        alert.wait_fired(90)
    finally:
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - alert.started)))
        assert broker.run("systemctl start rabbitmq-server").rc == 0
        alert.clear()

    done, drained = wait_completed(app2, NODE, sent, 180)
    missing = set(sent) - set(done)
    twice = {task for task in done if done.count(task) > 1}
    assert not missing, f"{len(missing)} of {len(sent)} tasks never completed after the outage"

    deadline = time.monotonic() + 120
    while not set(NODES) <= answering(app1) and time.monotonic() < deadline:
        time.sleep(3)
    assert set(NODES) <= answering(app1), "a worker did not reconnect"
    deadline = time.monotonic() + 120
    while True:
        answer = http_from(app2, f"{FLOWER_URL}/api/workers?refresh=1&status=1", auth=flower_auth, timeout=30)
        online = json.loads(answer["body"]) if answer["status"] == 200 else {}
        if all(online.get(node) for node in NODES) or time.monotonic() > deadline:
            break
        time.sleep(3)
    assert all(online.get(node) for node in NODES), f"Flower does not see every worker online again: {online}"
    alert.wait_resolved(120)
    observe(
        f"{waiting} messages queued at the stop; all {len(sent)} tasks completed {drained:.0f} s after the start "
        f"({len(twice)} twice); every worker answered and Flower listed them online again; {alert.summary()}"
    )
