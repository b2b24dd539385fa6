"""celery_broker_heartbeat reads one node's heartbeat from `celery inspect conf --json` output."""

import json

import pytest

from ansible_collections.celeryops.stack.plugins.filter.celery_inspect import FilterModule, celery_broker_heartbeat

NODE = "celery@customers.app1"


@pytest.mark.parametrize(
    ("conf", "expected"),
    [
        ({"CELERY_BROKER_HEARTBEAT": 0}, 0),
        ({"broker_heartbeat": 60}, 60),
        ({"Broker_Heartbeat": "30"}, "30"),
        ({"broker_url": "amqp://********@broker//"}, 120),
        ({"CELERY_BROKER_HEARTBEAT_CHECKRATE": 2.0}, 120),
    ],
)
def test_the_nodes_setting_or_celerys_default(conf, expected):
    assert celery_broker_heartbeat(json.dumps({NODE: conf}), NODE) == expected


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "Error: No nodes replied within time constraint",
        json.dumps({"celery@other.app2": {"broker_heartbeat": 0}}),
        json.dumps({NODE: "not a mapping"}),
        json.dumps([NODE]),
        None,
    ],
)
def test_no_answer_from_the_node_is_unknown(stdout):
    assert celery_broker_heartbeat(stdout, NODE) is None


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"celery_broker_heartbeat": celery_broker_heartbeat}
