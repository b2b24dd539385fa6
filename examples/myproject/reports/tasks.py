"""Tasks of the reports app, named reports.<function>."""

from celery import shared_task
from myproject import tasks_common


@shared_task(name="reports.whoami", bind=True)
def whoami(self):
    return tasks_common.whoami(self)


@shared_task(name="reports.sleep", bind=True)
def sleep(self, seconds):
    return tasks_common.sleep(self, seconds)
