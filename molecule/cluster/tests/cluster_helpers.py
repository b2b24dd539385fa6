"""Helpers of the cluster scenario's tests: each node's view of the cluster, the management API on a node's
loopback, and a stream of tasks published from app1 to app2's prefork worker, counted by id."""

import json
import threading
import time

from stack_helpers import http_from, ledger_entries, send_tasks, wait_completed

BROKERS = ("broker1", "broker2", "broker3")
NODES = {f"rabbit@{name}" for name in BROKERS}
NODE = "celery@celery.app2"  # app2's prefork worker: the queues celery and imports
BATCH = ((0.05, "celery"),) * 25  # 25 short tasks, published at once


def cluster_status(host):
    """``rabbitmqctl cluster_status`` of the node on ``host``, as JSON."""
    return json.loads(host.check_output("rabbitmqctl --quiet cluster_status --formatter json"))


def broker_pid(host):
    """The main PID of rabbitmq-server on ``host`` ("0" when it is stopped)."""
    return host.check_output("systemctl show rabbitmq-server --property=MainPID --value")


def api(host, path, auth):
    """GET ``/api/<path>`` of the management API on ``host``'s loopback (plain HTTP, basic auth ``auth``)."""
    reply = http_from(host, f"http://127.0.0.1:15672/api/{path}", auth=auth)
    assert reply["status"] == 200, reply
    return json.loads(reply["body"])


class Stream:
    """Publishes a batch of tasks from app1 every second in a thread, until stopped (``send``: how, send_tasks by
    default); the ids sent and the errors."""

    def __init__(self, app1, send=send_tasks, batch=BATCH):
        self.app1, self.send, self.batch, self.sent, self.errors = app1, send, batch, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sent += self.send(self.app1, self.batch)
            except AssertionError as error:  # a failed publish is recorded, the stream goes on
                self.errors.append(str(error)[-500:])
            time.sleep(1)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=120)


def check_runs(app2, sent, errors):
    """Every task of ``sent`` ran on app2's worker NODE; one that ran twice was redelivered by the broker (its node
    closed the worker's connection before the task's acknowledgement arrived: at-least-once delivery). The wait's
    seconds and those tasks."""
    done, waited = wait_completed(app2, NODE, sent, timeout=180)
    lost = set(sent) - set(done)
    assert not lost, f"{len(lost)} of {len(sent)} tasks never ran (errors while publishing: {errors})"
    assert not errors, errors
    twice = {task for task in done if done.count(task) > 1}
    runs = [entry for entry in ledger_entries(app2, NODE) if entry["id"] in twice]
    unexplained = {task for task in twice if not any(run.get("redelivered") for run in runs if run["id"] == task)}
    assert not unexplained, f"{len(unexplained)} tasks ran twice without a redelivery: {sorted(unexplained)[:5]}"
    return waited, twice
