# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Run `celery flower` with its /metrics page behind the same login as every other page.

Flower 2.2 serves /metrics (the Prometheus exposition: task names, worker names, counts and latencies) to anyone
who reaches its port, whatever `basic_auth` says. Started as `flower-serve flower --conf=...`, this wraps that
page's handler with tornado's `authenticated` check, the one Flower's other pages use (with basic auth a request
without the right credentials gets 401), then runs Celery's command line in this process. A Prometheus scraper
logs in with the basic auth user. /healthcheck (it answers "OK" and nothing else) stays open.
"""

import sys

MARK = "_celeryops_login_required"


def require_login(handler_class, authenticated):
    """Wrap ``handler_class.get`` with ``authenticated`` once; True when this call wrapped it."""
    if getattr(handler_class.get, MARK, False):
        return False
    wrapped = authenticated(handler_class.get)
    setattr(wrapped, MARK, True)
    handler_class.get = wrapped
    return True


def main(argv=None):
    # Only Flower's virtualenv has these.
    import tornado.web  # noqa: PLC0415
    from celery.__main__ import main as celery_main  # noqa: PLC0415
    from flower.views import monitor  # noqa: PLC0415

    require_login(monitor.Metrics, tornado.web.authenticated)
    sys.argv = ["celery", *(sys.argv[1:] if argv is None else argv)]
    celery_main()


if __name__ == "__main__":
    main()
