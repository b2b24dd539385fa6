"""celeryops.stack.rabbitmq observed from outside: listeners, health, logins allowed and refused.

Passwords are read from the controller's credentials directory and reach the hosts only on the standard input
of the remote command: the ad-hoc module arguments carry an env lookup, never the password itself.
"""

import json
import os
import stat

import pytest

# The remote command's standard input: an env lookup the ad-hoc run resolves, so no argv carries the value.
STDIN_VARIABLE = "CELERYOPS_TEST_STDIN"
STDIN_LOOKUP = "{{ lookup('ansible.builtin.env', '" + STDIN_VARIABLE + "') }}"
# Where a leaked password would show up on the broker (the remote temporary directory included).
SEARCHED_DIRS = ["/etc", "/var/lib/rabbitmq", "/var/log", "/" + "tmp"]

# Runs on app1 or the broker with the standard library (and python3-amqp for the AMQP modes).
# argv: mode, user, vhost or URL path, host, port; the password comes on stdin.
CLIENT = r"""
import base64, json, sys, time, urllib.error, urllib.request, uuid
mode, user, target, host, port = sys.argv[1:6]
password = sys.stdin.read().rstrip("\n")
if mode == "http":
    request = urllib.request.Request(f"http://{host}:{port}{target}")
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            print(json.dumps({"status": response.status, "body": json.loads(response.read() or b"null")}))
    except urllib.error.HTTPError as error:
        print(json.dumps({"status": error.code, "body": None}))
    sys.exit(0)
import amqp, amqp.sasl
class Anonymous(amqp.sasl.SASL):
    mechanism = b"ANONYMOUS"
    def start(self, connection):
        return b""
options = {"host": f"{host}:{port}", "virtual_host": target, "connect_timeout": 10}
if mode == "anonymous":
    options["authentication"] = (Anonymous(),)
else:
    options.update(userid=user, password=password)
try:
    with amqp.Connection(**options) as connection:
        channel = connection.channel()
        queue = "celeryops-test-" + uuid.uuid4().hex[:8]
        channel.queue_declare(queue, auto_delete=False)
        body = uuid.uuid4().hex
        channel.basic_publish(amqp.Message(body), routing_key=queue)
        message = None
        for _ in range(50):
            message = channel.basic_get(queue, no_ack=True)
            if message is not None:
                break
            time.sleep(0.1)
        channel.queue_delete(queue)
        print(json.dumps({"login": True, "roundtrip": message is not None and message.body == body}))
except Exception as error:
    print(json.dumps({"login": False, "error": type(error).__name__ + ": " + str(error)}))
"""


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
        "amqp_port": int(variables.get("rabbitmq_amqp_port", variables.get("celeryops_broker_port", 5672))),
        "management_port": int(variables.get("rabbitmq_management_port", 15672)),
    }


@pytest.fixture(scope="module")
def passwords(credentials_dir, names):
    return {
        key: (credentials_dir / f"rabbitmq_{names[key]}.password").read_text().strip()
        for key in ("app", "admin", "monitoring")
    }


@pytest.fixture(scope="module")
def amqp_client(app1):
    """app1 with Debian's python3-amqp, the AMQP client of the tests."""
    if app1.run("python3 -c 'import amqp'").rc != 0:
        app1.run("apt-get update -qq")
        app1.run_expect([0], "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-amqp")
    return app1


def run_client(host, mode, user, target, port, secret="", server="broker"):
    """Run CLIENT on host; the secret travels through this process's environment and the remote stdin."""
    os.environ[STDIN_VARIABLE] = secret
    try:
        args = {
            "argv": ["python3", "-c", CLIENT, mode, user, target, server, str(port)],
            "stdin": STDIN_LOOKUP,
        }
        result = host.ansible("ansible.builtin.command", json.dumps(args), check=False)
    finally:
        del os.environ[STDIN_VARIABLE]
    assert result.get("rc") == 0, result.get("stderr") or result.get("msg")
    return json.loads(result["stdout"])


@pytest.mark.parametrize("port", ["amqp_port", "management_port"])
def test_listeners(broker, names, port):
    listening = broker.socket.get_listening_sockets()
    assert any(s.startswith("tcp://") and s.endswith(f":{names[port]}") for s in listening), listening


@pytest.mark.parametrize("check", ["check_running", "check_local_alarms", "check_port_connectivity"])
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
    result = run_client(broker, "http", "guest", "/api/whoami", names["management_port"], "guest", "127.0.0.1")
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
    files = [credentials_dir / f"rabbitmq_{names[key]}.password" for key in ("app", "admin", "monitoring")]
    files.append(credentials_dir / "rabbitmq_erlang_cookie")
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
