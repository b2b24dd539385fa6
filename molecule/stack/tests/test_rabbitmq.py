"""celeryops.stack.rabbitmq observed from outside: listeners, health, logins allowed and refused.

The other hosts speak AMQPS and HTTPS, verified against the lab CA (broker_client.py); the plain listeners serve
the broker's loopback only (test_tls.py proves the refusals).
"""

import json
import os
import stat

import pytest
from broker_client import STDIN_LOOKUP, STDIN_VARIABLE, run_client

# Where a leaked password would show up on the broker (the remote temporary directory included).
SEARCHED_DIRS = ["/etc", "/var/lib/rabbitmq", "/var/log", "/" + "tmp"]


@pytest.fixture(scope="module")
def names(broker):
    variables = broker.ansible.get_variables()
    return {
        # The role's own variable, else the broker contract (group_vars/all), else the roles' defaults.
        "vhost": variables.get("rabbitmq_app_vhost", variables.get("celeryops_broker_vhost", "celery")),
        "app": variables.get("rabbitmq_app_user", variables.get("celeryops_broker_app_user", "celery")),
        "admin": variables.get("rabbitmq_admin_user", "admin"),
        "monitoring": variables.get(
            "rabbitmq_monitoring_user", variables.get("celeryops_broker_monitoring_user", "monitoring")
        ),
        "flower": variables.get("rabbitmq_flower_user", variables.get("celeryops_broker_flower_user", "flower")),
        # What the other hosts use: the TLS listeners.
        "amqp_port": int(variables.get("rabbitmq_amqps_port", variables.get("celeryops_broker_tls_port", 5671))),
        "management_port": int(variables.get("rabbitmq_management_tls_port", 15671)),
        # The plain listeners, on the broker's loopback.
        "plain_amqp_port": int(variables.get("rabbitmq_amqp_port", variables.get("celeryops_broker_port", 5672))),
        "plain_management_port": int(variables.get("rabbitmq_management_port", 15672)),
        # Erlang's port mapper and distribution port.
        "epmd_port": 4369,
        "distribution_port": 25672,
    }


@pytest.fixture(scope="module")
def passwords(credentials_dir, names):
    return {
        key: (credentials_dir / f"rabbitmq_{names[key]}.password").read_text().strip()
        for key in ("app", "admin", "monitoring", "flower")
    }


@pytest.fixture(scope="module")
def amqp_client(app1):
    """app1 with Debian's python3-amqp, the AMQP client of the tests."""
    if app1.run("python3 -c 'import amqp'").rc != 0:
        app1.run("apt-get update -qq")
        app1.run_expect([0], "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-amqp")
    return app1


# The TLS listeners serve every IPv4 interface (the roles' default), the plain ones the broker's loopback.
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104 - the address a listener is expected on, not a bind of this test


@pytest.mark.parametrize(
    ("port", "address"),
    [
        ("amqp_port", EVERY_INTERFACE),
        ("management_port", EVERY_INTERFACE),
        ("plain_amqp_port", "127.0.0.1"),
        ("plain_management_port", "127.0.0.1"),
        ("epmd_port", "127.0.0.1"),
        ("distribution_port", "127.0.0.1"),
    ],
)
def test_listeners(broker, names, port, address):
    listening = broker.socket.get_listening_sockets()
    assert f"tcp://{address}:{names[port]}" in listening, listening


def test_cli_tools_reach_the_node_on_loopback(broker):
    """The node keeps its name, rabbit@<short host name>, though the system resolves that name to the container's
    address, where neither epmd nor the distribution port listen: the CLI tools still reach the node."""
    with broker.sudo():
        hostname = broker.check_output("hostname -s")
        assert not broker.check_output("getent hosts %s", hostname).startswith("127.")
        assert broker.check_output("rabbitmqctl --quiet eval 'node().'") == f"rabbit@{hostname}"
        assert broker.run("rabbitmq-diagnostics --quiet ping").rc == 0


# Not check_port_connectivity: it connects to every listener through the node's host name, which the loopback-only
# plain listeners never answer; test_tls.py connects to each listener from where its clients are instead.
@pytest.mark.parametrize("check", ["check_running", "check_local_alarms"])
def test_diagnostics(broker, check):
    assert broker.run(f"rabbitmq-diagnostics --quiet {check}").rc == 0


def test_service_enabled(broker):
    service = broker.service("rabbitmq-server")
    assert service.is_running
    assert service.is_enabled


def test_app_user_roundtrip_on_its_vhost(amqp_client, names, passwords):
    result = run_client(amqp_client, "amqp", names["app"], names["vhost"], names["amqp_port"], passwords["app"])
    assert result == {"login": True, "roundtrip": True}


def test_app_user_refused_on_other_vhost(amqp_client, names, passwords):
    result = run_client(amqp_client, "amqp", names["app"], "/", names["amqp_port"], passwords["app"])
    assert result["login"] is False


@pytest.mark.reliability("AMQP login as the application user with a wrong password", "refused")
def test_app_user_refused_with_wrong_password(amqp_client, names):
    result = run_client(amqp_client, "amqp", names["app"], names["vhost"], names["amqp_port"], "not-the-password")
    assert result["login"] is False


@pytest.mark.reliability("AMQP login as guest", "refused (guest is deleted)")
def test_guest_refused_over_amqp(amqp_client, names):
    result = run_client(amqp_client, "amqp", "guest", "/", names["amqp_port"], "guest")
    assert result["login"] is False


@pytest.mark.reliability("AMQP login without credentials", "refused")
def test_anonymous_login_refused(amqp_client, names):
    result = run_client(amqp_client, "anonymous", "", names["vhost"], names["amqp_port"])
    assert result["login"] is False


@pytest.mark.reliability("management API as guest, from the broker itself", "refused")
def test_guest_refused_over_http_even_on_loopback(broker, names):
    result = run_client(
        broker, "http", "guest", "/api/whoami", names["plain_management_port"], "guest", "127.0.0.1", cafile=""
    )
    assert result["status"] == 401


@pytest.mark.reliability("management API without credentials, from an app host", "refused (401)")
def test_management_api_needs_credentials(app1, names):
    assert run_client(app1, "http", "", "/api/overview", names["management_port"])["status"] == 401


def test_admin_can_use_management_api(app1, names, passwords):
    result = run_client(app1, "http", names["admin"], "/api/whoami", names["management_port"], passwords["admin"])
    assert result["status"] == 200
    assert "administrator" in result["body"]["tags"]


def test_monitoring_user_reads_queues(amqp_client, names, passwords):
    result = run_client(
        amqp_client, "http", names["monitoring"], "/api/queues", names["management_port"], passwords["monitoring"]
    )
    assert result["status"] == 200
    assert isinstance(result["body"], list)


@pytest.mark.parametrize("user", ["flower", "monitoring"])
@pytest.mark.reliability(
    "Flower's and the monitoring user's AMQP rights on the tasks: read the queue `celery`, publish to the exchange "
    "`celery` and through the default exchange",
    "each refused by the broker (403 ACCESS_REFUSED); the application user is allowed all three",
)
def test_watchers_can_neither_read_nor_send_tasks(amqp_client, names, passwords, user, observe):
    result = run_client(amqp_client, "reach", names[user], names["vhost"], names["amqp_port"], passwords[user])
    app = run_client(amqp_client, "reach", names["app"], names["vhost"], names["amqp_port"], passwords["app"])
    observe(f"{names[user]}: " + ", ".join(f"{k} {str(v)[:11]}" for k, v in result.items() if k != "login"))
    assert result["login"] is True, result
    for action in ("read", "publish", "default"):
        assert result[action].startswith("refused 403"), result
    # The twin: the same attempts as the application user pass, so the refusals come from the permissions.
    assert app == {"login": True, "read": "allowed", "publish": "allowed", "default": "allowed"}, app


def test_flower_connects_as_its_own_user(broker, names):
    with broker.sudo():
        out = broker.check_output("rabbitmqctl --quiet list_connections user --formatter json")
    users = {c["user"] for c in json.loads(out)}
    assert names["flower"] in users, users


@pytest.mark.reliability("management API as the application user", "refused: no management tag")
def test_app_user_is_not_a_management_user(app1, names, passwords):
    result = run_client(app1, "http", names["app"], "/api/overview", names["management_port"], passwords["app"])
    assert result["status"] == 401


@pytest.mark.reliability("broker passwords in files other accounts can read", "none")
def test_no_password_in_files_readable_by_others(broker, passwords):
    """As nobody, grep the broker's usual places for every password (patterns on stdin)."""
    os.environ[STDIN_VARIABLE] = "\n".join(passwords.values())
    try:
        args = {
            "argv": ["runuser", "-u", "nobody", "--", "grep", "-rlsF", "-f", "/dev/stdin", *SEARCHED_DIRS],
            "stdin": STDIN_LOOKUP,
        }
        result = broker.ansible("ansible.builtin.command", json.dumps(args), check=False)
    finally:
        del os.environ[STDIN_VARIABLE]
    assert result.get("rc") in (1, 2), result
    assert result.get("stdout", "") == ""


def test_cookie_file(broker):
    cookie = broker.file("/var/lib/rabbitmq/.erlang.cookie")
    assert cookie.user == "rabbitmq"
    assert cookie.mode == 0o400


def test_controller_credentials_are_private(credentials_dir, names):
    files = [credentials_dir / f"rabbitmq_{names[key]}.password" for key in ("app", "admin", "monitoring", "flower")]
    files.append(credentials_dir / "rabbitmq_erlang_cookie")
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
