"""The Celery application of the example project.

Every task whose name starts with ``customers.`` goes to the queue ``customers``; all others stay on the
default queue ``celery``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "myproject.settings")

CUSTOMERS_PREFIX = "customers."


def route_task(name, args, kwargs, options, task=None, **kw):
    """Celery 5 router: the queue for task ``name`` (None leaves the default queue)."""
    if name.startswith(CUSTOMERS_PREFIX):
        return {"queue": "customers"}
    return None


app = Celery("myproject")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
