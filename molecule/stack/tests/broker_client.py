"""A client of the broker run on a lab host: AMQP(S) logins with a round trip, and management API requests.

Passwords are read from the controller's credentials directory and reach the hosts only on the standard input
of the remote command: the ad-hoc module arguments carry an env lookup, never the password itself.
"""

import json
import os

from stack_helpers import CA_FILE

# The remote command's standard input: an env lookup the ad-hoc run resolves, so no argv carries the value.
STDIN_VARIABLE = "CELERYOPS_TEST_STDIN"
STDIN_LOOKUP = "{{ lookup('ansible.builtin.env', '" + STDIN_VARIABLE + "') }}"

# Runs on an app host or the broker with the standard library (and python3-amqp for the AMQP modes).
# argv: mode, user, vhost or URL path, host, port, CA file (empty: plain AMQP or HTTP); the password comes on
# stdin. With a CA file the connection is TLS, verified against that CA and the host name. Modes: http (one GET),
# amqp (login, then a round trip through a queue of its own), anonymous (login without credentials), reach (what
# the user may do with Celery's task queue and exchange `celery`: read a message, publish to the exchange with a
# routing key nothing is bound to, publish through the default exchange to a queue that does not exist; each on a
# connection of its own, so no task is taken or sent even when the broker allows it).
CLIENT = r"""
import base64, json, ssl, sys, time, urllib.error, urllib.request, uuid
mode, user, target, host, port, cafile = sys.argv[1:7]
password = sys.stdin.read().rstrip("\n")
if mode == "http":
    scheme = "https" if cafile else "http"
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    request = urllib.request.Request(f"{scheme}://{host}:{port}{target}")
    if user:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", "Basic " + token)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            print(json.dumps({"status": response.status, "body": json.loads(response.read() or b"null")}))
    except urllib.error.HTTPError as error:
        print(json.dumps({"status": error.code, "body": None}))
    except (urllib.error.URLError, OSError) as error:
        print(json.dumps({"status": None, "error": type(error).__name__ + ": " + str(error)}))
    sys.exit(0)
import amqp, amqp.sasl
class Anonymous(amqp.sasl.SASL):
    mechanism = b"ANONYMOUS"
    def start(self, connection):
        return b""
options = {"host": f"{host}:{port}", "virtual_host": target, "connect_timeout": 10}
if cafile:
    options["ssl"] = {"ca_certs": cafile, "cert_reqs": ssl.CERT_REQUIRED, "server_hostname": host}
if mode == "anonymous":
    options["authentication"] = (Anonymous(),)
else:
    options.update(userid=user, password=password)
if mode == "reach":
    def attempt(action):
        try:
            # Publisher confirms: basic_publish waits for the broker's answer, a refusal included.
            connection = amqp.Connection(**options, confirm_publish=True)
            connection.connect()
            channel = connection.channel()
            if action == "read":
                message = channel.basic_get("celery", no_ack=False)
                if message is not None:
                    channel.basic_reject(message.delivery_tag, requeue=True)
            else:
                exchange = "celery" if action == "publish" else ""
                channel.basic_publish(amqp.Message("{}"), exchange=exchange, routing_key="celeryops-test-nowhere")
            connection.close()
            return "allowed"
        except amqp.exceptions.AMQPError as error:
            connection.collect()
            return f"refused {getattr(error, 'reply_code', '?')}: {error}"
    try:
        with amqp.Connection(**options):
            pass
    except Exception as error:
        print(json.dumps({"login": False, "error": type(error).__name__ + ": " + str(error)}))
        sys.exit(0)
    print(json.dumps({"login": True, **{action: attempt(action) for action in ("read", "publish", "default")}}))
    sys.exit(0)
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


def run_client(host, mode, user, target, port, secret="", server="broker", cafile=CA_FILE):
    """Run CLIENT on host (TLS verified against ``cafile`` on that host; "" for plain); the secret travels
    through this process's environment and the remote stdin."""
    os.environ[STDIN_VARIABLE] = secret
    try:
        args = {
            "argv": ["python3", "-c", CLIENT, mode, user, target, server, str(port), cafile],
            "stdin": STDIN_LOOKUP,
        }
        result = host.ansible("ansible.builtin.command", json.dumps(args), check=False)
    finally:
        del os.environ[STDIN_VARIABLE]
    assert result.get("rc") == 0, result.get("stderr") or result.get("msg")
    return json.loads(result["stdout"])
