# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSES/MIT.txt)
# SPDX-License-Identifier: MIT

"""Worker-side help for celeryops.stack.celery_worker's quiesce, installed by the workers role.

Every worker program imports this module (``--include=celeryops_worker_control``), which registers the remote
control command ``celeryops_hand_back``: the worker rejects, with requeue, every task message it received but
could not start because each pool process was busy, so the broker delivers them to another consumer (or to the
restarted worker) at once instead of after the worker's longest running task. It is sent after
``cancel_consumer``, when nothing new arrives.

Such messages wait in the prefork pool's semaphore (kombu's LaxBoundedSemaphore) and never reached a pool
process, so none of them can have started: handing them back cannot run a task twice. Requests already handed to
a process are left alone. Pools without the semaphore (eventlet, gevent, threads, solo) hand back nothing.

``celery control`` only sends commands registered in its own process, so the module is also an app for the
CLI: ``CELERYOPS_APP=<the worker's --app> celery --app=celeryops_worker_control:app control celeryops_hand_back``
imports this module (registering the command) and then the worker's app.
"""

import logging
import os
import sys

HAND_BACK_COMMAND = "celeryops_hand_back"
APP_ENVIRONMENT = "CELERYOPS_APP"

logger = logging.getLogger("celery.worker.celeryops")


def hand_back_waiting(waiting, task_ready):
    """Reject (requeue) each request of ``waiting`` and return their ids, in the order received.

    ``waiting`` is the semaphore's deque of ``(callback, args, kwargs)``, changed in place; ``task_ready(request)``
    drops a request from the worker's reserved requests. Entries that are not an unacknowledged request stay,
    in their order.
    """
    kept = []
    handed = []
    while waiting:
        entry = waiting.popleft()
        args = entry[1] if len(entry) > 1 else ()
        request = args[0] if args else None
        rejectable = request is not None and callable(getattr(request, "reject", None))
        if not rejectable or getattr(request, "acknowledged", True):
            kept.append(entry)
            continue
        request.reject(requeue=True)
        task_ready(request)
        handed.append(request.id)
    waiting.extend(kept)
    return handed


def hand_back(state):
    """Hand back the received tasks that no pool process could start (celeryops.stack)."""
    controller = getattr(getattr(state, "consumer", None), "controller", None)
    waiting = getattr(getattr(controller, "semaphore", None), "_waiting", None)
    if waiting is None:
        return {"ok": "this pool holds no waiting tasks", "handed_back": []}
    from celery.worker import state as worker_state  # pylint: disable=import-outside-toplevel

    handed = hand_back_waiting(waiting, worker_state.task_ready)
    if handed:
        logger.info("Handed back %d received task(s) no pool process could start: %s", len(handed), handed)
    return {"ok": f"handed back {len(handed)}", "handed_back": handed}


def __getattr__(name):
    """``app``: the Celery app named by CELERYOPS_APP (as the worker's ``--app``), for ``celery --app`` of the CLI."""
    if name != "app":
        raise AttributeError(name)
    spec = os.environ.get(APP_ENVIRONMENT, "")
    if not spec:
        raise AttributeError(f"set {APP_ENVIRONMENT} to the worker's --app to use this module as the CLI's app")
    from celery.app.utils import find_app  # pylint: disable=import-outside-toplevel

    return find_app(spec)


def _register():
    from celery.worker.control import control_command  # pylint: disable=import-outside-toplevel

    control_command(name=HAND_BACK_COMMAND)(hand_back)


# Imported by a worker (--include) or by the CLI (--app), Celery is loaded already; elsewhere (the unit tests)
# nothing is registered.
if "celery" in sys.modules:
    _register()
