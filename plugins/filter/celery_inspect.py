# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Filters that read the output of ``celery inspect ... --json`` (documentation: celery_broker_heartbeat.yml)."""

from __future__ import annotations

import json
import re

# broker_heartbeat under any namespace: CELERY_BROKER_HEARTBEAT with Django's CELERY one.
_HEARTBEAT_KEY = re.compile(r"^(celery_)?broker_heartbeat$", re.IGNORECASE)
# Celery's own default when the configuration sets none.
CELERY_DEFAULT_HEARTBEAT = 120


def celery_broker_heartbeat(stdout, node):
    """The AMQP heartbeat ``node`` runs with, from ``celery inspect conf --json`` output.

    Celery's default (120) when the node's configuration sets none; ``None`` when the output holds no answer from
    the node (not JSON, another node, an error).
    """
    try:
        replies = json.loads(stdout or "")
    except ValueError:
        return None
    conf = replies.get(node) if isinstance(replies, dict) else None
    if not isinstance(conf, dict):
        return None
    for key, value in conf.items():
        if _HEARTBEAT_KEY.match(key):
            return value
    return CELERY_DEFAULT_HEARTBEAT


class FilterModule:
    """celeryops.stack filters for Celery's inspect output."""

    def filters(self):
        return {"celery_broker_heartbeat": celery_broker_heartbeat}
