# Copyright (c) celeryops.stack contributors
# MIT License (see LICENSE)
# SPDX-License-Identifier: MIT
"""Wait until workers consume every given queue, then replace this process with the given command (Flower).

Flower learns the queues it shows on its Broker page from its first look at the workers, when it starts, and
does not look again; at boot, or when supervisord restarts, it starts beside workers that are not answering
yet. Started as `flower-wait-workers --queue Q ... --timeout S -- celery flower ...`, this asks the workers
(`celery inspect active_queues`, through CELERY_BROKER_URL) once a second until every queue has a worker
consuming it, or S seconds have passed (then it says which queues are still missing and starts Flower anyway),
and then execs the command, so supervisor's signals reach Flower itself.
"""

import argparse
import os
import sys
import time


def consumed_queues(replies):
    """The queue names in `inspect active_queues` replies ({node: [{"name": ...}, ...]}; None when none)."""
    return {queue.get("name") for queues in (replies or {}).values() for queue in queues or []}


def wait_for_queues(ask, wanted, timeout, clock=time.monotonic, sleep=time.sleep, say=print):
    """Ask (a callable returning active_queues replies, or raising) until every wanted queue is consumed or
    timeout seconds have passed; the queues still missing (empty when all are consumed)."""
    deadline = clock() + timeout
    missing, error = sorted(set(wanted)), None
    while missing:
        started = clock()
        try:
            missing, error = sorted(set(wanted) - consumed_queues(ask())), None
        except Exception as exc:  # noqa: BLE001 - a broker not up yet is the normal case at boot
            error = exc
        if not missing or clock() >= deadline:
            break
        sleep(max(0.0, 1.0 - (clock() - started)))
    if missing:
        reason = f" (last error: {error})" if error else ""
        say(f"flower-wait-workers: no worker consumes {', '.join(missing)} after {timeout:g} s{reason}; "
            "starting Flower anyway", flush=True)  # fmt: skip
    return missing


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queue", action="append", default=[], help="a queue that must have a worker")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait at most")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to exec")
    args = parser.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        parser.error("give the command to run after --")
    return args


def main(argv=None):
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.queue:
        from celery import Celery  # noqa: PLC0415 - only Flower's virtualenv has it

        app = Celery(broker=os.environ["CELERY_BROKER_URL"])
        # The module of broker_use_ssl (AMQPS), the one `celery flower` reads too.
        if os.environ.get("CELERY_CONFIG_MODULE"):
            app.config_from_envvar("CELERY_CONFIG_MODULE")

        def ask():
            with app.connection_for_write() as connection:
                connection.ensure_connection(max_retries=1)
                return app.control.inspect(connection=connection, timeout=1.0).active_queues()

        wait_for_queues(ask, args.queue, args.timeout)
    os.execv(args.command[0], args.command)  # noqa: S606 - the command is the wrapper's own, no shell


if __name__ == "__main__":
    main()
