"""Tasks of the imports app, named imports.<function>: idempotent, so they may run more than once.

Celery acknowledges a task when a worker process starts it (the default, CELERY_TASK_ACKS_LATE = False): a task
whose worker dies while it runs is gone. These tasks are acknowledged when they end instead (``acks_late``). A
pool process that dies under one sends it again as a retry, at most ``max_retries`` times
(``retry_on_worker_lost``, Celery 5.7), and if that retry cannot be sent the message goes back to the queue
(``reject_on_worker_lost``). When the worker's main process dies, nothing was acknowledged and the broker
delivers the task again. The price: a task that had done its work but not yet been acknowledged runs again, so
only tasks whose second run changes nothing belong here (docs/task-safety.md).
"""

from celery import shared_task
from myproject import tasks_common

SAFE = {
    "acks_late": True,
    "retry_on_worker_lost": True,
    "reject_on_worker_lost": True,
    "max_retries": 3,
    # A task that fails or times out is acknowledged (not redelivered forever): it is an error, not a lost worker.
    "acks_on_failure": True,
}


@shared_task(name="imports.sleep", bind=True, **SAFE)
def sleep(self, seconds):
    return tasks_common.sleep(self, seconds)
