"""Task bodies shared by the apps (each app registers them under its own explicit names)."""

import os
import time

from myproject import ledger


def _redelivered(task):
    """Whether the broker delivered this task's message again (the first delivery was never acknowledged)."""
    return bool((task.request.delivery_info or {}).get("redelivered"))


def add(x, y):
    return x + y


def whoami(task):
    return {"node": task.request.hostname, "pid": os.getpid()}


def sleep(task, seconds):
    # Under the eventlet and gevent pools time.sleep is monkey-patched, so this yields to other green threads.
    started = time.time()
    time.sleep(float(seconds))
    ledger.record(task.request.id, task.request.hostname, started=started, redelivered=_redelivered(task))
    return {"id": task.request.id, "node": task.request.hostname, "slept": float(seconds)}


class ExampleFailure(RuntimeError):
    """What core.fail raises: a task that fails on purpose (the monitoring tests' failure-rate fault)."""


def fail(task, seconds):
    # Recorded like any finished task, then raised: the tests count the failures by id in the ledger too.
    started = time.time()
    time.sleep(float(seconds))
    ledger.record(task.request.id, task.request.hostname, started=started, redelivered=_redelivered(task))
    raise ExampleFailure(f"task {task.request.id} failed on purpose")
