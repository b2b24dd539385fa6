"""The example Django project served by the Celery workers."""
