"""Minimal Django settings: no web server, no database the workers need (sqlite in /tmp if ever used)."""

import os
import ssl

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret")
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"

INSTALLED_APPS = [
    "core",
    "customers",
    "reports",
    "imports",
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_SQLITE_PATH", "/tmp/myproject.sqlite3"),  # noqa: S108 - example only
    }
}

# Celery settings, read by myproject/celery_config.py with the namespace CELERY.
# The broker URL (with its password) comes from the environment file the wrapper loads.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "amqp://guest@localhost:5672//")
# TLS to the broker (the URL is amqps://): the workers role names the CA that signed the broker's certificate in
# CELERYOPS_BROKER_CA_FILE. Verify the certificate against that CA only, and its name against the URL's host
# (kombu fills in server_hostname when it is None).
if os.environ.get("CELERYOPS_BROKER_CA_FILE"):
    CELERY_BROKER_USE_SSL = {
        "ca_certs": os.environ["CELERYOPS_BROKER_CA_FILE"],
        "cert_reqs": ssl.CERT_REQUIRED,
        "server_hostname": None,
    }
# AMQP heartbeat in seconds: the workers role sets 0 for eventlet and gevent workers (Celery 5.7 takes in about
# ten messages a second on a green pool with heartbeats on; see the workers role README), Celery's 120 otherwise.
CELERY_BROKER_HEARTBEAT = int(os.environ.get("CELERY_BROKER_HEARTBEAT", "120"))
# A RabbitMQ cluster (the workers role sets CELERYOPS_BROKER_QUEUE_TYPE=quorum; CELERY_BROKER_URL then lists every
# node, separated by ";", and Celery moves to the next one when its node goes away). Every queue Celery declares
# (the default queue and those the router names) is a quorum queue, replicated on the nodes; Celery 5.5+ then
# detects them, uses per-consumer prefetch (quorum queues have no global QoS) and sends countdown/ETA tasks
# through its native delayed delivery (celery_delayed_* exchanges and queues). Publisher confirms: a task is sent
# once a majority of the nodes holds it.
if os.environ.get("CELERYOPS_BROKER_QUEUE_TYPE") == "quorum":
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
# rpc:// sends results back to the caller over the broker: `.get()` works, no extra service is needed.
CELERY_RESULT_BACKEND = "rpc://"
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_ROUTES = ("myproject.celery_config.route_task",)
# Acknowledge when a worker process starts the task (the default): a warm shutdown hands reserved, unstarted
# messages back to the broker, but a task whose worker dies while it runs is lost. The idempotent tasks of the
# imports app are acknowledged when they end instead (imports/tasks.py, docs/task-safety.md).
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
