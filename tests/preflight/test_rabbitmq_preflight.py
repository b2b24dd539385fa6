"""Bad input stops celeryops.stack.rabbitmq in its preflight stage, before anything changes.

Each case runs the whole role in check mode against localhost with one bad variable and asserts that the run
fails, that the failure names the variable, that no task after the preflight stage ran, and that no secret
was generated. No lab needed.
"""

import json
import pathlib
import re
import sys

import pytest
from role_runner import run_playbook
from tls_files import tls_variables

PLAYBOOK = pathlib.Path(__file__).with_name("rabbitmq_preflight.yml")
# The first task after the preflight stage: if it shows up, preflight let the bad input through.
FIRST_TASK_AFTER_PREFLIGHT = "Resolve the broker's passwords and Erlang cookie"
WEAK_SECRET = "weak-Secret-42"


def run_role(
    tmp_path, extra_vars, *options, inventory="localhost,", credentials=None, environment=None, playbook=PLAYBOOK
):
    """Run the role (``playbook``) on localhost in check mode with extra_vars (JSON keeps their types), from
    ``inventory``, with the credentials directory ``credentials`` (``tmp_path``/credentials) and ``environment``
    added."""
    credentials = credentials or tmp_path / "credentials"
    quiet = {
        "ANSIBLE_LOCALHOST_WARNING": "0",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
        "ANSIBLE_CACHE_PLUGIN": "memory",
    }
    variables = {"rabbitmq_credentials_dir": str(credentials), **tls_variables(tmp_path / "tls"), **extra_vars}
    argv = ["--check", "-i", str(inventory), str(playbook), "-e", json.dumps(variables), *options]
    return run_playbook(argv, {**quiet, **(environment or {})}, timeout=120), credentials


BAD_INPUT = {
    "weak app password": ({"rabbitmq_app_password": WEAK_SECRET}, "rabbitmq_app_password"),
    "long app password of one repeated character": ({"rabbitmq_app_password": "a" * 24}, "only 1 distinct character"),
    "common admin password padded to length": (
        {"rabbitmq_admin_password": "Password1234567!"},
        "built around a common password (password)",
    ),
    "keyboard-run monitoring password": ({"rabbitmq_monitoring_password": "qwertyuiopasdfgh"}, "sequence"),
    "blank admin password": ({"rabbitmq_admin_password": " " * 20}, "rabbitmq_admin_password"),
    "padded monitoring password": (
        {"rabbitmq_monitoring_password": " " + "x" * 20},
        "rabbitmq_monitoring_password",
    ),
    "short Erlang cookie": ({"rabbitmq_erlang_cookie": "abc123"}, "rabbitmq_erlang_cookie"),
    "cookie with symbols": ({"rabbitmq_erlang_cookie": "a" * 25 + "!$"}, "rabbitmq_erlang_cookie"),
    "vhost with a space": ({"rabbitmq_app_vhost": "my project"}, "rabbitmq_app_vhost"),
    "vhost slash": ({"rabbitmq_app_vhost": "/"}, "rabbitmq_app_vhost"),
    "user with a slash": ({"rabbitmq_app_user": "my/project"}, "rabbitmq_app_user"),
    "admin named guest": ({"rabbitmq_admin_user": "guest"}, "rabbitmq_admin_user"),
    "empty monitoring user": ({"rabbitmq_monitoring_user": ""}, "rabbitmq_monitoring_user"),
    "same user twice": ({"rabbitmq_monitoring_user": "admin"}, "rabbitmq_monitoring_user"),
    "Flower's user is the application user": ({"rabbitmq_flower_user": "celery"}, "rabbitmq_flower_user"),
    "Flower user with a space": ({"rabbitmq_flower_user": "flower ui"}, "rabbitmq_flower_user"),
    "weak Flower password": ({"rabbitmq_flower_password": WEAK_SECRET}, "rabbitmq_flower_password"),
    "AMQP port too high": ({"rabbitmq_amqp_port": 70000}, "rabbitmq_amqp_port"),
    "management port zero": ({"rabbitmq_management_port": 0}, "rabbitmq_management_port"),
    "management port equals AMQP port": ({"rabbitmq_management_port": 5672}, "rabbitmq_management_port"),
    "watermark above 1": ({"rabbitmq_vm_memory_high_watermark": 1.5}, "rabbitmq_vm_memory_high_watermark"),
    "watermark zero": ({"rabbitmq_vm_memory_high_watermark": 0}, "rabbitmq_vm_memory_high_watermark"),
    "unknown plugin": ({"rabbitmq_plugins": ["rabbitmq_management", "rabbitmq_nonsense"]}, "rabbitmq_plugins"),
    "management plugin missing": ({"rabbitmq_plugins": ["rabbitmq_prometheus"]}, "rabbitmq_plugins"),
    "disk limit not a size": ({"rabbitmq_disk_free_limit": "lots"}, "rabbitmq_disk_free_limit"),
    "consumer timeout too short": ({"rabbitmq_consumer_timeout": 1000}, "rabbitmq_consumer_timeout"),
    "AMQPS port equals the plain AMQP port": ({"rabbitmq_amqps_port": 5672}, "rabbitmq_amqps_port"),
    "HTTPS management port out of range": ({"rabbitmq_management_tls_port": 65536}, "rabbitmq_management_tls_port"),
    "listener address given as a host name": ({"rabbitmq_amqp_address": "broker.example"}, "rabbitmq_amqp_address"),
    "listener address with an octet above 255": (
        {"rabbitmq_amqps_address": "10.0.0.256"},
        "rabbitmq_amqps_address",
    ),
    "TLS switch given as a word": ({"rabbitmq_tls": "maybe"}, "rabbitmq_tls"),
    "TLS on without a certificate": ({"rabbitmq_tls_cert_file": ""}, "rabbitmq_tls_cert_file is empty"),
    "certificate file missing on the controller": (
        {"rabbitmq_tls_cert_file": "/nonexistent/broker.crt"},
        "rabbitmq_tls_cert_file (/nonexistent/broker.crt) cannot be read on the controller",
    ),
    "certificate path relative": ({"rabbitmq_tls_ca_file": "tls/ca.crt"}, "rabbitmq_tls_ca_file (tls/ca.crt) is not"),
}

# Mistakes with real files: each maps the test's TLS directory to the variables that make the mistake.
BAD_TLS_FILES = {
    "private key given as the CA": (
        lambda tls: {"rabbitmq_tls_ca_file": str(tls / "host.key")},
        "rabbitmq_tls_ca_file",
    ),
    "key of another certificate": (
        lambda tls: {"rabbitmq_tls_key_file": tls_variables(tls / "other")["celeryops_tls_key_file"]},
        "rabbitmq_tls_key_file is not the private key of the certificate in rabbitmq_tls_cert_file",
    ),
}


@pytest.mark.parametrize(("extra_vars", "variable"), list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_stops_in_preflight(tmp_path, extra_vars, variable):
    proc, credentials = run_role(tmp_path, extra_vars)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert variable in output, output
    assert FIRST_TASK_AFTER_PREFLIGHT not in output, output
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 .*failed=1", output), output
    assert not credentials.exists(), "a secret was generated although preflight failed"
    assert WEAK_SECRET not in output, "the rejected password was printed"
    for name, value in extra_vars.items():
        if name.endswith("_password"):
            assert value not in output, f"the rejected {name} was printed"


@pytest.mark.parametrize(("make_vars", "expected"), list(BAD_TLS_FILES.values()), ids=list(BAD_TLS_FILES))
def test_bad_tls_files_stop_in_preflight(tmp_path, make_vars, expected):
    proc, credentials = run_role(tmp_path, make_vars(tmp_path / "tls"))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert expected in output, output
    assert FIRST_TASK_AFTER_PREFLIGHT not in output, output
    assert not credentials.exists(), "a secret was generated although preflight failed"
    assert "PRIVATE KEY-----" not in output.replace("(-----BEGIN ... PRIVATE KEY-----)", ""), "a key was printed"


def _run_with_inventory_directory(tmp_path, ignore_regex):
    """The role's preflight with -i an inventory directory that holds the credentials directory."""
    inventory = tmp_path / "inventory"
    (inventory / "credentials").mkdir(parents=True)
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    localhost:\n      ansible_connection: local\n"
        f"      ansible_python_interpreter: {sys.executable}\n"
    )
    environment = {"ANSIBLE_INVENTORY_IGNORE_REGEX": ignore_regex}
    return run_role(tmp_path, {}, inventory=inventory, credentials=inventory / "credentials", environment=environment)


def test_credentials_read_as_inventory_are_refused(tmp_path):
    """Without an ignore pattern for it, Ansible would read each secret file as an INI host named after it."""
    proc, credentials = _run_with_inventory_directory(tmp_path, "^unrelated$")
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert f"rabbitmq_credentials_dir: {credentials} lies inside the inventory directory" in output, output
    assert FIRST_TASK_AFTER_PREFLIGHT not in output, output
    assert list(credentials.iterdir()) == [], "a secret was generated although preflight failed"


def test_credentials_ignored_by_the_inventory_pass(tmp_path):
    proc, _credentials = _run_with_inventory_directory(tmp_path, "^credentials$")
    output = proc.stdout + proc.stderr
    assert "Check that the credentials directory stays out of the inventory" in output, output
    assert "lies inside the inventory directory" not in output, output
    assert FIRST_TASK_AFTER_PREFLIGHT in output, output


def test_good_input_passes_preflight(tmp_path):
    proc, credentials = run_role(
        tmp_path,
        {"rabbitmq_app_password": "a-long-enough-password-42"},
        "--tags",
        "rabbitmq_preflight",
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 .*failed=0", output), output
    assert not credentials.exists()


# Cluster mistakes: the inventory holds localhost (the host the role runs on) and three more hosts it never
# contacts; rabbitmq_cluster_hosts names the cluster's hosts.
CLUSTER_INVENTORY = "localhost,b2,b3,b4,"
STRONG_COOKIE = "Qm7vXc2LpR9tWz4HsK8dNf3BjY6gTa5Ue1"
BAD_CLUSTER_INPUT = {
    "two broker hosts": ({"rabbitmq_cluster_hosts": ["localhost", "b2"]}, "an odd number of three or more"),
    "four broker hosts": (
        {"rabbitmq_cluster_hosts": ["localhost", "b2", "b3", "b4"]},
        "an odd number of three or more",
    ),
    "cluster without this host": ({"rabbitmq_cluster_hosts": ["b2", "b3", "b4"]}, "it must list this host"),
    "cluster host missing from the inventory": (
        {"rabbitmq_cluster_hosts": ["localhost", "b2", "b9"]},
        "hosts of the inventory",
    ),
    "cluster with Erlang's listeners on loopback": (
        {"rabbitmq_cluster_hosts": ["localhost", "b2", "b3"], "rabbitmq_distribution_address": "127.0.0.1"},
        "rabbitmq_distribution_address must be 0.0.0.0, not 127.0.0.1",
    ),
    "cluster cookie shorter than 32": (
        {"rabbitmq_cluster_hosts": ["localhost", "b2", "b3"], "rabbitmq_erlang_cookie": STRONG_COOKIE[:24]},
        "at least 32 letters and digits (on this host: shorter than 32 characters",
    ),
    "delivery limit zero": ({"rabbitmq_quorum_delivery_limit": 0}, "rabbitmq_quorum_delivery_limit (0)"),
    "dead-letter queue in the reserved namespace": (
        {"rabbitmq_dead_letter_queue": "amq.dead"},
        "rabbitmq_dead_letter_queue (amq.dead)",
    ),
    "partition handling unknown": ({"rabbitmq_cluster_partition_handling": "pause_all"}, "pause_minority"),
    "move from the application vhost itself": (
        {
            "rabbitmq_move_from_vhost": "celery",
            "rabbitmq_app_vhost": "celery",
            "rabbitmq_plugins": ["rabbitmq_management", "rabbitmq_shovel"],
        },
        "rabbitmq_move_from_vhost (celery) names the vhost whose queues move into rabbitmq_app_vhost (celery)",
    ),
    "move without the shovel plugin": (
        {"rabbitmq_move_from_vhost": "single"},
        "need rabbitmq_shovel in rabbitmq_plugins (rabbitmq_management, rabbitmq_prometheus)",
    ),
}


@pytest.mark.parametrize(("extra_vars", "expected"), list(BAD_CLUSTER_INPUT.values()), ids=list(BAD_CLUSTER_INPUT))
def test_bad_cluster_input_stops_in_preflight(tmp_path, extra_vars, expected):
    proc, credentials = run_role(tmp_path, extra_vars, inventory=CLUSTER_INVENTORY)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert expected in output, output
    assert FIRST_TASK_AFTER_PREFLIGHT not in output, output
    assert not credentials.exists(), "a secret was generated although preflight failed"
    assert STRONG_COOKIE[:24] not in output, "the rejected cookie was printed"


def test_different_cookies_on_the_nodes_stop_in_preflight(tmp_path):
    """Each host's own cookie (host vars): the nodes could not authenticate each other."""
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        "all:\n  hosts:\n"
        f"    localhost:\n      ansible_connection: local\n      ansible_python_interpreter: {sys.executable}\n"
        f"      rabbitmq_erlang_cookie: {STRONG_COOKIE}\n"
        f"    b2:\n      rabbitmq_erlang_cookie: {STRONG_COOKIE[::-1]}\n"
        "    b3: {}\n"
    )
    proc, credentials = run_role(tmp_path, {"rabbitmq_cluster_hosts": ["localhost", "b2", "b3"]}, inventory=inventory)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "(it differs between the hosts)" in output, output
    assert FIRST_TASK_AFTER_PREFLIGHT not in output, output
    assert STRONG_COOKIE not in output, "a cookie was printed"
    assert STRONG_COOKIE[::-1] not in output, "a cookie was printed"
    assert not credentials.exists()


def test_a_cluster_of_three_passes_preflight(tmp_path):
    proc, credentials = run_role(
        tmp_path, {"rabbitmq_cluster_hosts": ["localhost", "b2", "b3"]}, "--tags", "rabbitmq_preflight",
        inventory=CLUSTER_INVENTORY,
    )  # fmt: skip
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0 .*failed=0", output), output
    assert not credentials.exists()


def _run_release_check(tmp_path, majors):
    """The role's check of the cluster's releases on three local hosts probed as Debian ``majors``."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[rabbitmq]\n"
        + "".join(
            f"b{number} debian_major={major} ansible_python_interpreter={sys.executable}\n"
            for number, major in enumerate(majors, start=1)
        )
    )
    proc, _credentials = run_role(
        tmp_path, {}, inventory=inventory, playbook=PLAYBOOK.with_name("rabbitmq_cluster_release.yml")
    )
    return proc


def test_a_cluster_mixing_rabbitmq_series_fails_before_any_change(tmp_path):
    """Debian 12 (RabbitMQ 3.10) beside Debian 13 (RabbitMQ 4.0): the 3.10 node could never join."""
    proc = _run_release_check(tmp_path, ["13", "12", "13"])
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert "b1: Debian 13, b2: Debian 12, b3: Debian 13" in output, output
    assert "rabbitmq_cluster_hosts" in output, output


def test_a_cluster_of_one_release_passes_the_release_check(tmp_path):
    proc = _run_release_check(tmp_path, ["12", "12", "12"])
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert re.search(r"b1\s+: ok=\d+\s+changed=0 .*failed=0", output), output


def _run_cookie_check(tmp_path, nodes):
    """The role's check of the cookies of a running cluster on three local hosts b1..b3; ``nodes`` gives each one's
    (service state, cookie on disk), and the run's cookie is STRONG_COOKIE."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(
        "[rabbitmq]\n"
        + "".join(
            f"b{number} service={service} disk_cookie='{cookie}' ansible_python_interpreter={sys.executable}\n"
            for number, (service, cookie) in enumerate(nodes, start=1)
        )
    )
    proc, _credentials = run_role(
        tmp_path,
        {"rabbitmq_cluster_hosts": ["b1", "b2", "b3"], "rabbitmq_erlang_cookie": STRONG_COOKIE},
        inventory=inventory,
        playbook=PLAYBOOK.with_name("rabbitmq_cluster_cookie.yml"),
    )
    return proc.stdout + proc.stderr, proc.returncode


def test_a_running_node_with_another_cookie_is_refused_before_any_change(tmp_path):
    """b2's broker runs with a cookie that is not the run's: writing the new one would cut it off from b1 and b3. A
    stopped node (b3) may get the new cookie, and so may a running one without a cookie file yet."""
    other = STRONG_COOKIE[::-1]
    output, returncode = _run_cookie_check(
        tmp_path, [("active", STRONG_COOKIE), ("active", other), ("inactive", other)]
    )
    assert returncode != 0, output
    flat = " ".join(output.split())  # the message as one line: the YAML callback wraps it
    assert "The Erlang cookie of b2 (/var/lib/rabbitmq/.erlang.cookie) is not the one this run would" in flat, output
    assert "rabbitmq_erlang_cookie" in output, output
    # b1's change is the controller's credentials directory (run once, on the first host).
    assert re.search(r"b1\s+: ok=\d+\s+changed=\d+ .*failed=0", output), output
    assert re.search(r"b3\s+: ok=\d+\s+changed=0 .*failed=0", output), output
    assert STRONG_COOKIE not in output, "a cookie was printed"
    assert other not in output, "a cookie was printed"


def test_running_nodes_with_the_runs_cookie_pass_the_cookie_check(tmp_path):
    output, returncode = _run_cookie_check(
        tmp_path, [("active", STRONG_COOKIE), ("active", STRONG_COOKIE), ("active", "")]
    )
    assert returncode == 0, output
