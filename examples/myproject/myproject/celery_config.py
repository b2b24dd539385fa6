"""The Celery application of the example project.

Every task whose name starts with ``customers.`` goes to the queue ``customers``, every ``reports.`` task to
``reports``, every ``imports.`` task (idempotent, acknowledged late) to ``imports``; all others stay on the default
queue ``celery``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

# Task name prefix (the Django app) -> queue.
ROUTED_APPS = {"customers.": "customers", "reports.": "reports", "imports.": "imports"}


def route_task(name, args, kwargs, options, task=None, **kw):
    """Celery 5 router: the queue for task ``name`` (None leaves the default queue)."""
    for prefix, queue in ROUTED_APPS.items():
        if name.startswith(prefix):
            return {"queue": queue}
    return None


app = Celery("myproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
