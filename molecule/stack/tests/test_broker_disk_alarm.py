"""RabbitMQ's disk alarm: publishers are blocked while it lasts, nothing is lost, and the flow resumes after it.

The broker raises the alarm when its free disk space falls below disk_free_limit (rabbitmq_disk_free_limit).
The test raises the limit above the disk's size at runtime (`rabbitmqctl set_disk_free_limit`, not persisted),
publishes tasks while the alarm holds, then puts the role's limit back.
"""

import json
import time

import pytest
from stack_helpers import APP_DIR, ENV_FILE, SEND, VENV_PYTHON, wait_completed

NODE = "celery@celery.app2"
IDS_FILE = "/var/lib/celery/disk-alarm-ids.json"
TASKS = (60, 0.2)
HOLD_SECONDS = 10


def alarms(broker):
    return broker.run("rabbitmq-diagnostics --quiet alarms").stdout


def wait_for(check, timeout, what):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(1)


def connection_states(broker, vhost):
    out = broker.run("rabbitmqctl list_connections --quiet --formatter json vhost state").stdout
    return [item["state"] for item in json.loads(out or "[]") if item.get("vhost") == vhost]


def queued(broker, vhost, queue):
    out = broker.run("rabbitmqctl list_queues --quiet --formatter json -p %s name messages", vhost).stdout
    return {item["name"]: item["messages"] for item in json.loads(out or "[]")}.get(queue, 0)


@pytest.mark.reliability(
    f"RabbitMQ's disk alarm raised for {HOLD_SECONDS} s while {TASKS[0]} tasks are published",
    "the publisher's connection is blocked and nothing reaches the queue while it lasts; every task completes "
    "once after it",
)
def test_a_disk_alarm_blocks_publishers_and_loses_nothing(broker, app2, observe):
    variables = broker.ansible.get_variables()
    vhost = variables.get("celeryops_broker_vhost", "celery")
    limit = variables.get("rabbitmq_disk_free_limit", "2GB")
    count, seconds = TASKS
    before = queued(broker, vhost, "celery")
    app2.run("rm -f %s", IDS_FILE)
    try:
        assert broker.run("rabbitmqctl set_disk_free_limit 100000GB").rc == 0
        wait_for(lambda: "disk" in alarms(broker), 60, "the disk alarm was never raised")
        script = (
            f"set -a; . {ENV_FILE}; set +a; cd {APP_DIR}; "
            f'{VENV_PYTHON} -c "$0" "$1" > {IDS_FILE}.part 2>&1 && mv {IDS_FILE}.part {IDS_FILE}'
        )
        plan = json.dumps([[seconds, "celery"]] * count)
        app2.run("sh -c %s %s %s </dev/null >/dev/null 2>&1 &", script, SEND, plan)
        time.sleep(HOLD_SECONDS)
        states = connection_states(broker, vhost)
        during = queued(broker, vhost, "celery")
        blocked = states.count("blocked")
        assert blocked >= 1, f"no connection of the vhost is blocked during the alarm: {states}"
        assert during <= before, f"messages reached the queue during the alarm ({before} -> {during})"
    finally:
        broker.run("rabbitmqctl set_disk_free_limit %s", limit)
    wait_for(lambda: "disk" not in alarms(broker), 60, "the disk alarm did not clear")
    cleared = time.monotonic()
    wait_for(lambda: app2.file(IDS_FILE).exists, 60, "the publisher never finished after the alarm")
    sent = json.loads(app2.file(IDS_FILE).content_string.strip().splitlines()[-1])
    assert len(sent) == count

    published = time.monotonic()
    done, waited = wait_completed(app2, NODE, sent, 120)
    flowed = published - cleared + waited
    assert set(done) == set(sent), f"{len(set(sent) - set(done))} of {count} tasks never completed"
    assert len(done) == len(sent), "a task completed twice"
    app2.run("rm -f %s", IDS_FILE)
    observe(
        f"{blocked} connection(s) blocked, queue {before} -> {during} messages during the alarm; all {count} tasks "
        f"completed once, {flowed:.0f} s after it cleared"
    )
