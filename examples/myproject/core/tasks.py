"""Tasks of the core app, named core.<function>."""

from celery import shared_task
from myproject import tasks_common


@shared_task(name="core.add")
def add(x, y):
    return tasks_common.add(x, y)


@shared_task(name="core.whoami", bind=True)
def whoami(self):
    return tasks_common.whoami(self)


@shared_task(name="core.sleep", bind=True)
def sleep(self, seconds):
    return tasks_common.sleep(self, seconds)


@shared_task(name="core.fail", bind=True)
def fail(self, seconds=0):
    return tasks_common.fail(self, seconds)
