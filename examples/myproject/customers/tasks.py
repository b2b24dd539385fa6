"""Tasks of the customers app, named customers.<function>."""

from celery import shared_task
from myproject import tasks_common


@shared_task(name="customers.add")
def add(x, y):
    return tasks_common.add(x, y)


@shared_task(name="customers.whoami", bind=True)
def whoami(self):
    return tasks_common.whoami(self)


@shared_task(name="customers.sleep", bind=True)
def sleep(self, seconds):
    return tasks_common.sleep(self, seconds)
