# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Worker commands and supervisor configurations shared by the unit tests of the celery_worker module_utils."""

from __future__ import annotations

from ansible_collections.celeryops.stack.plugins.module_utils import celery_cli as cli

WRAPPER = "/opt/celery/bin/celery-run"
APP = "--app=myproject.celery_config:app"
CUSTOMERS_CMD = (
    f"{WRAPPER} worker {APP} --queues=customers --hostname=customers.%h --pool=eventlet --concurrency=256 "
    "--loglevel=INFO -E"
)
INVOICES_CMD = f"{WRAPPER} {APP} worker -Q invoices,billing -n invoices@%n -P eventlet"
# a prefork worker (no --pool): quiesced before its warm shutdown
DEFAULT_CMD = f"{WRAPPER} worker {APP} --queues=celery,mail --hostname=default.%h --concurrency=8"
NODE = "celery@customers.app1"


def make_config(name, command, group=None, **extra):
    """One ``supervisor.getAllConfigInfo()`` entry, as the workers role's program files give it."""
    config = {
        "name": name,
        "group": group or name,
        "command": command,
        "startsecs": 5,
        "stopwaitsecs": 900,
        "stopsignal": 15,
        "killasgroup": True,
        "inuse": True,
        "stdout_logfile": f"/var/log/supervisor/{name}.log",
    }
    config.update(extra)
    return config


SPEC = cli.build_worker_spec(make_config("celery-customers", CUSTOMERS_CMD), "app1")
