"""TLS on every link of the lab, observed: the other hosts reach the broker and Flower only through TLS listeners
whose certificates they verify against the lab CA (celeryops.stack.lab_ca) by name; a client trusting another CA,
or reaching the broker by a name its certificate does not carry, is refused; the plain listeners answer on the
broker's loopback only; the keys are readable by their service alone; every connection the workers and Flower
hold is TLS.
"""

import json
import re
import stat

import pytest
from broker_client import run_client
from stack_helpers import BROKER_CA_FILE, CA_FILE, FLOWER_URL, http_from

# A CA of the test's own on app1: a client that trusts it, not the lab CA, must be refused.
OTHER_CA = "/root/celeryops-test-other-ca.crt"
# Non-loopback TCP listeners each lab host may have: the TLS ones (Erlang's epmd and distribution port serve the
# broker's loopback; the broker's metrics and every host's node exporter (9100) over HTTPS require a client
# certificate; Prometheus and Alertmanager serve the monitoring host's loopback).
NODE_EXPORTER = 9100
TLS_LISTENERS = {
    "broker": {5671, 15671, 15691, NODE_EXPORTER},
    "app1": {5555, NODE_EXPORTER},
    "app2": {NODE_EXPORTER},
    "monitor": {NODE_EXPORTER},
}


@pytest.fixture(scope="module")
def passwords(credentials_dir):
    return {user: (credentials_dir / f"rabbitmq_{user}.password").read_text().strip() for user in ("myproject",)}


@pytest.fixture(scope="module")
def amqp_client(app1):
    """app1 with Debian's python3-amqp, and a CA of the test's own beside the lab's."""
    with app1.sudo():
        if app1.run("python3 -c 'import amqp'").rc != 0:
            app1.run("apt-get update -qq")
            app1.run_expect([0], "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-amqp")
        app1.run_expect(
            [0],
            "test -s %s || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
            "-subj /CN=another-ca -keyout /root/celeryops-test-other-ca.key -out %s",
            OTHER_CA,
            OTHER_CA,
        )
    return app1


def _listeners(host):
    """(address, port) of every TCP listener of the host."""
    out = host.check_output("ss -Hltn")
    found = set()
    for line in out.splitlines():
        local = line.split()[3]
        address, port = local.rsplit(":", 1)
        found.add((address.strip("[]"), int(port)))
    return found


@pytest.mark.parametrize("name", ["broker", "app1", "app2", "monitor"])
@pytest.mark.reliability(
    "TCP listeners on non-loopback addresses (ss -ltn), every lab host",
    "TLS ports only (AMQPS 5671, HTTPS management 15671, HTTPS metrics 15691 and the node exporter's 9100 with a "
    "client certificate, Flower 5555); plain AMQP, HTTP, metrics, epmd and Erlang's distribution, Prometheus and "
    "Alertmanager on loopback",
)
def test_no_cleartext_listener_outside_loopback(request, name, observe):
    host = request.getfixturevalue(name)
    # Docker's embedded DNS listens on 127.0.0.11 inside each container.
    exposed = {port for address, port in _listeners(host) if not re.match(r"^(127\.|::1$)", address)}
    observe(f"{name}: {sorted(exposed)}")
    assert exposed <= TLS_LISTENERS[name], sorted(exposed)
    assert TLS_LISTENERS[name] <= exposed


@pytest.mark.parametrize(("port", "kind"), [(5672, "AMQP"), (15672, "management HTTP")])
@pytest.mark.reliability("plain AMQP and HTTP management from an app host", "refused: nothing listens there")
def test_plain_listeners_refuse_other_hosts(amqp_client, passwords, port, kind, observe):
    mode = "amqp" if kind == "AMQP" else "http"
    target = "myproject" if mode == "amqp" else "/api/overview"
    result = run_client(amqp_client, mode, "myproject", target, port, passwords["myproject"], cafile="")
    observe(f"{kind} {port}: {result.get('error')}")
    assert result.get("login") is not True
    assert result.get("status") is None
    assert "Connection refused" in result["error"] or "Errno 111" in result["error"], result


@pytest.mark.reliability("AMQPS client that trusts another CA", "refused: certificate verify failed")
def test_amqps_client_with_another_ca_is_refused(amqp_client, passwords, observe):
    result = run_client(amqp_client, "amqp", "myproject", "myproject", 5671, passwords["myproject"], cafile=OTHER_CA)
    observe(result.get("error", "logged in"))
    assert result["login"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in result["error"], result


@pytest.mark.reliability(
    "AMQPS client that reaches the broker by an address its certificate does not name",
    "refused: hostname mismatch",
)
def test_amqps_by_unnamed_address_is_refused(amqp_client, broker, passwords, observe):
    address = amqp_client.check_output("getent hosts broker").split()[0]
    result = run_client(amqp_client, "amqp", "myproject", "myproject", 5671, passwords["myproject"], server=address)
    observe(result.get("error", "logged in"))
    assert result["login"] is False
    assert "CERTIFICATE_VERIFY_FAILED" in result["error"], result
    assert "IP address mismatch" in result["error"], result


def test_amqps_with_the_lab_ca_logs_in(amqp_client, passwords):
    result = run_client(amqp_client, "amqp", "myproject", "myproject", 5671, passwords["myproject"])
    assert result == {"login": True, "roundtrip": True}


@pytest.mark.parametrize("url", [FLOWER_URL + "/api/workers", "https://broker:15671/api/overview"])
@pytest.mark.reliability("HTTPS client of Flower or the management API that trusts another CA", "refused")
def test_https_with_another_ca_is_refused(amqp_client, url, observe):
    answer = http_from(amqp_client, url, cafile=OTHER_CA)
    observe(f"{url}: {answer.get('error')}")
    assert answer["status"] is None
    assert "CERTIFICATE_VERIFY_FAILED" in answer["error"], answer


@pytest.mark.parametrize("url", [FLOWER_URL + "/api/workers", "https://broker:15671/api/overview"])
def test_https_with_the_lab_ca_asks_for_credentials(app2, url):
    assert http_from(app2, url)["status"] == 401


def _address(peer_host):
    """rabbitmqctl's JSON gives an IPv4 peer as a list of numbers on RabbitMQ 3.10, as a string elsewhere."""
    return ".".join(map(str, peer_host)) if isinstance(peer_host, list) else str(peer_host)


@pytest.mark.reliability("connections the workers and Flower hold to the broker", "all TLS, none from loopback")
def test_every_client_connection_is_tls(broker, observe):
    with broker.sudo():
        out = broker.check_output("rabbitmqctl --quiet list_connections user peer_host ssl --formatter json")
    connections = [c for c in json.loads(out) if not _address(c["peer_host"]).startswith("127.")]
    observe(f"{len(connections)} connections, {sum(bool(c['ssl']) for c in connections)} over TLS")
    assert connections, "no client connected"
    assert all(c["ssl"] for c in connections), connections


@pytest.mark.parametrize(
    ("name", "path", "group"),
    [
        ("broker", "/etc/rabbitmq/tls/server.key", "rabbitmq"),
        ("app1", "/etc/flower/flower.key", "flower"),
        ("app2", "/etc/prometheus-node-exporter/server.key", "prometheus"),
    ],
)
@pytest.mark.reliability("TLS private keys on the hosts", "root:<service group> 0640, unreadable by others")
def test_keys_are_private(request, name, path, group, observe):
    host = request.getfixturevalue(name)
    with host.sudo():
        key = host.file(path)
        observe(f"{path}: {key.user}:{key.group} {key.mode:04o}")
        assert (key.user, key.group, key.mode) == ("root", group, 0o640)
        assert host.run("runuser -u nobody -- cat %s", path).rc != 0


def test_ca_copies_are_the_lab_ca(credentials_dir, broker, app1, app2):
    ca = (credentials_dir / "tls" / "ca.crt").read_text()
    with broker.sudo():
        assert broker.file(BROKER_CA_FILE).content_string == ca
    for host in (app1, app2):
        with host.sudo():
            assert host.file(CA_FILE).content_string == ca


@pytest.mark.reliability("the lab CA's keys on the controller", "0600 in a 0700 directory")
def test_controller_keys_are_private(credentials_dir, observe):
    directory = credentials_dir / "tls"
    keys = sorted(directory.glob("*.key"))
    observe(f"{len(keys)} keys, directory {stat.S_IMODE(directory.stat().st_mode):04o}")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert keys
    assert all(stat.S_IMODE(key.stat().st_mode) == 0o600 for key in keys)
