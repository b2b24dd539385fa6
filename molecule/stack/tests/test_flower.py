"""Flower on app1, seen from app2 (another host) and from app1 itself.

Flower answers only with basic auth, lists the workers of both app hosts online, shows the queues on its
broker page (RabbitMQ management API), runs as `flower` under supervisor after the workers, and keeps every
secret out of argv and the world-readable supervisor program file.
"""

import json
import re

import pytest
from stack_helpers import FLOWER_URL, http_from

EXPECTED_WORKERS = {"celery@customers.app1", "celery@celery.app2"}
EXPECTED_QUEUES = ("customers", "celery")


class _Secret(str):
    """A secret string that never shows in pytest's failure reports."""

    def __repr__(self):
        return "'<secret>'"


def _read_secret(path):
    return _Secret(path.read_text().strip())


def _get(host, path, auth=None):
    return http_from(host, FLOWER_URL + path, auth=auth)


@pytest.fixture(scope="module")
def basic_auth(credentials_dir):
    """The generated basic auth credentials: <credentials>/flower_<user>.password."""
    files = sorted(credentials_dir.glob("flower_*.password"))
    assert files, f"no flower_<user>.password in {credentials_dir}"
    path = files[0]
    user = path.name[len("flower_") : -len(".password")]
    return user, _read_secret(path)


@pytest.fixture(scope="module")
def secrets(credentials_dir, basic_auth):
    """Every secret Flower holds: its basic auth password and the passwords of its broker user and of the
    monitoring user."""
    values = [basic_auth[1]]
    for user in ("flower", "monitoring"):
        values.append(_read_secret(credentials_dir / f"rabbitmq_{user}.password"))
    assert all(len(v) >= 16 for v in values)
    return values


@pytest.mark.parametrize("path", ["/", "/workers", "/api/workers", "/broker", "/metrics"])
@pytest.mark.reliability("Flower's pages and API without credentials", "refused (401)")
def test_refuses_requests_without_credentials(app2, path):
    assert _get(app2, path)["status"] == 401


@pytest.mark.reliability("Flower with a wrong basic auth password", "refused (401)")
def test_refuses_a_wrong_password(app2, basic_auth):
    user, password = basic_auth
    assert _get(app2, "/api/workers", _Secret(f"{user}:{password}x"))["status"] == 401
    assert _get(app2, "/api/workers", f"{user}:wrong-password-123456")["status"] == 401


@pytest.mark.reliability("Flower's /metrics with the basic auth credentials", "200, the Prometheus exposition")
def test_metrics_answer_a_logged_in_scraper(app2, basic_auth, observe):
    user, password = basic_auth
    answer = _get(app2, "/metrics", _Secret(f"{user}:{password}"))
    observe(f"status {answer['status']}, {len(answer.get('body') or '')} bytes")
    assert answer["status"] == 200
    assert "flower_events_total" in answer["body"] or "flower_worker_online" in answer["body"], answer["body"][:500]


def test_lists_both_workers_online(app2, basic_auth):
    user, password = basic_auth
    answer = _get(app2, "/api/workers?refresh=1&status=1", _Secret(f"{user}:{password}"))
    assert answer["status"] == 200
    status = json.loads(answer["body"])
    online = {name for name, up in status.items() if up}
    assert online >= EXPECTED_WORKERS, f"online workers: {sorted(online)}; all known: {sorted(status)}"


def test_broker_page_shows_the_queues(app2, basic_auth):
    user, password = basic_auth
    # Workers first, so Flower knows the active queues it asks the management API about.
    _get(app2, "/api/workers?refresh=1", _Secret(f"{user}:{password}"))
    answer = _get(app2, "/broker", _Secret(f"{user}:{password}"))
    assert answer["status"] == 200
    rows = set(re.findall(r'<tr id="([^"]+)"', answer["body"]))
    for queue in EXPECTED_QUEUES:
        assert queue in rows, f"queue {queue} missing on the broker page: {sorted(rows)}"


def test_runs_as_flower_under_supervisor(app1):
    with app1.sudo():
        status = app1.check_output("supervisorctl status flower")
        pid = int(app1.check_output("supervisorctl pid flower"))
    assert " RUNNING " in f" {status} "
    assert app1.check_output("ps -o user= -p %s", str(pid)).strip() == "flower"
    assert app1.socket("tcp://0.0.0.0:5555").is_listening


def _priorities(host):
    """Program name -> supervisor priority (999 when unset) of every program file in conf.d."""
    result = {}
    with host.sudo():
        files = host.check_output("ls /etc/supervisor/conf.d").split()
        for name in files:
            if not name.endswith(".conf"):
                continue
            text = host.file(f"/etc/supervisor/conf.d/{name}").content_string
            for program, body in re.findall(r"^\[program:([^\]]+)\]\n((?:(?!^\[).*\n?)*)", text, re.M):
                match = re.search(r"^priority\s*=\s*(\d+)", body, re.M)
                result[program] = int(match.group(1)) if match else 999
    return result


def test_starts_after_every_worker(app1):
    priorities = _priorities(app1)
    workers = {name: prio for name, prio in priorities.items() if name.startswith("celery-")}
    assert "flower" in priorities
    assert workers, f"no celery-* program on app1: {sorted(priorities)}"
    assert all(priorities["flower"] > prio for prio in workers.values()), priorities


@pytest.mark.parametrize("path", ["/etc/flower/flowerconfig.py", "/etc/flower/flower.env", "/etc/flower/flower.key"])
def test_secret_files_are_root_flower_0640(app1, path):
    with app1.sudo():
        f = app1.file(path)
        assert f.is_file
        assert f.user == "root"
        assert f.group == "flower"
        assert f.mode == 0o640


def test_state_is_kept_by_flower(app1):
    with app1.sudo():
        d = app1.file("/var/lib/flower")
        assert d.user == "flower"
        assert d.mode & 0o007 == 0
        assert app1.check_output("find /var/lib/flower -maxdepth 1 -name 'flower*' -user flower")


@pytest.mark.reliability("Flower's secrets in argv or its supervisor program file", "none")
def test_no_secret_in_argv_or_program_file(app1, secrets):
    with app1.sudo():
        argv = app1.check_output("ps -eo args")
        program = app1.file("/etc/supervisor/conf.d/flower.conf").content_string
        wrapper = app1.file("/opt/flower/bin/flower-run").content_string
    assert "flower" in argv
    places = {"ps argv on app1": argv, "flower.conf": program, "flower-run": wrapper}
    leaks = [where for where, text in places.items() if any(secret in text for secret in secrets)]
    assert not leaks, f"a secret appears in: {leaks}"


def test_controller_password_file_is_0600(credentials_dir):
    files = sorted(credentials_dir.glob("flower_*.password"))
    assert files
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600
