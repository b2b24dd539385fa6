"""Helpers of the cluster scenario's tests: each node's view of the cluster and the management API on a node's
loopback."""

import json

from stack_helpers import http_from

BROKERS = ("broker1", "broker2", "broker3")
NODES = {f"rabbit@{name}" for name in BROKERS}


def cluster_status(host):
    """``rabbitmqctl cluster_status`` of the node on ``host``, as JSON."""
    return json.loads(host.check_output("rabbitmqctl --quiet cluster_status --formatter json"))


def api(host, path, auth):
    """GET ``/api/<path>`` of the management API on ``host``'s loopback (plain HTTP, basic auth ``auth``)."""
    reply = http_from(host, f"http://127.0.0.1:15672/api/{path}", auth=auth)
    assert reply["status"] == 200, reply
    return json.loads(reply["body"])
