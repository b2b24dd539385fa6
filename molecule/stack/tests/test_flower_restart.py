"""Flower knows every declared queue and worker after its host's supervisord restarts, without being primed.

supervisord on app1 is restarted (as at boot: the workers of app1 and Flower start together, Flower's priority
only orders the starts). Then, without asking Flower to refresh its view of the workers, its workers API lists
every worker the inventory declares with the queues it consumes, every worker is online, and its Broker page
lists every declared queue with its message count (issue 18: Flower learns the queues from its first look at
the workers and does not ask again).
"""

import json
import re
import time

import pytest
from stack_helpers import FLOWER_URL, http_from, worker_lists


class _Secret(str):
    def __repr__(self):
        return "'<secret>'"


@pytest.fixture(scope="module")
def auth(credentials_dir):
    path = sorted(credentials_dir.glob("flower_*.password"))[0]
    user = path.name[len("flower_") : -len(".password")]
    return _Secret(f"{user}:{path.read_text().strip()}")


@pytest.fixture(scope="module")
def declared(inventory):
    """{node name: [queues]} of every worker the inventory declares (the lab's hosts are named as in it)."""
    return {
        f"celery@{worker['queues'][0]}.{host}": list(worker["queues"])
        for host, workers in worker_lists(inventory).items()
        for worker in workers
    }


@pytest.fixture(scope="module")
def restarted(app1, auth):
    """Restart supervisord on app1, then wait until Flower answers an authenticated request (no refresh)."""
    with app1.sudo():
        before = app1.check_output("supervisorctl pid flower")
        app1.run_test("systemctl restart supervisor")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        with app1.sudo():
            now = app1.run("supervisorctl pid flower").stdout.strip()
        if now.isdigit() and now not in ("0", before):
            try:
                if http_from(app1, FLOWER_URL + "/api/workers", auth=auth, timeout=5)["status"] == 200:
                    return
            except AssertionError:
                pass
        time.sleep(1)
    pytest.fail("Flower did not answer within 240 s of a supervisord restart")


def poll(check, seconds=30):
    """check() until it returns a falsy problem or seconds pass; the last problem (None when solved).

    Flower answers HTTP before its first look at the workers has finished (one inspect round of about a
    second), so each check gets a little time; none of them asks Flower to refresh."""
    deadline = time.monotonic() + seconds
    while True:
        problem = check()
        if not problem or time.monotonic() > deadline:
            return problem
        time.sleep(2)


def test_workers_api_lists_every_declared_worker_and_its_queues(app1, auth, declared, restarted):
    def problem():
        answer = http_from(app1, FLOWER_URL + "/api/workers", auth=auth)
        assert answer["status"] == 200
        known = json.loads(answer["body"])
        missing = sorted(set(declared) - set(known))
        if missing:
            return f"Flower does not know {missing}; it knows {sorted(known)}"
        for node, queues in declared.items():
            consumed = {queue["name"] for queue in known[node].get("active_queues") or []}
            if not set(queues) <= consumed:
                return f"{node}: Flower shows queues {sorted(consumed)}, declared {queues}"
        return None

    assert poll(problem) is None, poll(problem, 0)


def test_every_declared_worker_is_online(app1, auth, declared, restarted):
    # Online comes from the workers' heartbeat events (every 2 s).
    def problem():
        status = json.loads(http_from(app1, FLOWER_URL + "/api/workers?status=1", auth=auth)["body"])
        offline = sorted(node for node in declared if not status.get(node))
        return f"offline in Flower: {offline}; status {status}" if offline else None

    assert poll(problem) is None, poll(problem, 0)


def test_broker_page_lists_every_declared_queue_with_its_message_count(app1, auth, declared, restarted):
    wanted = sorted({queue for queues in declared.values() for queue in queues})

    def problem():
        answer = http_from(app1, FLOWER_URL + "/broker", auth=auth)
        assert answer["status"] == 200
        rows = dict(re.findall(r'<tr id="([^"]+)">(.*?)</tr>', answer["body"], re.S))
        for queue in wanted:
            if queue not in rows:
                return f"queue {queue} missing on Flower's broker page: {sorted(rows)}"
            cells = re.findall(r"<td[^>]*>\s*([^<]*?)\s*</td>", rows[queue])
            # Name, messages, unacknowledged, ready, consumers, idle since (from the management API).
            if len(cells) < 4 or not cells[1].isdigit():
                return f"{queue}: no message count in {cells}"
        return None

    assert poll(problem) is None, poll(problem, 0)
