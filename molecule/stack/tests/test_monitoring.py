"""Monitoring (celeryops.stack.monitoring on the host `monitor`): every target scraped, the metrics endpoints
refuse anonymous clients of other hosts, and the alert rules fire for the faults they name and resolve once the
fault is cleared, in Prometheus and in Alertmanager (the lab's short delays: inventories/lab/group_vars/
monitoring.yml). The broker-down alert is checked during the broker outage (test_broker_outage.py)."""

import json
import re
import time

import pytest
from monitoring_helpers import ALERTMANAGER, PROMETHEUS, AlertClock, active_targets, ever_scraped, instances, targets
from stack_helpers import (
    APP,
    APP_DIR,
    ENV_FILE,
    FLOWER_URL,
    VENV_PYTHON,
    WRAPPER,
    answering,
    http_from,
    wait_completed,
)

JOBS = {"prometheus", "alertmanager", "rabbitmq", "rabbitmq-queues", "flower", "node"}
# Every lab host runs the node exporter (celeryops.stack.node_exporter), scraped as <host>:9100.
NODE_TARGETS = {"broker:9100", "app1:9100", "app2:9100", "monitor:9100"}
NODE = "celery@celery.app2"  # app2's prefork worker: queues celery and imports
STOPPED = ("app1", "celery-reports", "celery@reports.app1")  # host, program, node of the stopped worker
IDS_FILE = "/var/tmp/celeryops-monitoring-ids.json"  # noqa: S108 (a file on the lab host app2)

# Runs on app2 with the workers' environment: publishes until the stop file exists (or LIMIT seconds), then prints
# the ids it sent as one JSON list. Each stream is [queue, task, args, per second].
PUBLISH = """
import json, os, sys, time
from myproject.celery_config import app
streams, stop, limit = json.loads(sys.argv[1]), sys.argv[2], float(sys.argv[3])
ids, began, sent = [], time.monotonic(), [0] * len(streams)
with app.producer_or_acquire() as producer:
    while not os.path.exists(stop) and time.monotonic() - began < limit:
        elapsed = time.monotonic() - began
        for i, (queue, task, args, rate) in enumerate(streams):
            while sent[i] < elapsed * rate:
                ids.append(app.send_task(task, args=args, queue=queue, producer=producer).id)
                sent[i] += 1
        time.sleep(0.05)
print(json.dumps(ids))
"""


# The file descriptor fault: the broker restarted with a low limit, then client connections held open.
FD_LIMIT = 400
FD_CONNECTIONS = 330
FD_DROPIN = "/etc/systemd/system/rabbitmq-server.service.d/celeryops-test-nofile.conf"
NODES = ("celery@customers.app1", "celery@reports.app1", NODE)

# Runs on app2 with the workers' environment: opens up to N connections to the broker (as the application's user),
# holds them until the stop file exists (or LIMIT seconds), then prints how many it opened and the first error.
HOLD = """
import json, os, sys, time
from myproject.celery_config import app
count, stop, limit = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
connections, error, began = [], None, time.monotonic()
for _ in range(count):
    connection = app.connection_for_write()
    try:
        connection.connect()
    except Exception as exc:  # the broker refuses or drops it: what the test wants to see, not a failure
        error = f"{type(exc).__name__}: {exc}"
        break
    connections.append(connection)
while not os.path.exists(stop) and time.monotonic() - began < limit:
    time.sleep(0.5)
for connection in connections:
    connection.release()
print(json.dumps({"opened": len(connections), "error": error}))
"""


def wait_targets_up(monitor, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        found = targets(monitor)
        if set(found) >= JOBS and all(h == "up" for health in found.values() for h in health):
            return found
        if time.monotonic() > deadline:
            return found
        time.sleep(2)


@pytest.mark.reliability(
    "Prometheus on `monitor` scrapes the stack",
    "every target is up: Prometheus, Alertmanager, the broker node (HTTPS, client certificate), its queues, Flower, "
    "the node exporter of every host (HTTPS, client certificate); since its first start Prometheus scraped no "
    "other target (not the package's own localhost:9100)",
)
def test_every_target_is_scraped(monitor, observe):
    found = wait_targets_up(monitor)
    assert set(found) >= JOBS, f"jobs missing from Prometheus's targets: {JOBS - set(found)}"
    assert all(h == "up" for health in found.values() for h in health), f"a target is not up: {found}"
    assert instances(monitor, "node") == dict.fromkeys(NODE_TARGETS, "up")
    # A target of another configuration (Debian's prometheus.yml, if Prometheus ever ran with it) would leave a
    # failed `up` series that alerts for minutes after the role's configuration replaced it.
    others = ever_scraped(monitor) - active_targets(monitor)
    assert not others, f"Prometheus scraped targets that are not the role's: {sorted(others)}"
    observe(f"{sum(len(h) for h in found.values())} targets up, jobs {sorted(found)}")


@pytest.mark.reliability(
    "Anonymous clients on another host ask for the metrics and the monitoring APIs",
    "the broker's HTTPS metrics and the node exporters refuse a client without certificate and the broker's plain "
    "listener is not reachable (plain HTTP on the exporter's port gets 400, no metrics); Flower answers 401 without "
    "basic auth; Prometheus and Alertmanager are not reachable",
)
def test_metrics_refuse_anonymous_clients(monitor, app2, flower_auth, observe):
    refusals = {
        "broker https 15691, no client certificate": http_from(app2, "https://broker:15691/metrics"),
        "broker http 15692": http_from(app2, "http://broker:15692/metrics"),
        "node exporter https 9100 of app1, no client certificate": http_from(app2, "https://app1:9100/metrics"),
        "node exporter https 9100 of monitor, no client certificate": http_from(app2, "https://monitor:9100/metrics"),
        "Flower /metrics, no basic auth": http_from(app2, f"{FLOWER_URL}/metrics"),
        "Prometheus 9090": http_from(app2, "http://monitor:9090/-/ready"),
        "Alertmanager 9093": http_from(app2, "http://monitor:9093/-/ready"),
        "Alertmanager cluster 9094": http_from(app2, "http://monitor:9094/"),
    }
    assert refusals.pop("Flower /metrics, no basic auth")["status"] == 401
    # The exporter asks for a client certificate in the handshake and ends it with an alert when none comes (Go 1.19
    # of Debian 12's exporter sends "bad certificate", later Go "certificate required").
    for what, answer in refusals.items():
        if what.startswith("node exporter"):
            alert = re.search(r"ALERT_(BAD_CERTIFICATE|CERTIFICATE_REQUIRED)", answer.get("error") or "")
            assert alert, f"{what}: {answer}"
    # Plain HTTP on the exporter's port gets Go's answer to HTTP on an HTTPS port, no metrics.
    plain = http_from(app2, "http://app1:9100/metrics")
    assert plain["status"] == 400, plain
    assert "HTTPS server" in plain["body"], plain
    assert "node_" not in plain["body"], plain
    for what, answer in refusals.items():
        assert answer["status"] is None, f"{what} answered: {answer}"
    # The twins: the same endpoints answer the clients they are meant for.
    flower = http_from(app2, f"{FLOWER_URL}/metrics", auth=flower_auth)
    assert flower["status"] == 200
    assert "flower_worker_online" in flower["body"]
    assert http_from(monitor, f"{PROMETHEUS}/-/ready")["status"] == 200
    assert http_from(monitor, f"{ALERTMANAGER}/-/ready")["status"] == 200
    assert targets(monitor).get("rabbitmq") == ["up"], "the broker's metrics refuse the monitoring host's certificate"
    assert instances(monitor, "node") == dict.fromkeys(NODE_TARGETS, "up"), "an exporter refuses Prometheus"
    errors = sorted({(answer.get("error") or "").split(":")[0] for answer in refusals.values()})
    observe(
        "Flower 401 without auth, 200 with it; plain HTTP on the exporter's port 400; the broker, exporter and "
        f"monitoring ports refused ({', '.join(errors)}); "
        "Prometheus scrapes the broker and the node exporters with its certificate"
    )


def control(host, *args):
    """Celery's remote control from ``host`` (rc, output)."""
    cmd = host.run("%s --app=%s control --timeout=10" + " %s" * len(args), WRAPPER, APP, *args)
    return cmd.rc, cmd.stdout + cmd.stderr


@pytest.mark.reliability(
    "A worker stopped, a queue no longer consumed while tasks are published to it, a task failing about once a "
    "second; then all three cleared",
    "CeleryWorkerOffline, CeleryQueueWithoutConsumers, CeleryQueueBacklogGrowing and CeleryTaskFailures fire in "
    "Prometheus and reach Alertmanager, and resolve once cleared; every published task runs once",
)
def test_worker_queue_and_failure_alerts(monitor, app1, app2, observe):
    host_name, program, stopped_node = STOPPED
    stopped_host = app1 if host_name == "app1" else app2
    found = wait_targets_up(monitor)
    assert all(h == "up" for health in found.values() for h in health), f"a target is not up: {found}"
    stop_file = IDS_FILE + ".stop"
    app2.run("rm -f %s %s", IDS_FILE, stop_file)
    streams = [["imports", "core.sleep", [0.01], 10], ["celery", "core.fail", [0], 1]]
    clock = AlertClock(
        monitor,
        [
            ("CeleryWorkerOffline", {"worker": stopped_node}),
            ("CeleryQueueWithoutConsumers", {"queue": "imports"}),
            ("CeleryQueueBacklogGrowing", {"queue": "imports"}),
            ("CeleryTaskFailures", {"task": "core.fail"}),
        ],
    )
    try:
        assert stopped_host.run("supervisorctl stop %s", program).rc == 0
        rc, out = control(app2, "cancel_consumer", "imports", f"--destination={NODE}")
        assert rc == 0, out
        script = (
            f"set -a; . {ENV_FILE}; set +a; cd {APP_DIR}; "
            f'{VENV_PYTHON} -c "$0" "$1" "$2" "$3" > {IDS_FILE}.part 2>&1 && mv {IDS_FILE}.part {IDS_FILE}'
        )
        app2.run(
            "sh -c %s %s %s %s %s </dev/null >/dev/null 2>&1 &", script, PUBLISH, json.dumps(streams), stop_file, "300"
        )
        clock.wait_fired(150)
    finally:
        # Every clean-up runs, whatever failed before it; they are checked after. Resolution is timed from the
        # start of the clean-up.
        clock.clear()
        app2.run("touch %s", stop_file)
        restored = control(app2, "add_consumer", "imports", f"--destination={NODE}")
        started = stopped_host.run("supervisorctl start %s", program)
    assert restored[0] == 0, restored[1]
    assert started.rc == 0, started.stdout + started.stderr
    clock.wait_resolved(180)

    deadline = time.monotonic() + 60
    while not app2.file(IDS_FILE).exists and time.monotonic() < deadline:
        time.sleep(1)
    sent = json.loads(app2.file(IDS_FILE).content_string.strip().splitlines()[-1])
    assert len(sent) > 100, f"the publisher sent only {len(sent)} tasks"
    done = wait_completed(app2, NODE, sent, 120)[0]
    missing = set(sent) - set(done)
    twice = {task for task in done if done.count(task) > 1}
    assert not missing, f"{len(missing)} of {len(sent)} published tasks never ran"
    assert not twice, f"{len(twice)} tasks ran twice"
    observe(f"{clock.summary()}; {len(sent)} tasks published, each ran once")


@pytest.mark.reliability(
    "The broker's memory and disk alarms raised at run time (rabbitmqctl), Flower stopped, and app2's node exporter "
    "stopped (systemctl); then all undone",
    "RabbitMQMemoryAlarm, RabbitMQDiskAlarm, MonitoringTargetDown (job flower) and MonitoringTargetDown (job node, "
    "instance app2:9100) fire and reach Alertmanager, and resolve once the alarms clear and Flower and the exporter "
    "run again",
)
def test_broker_alarm_flower_and_exporter_down_alerts(monitor, broker, app1, app2, observe):
    """One fault window for four alerts (the suite's time): each alert is timed on its own."""
    variables = broker.ansible.get_variables()
    disk_limit = str(variables.get("rabbitmq_disk_free_limit", "2GB"))
    watermark = str(variables.get("rabbitmq_vm_memory_high_watermark", 0.6))
    clock = AlertClock(
        monitor,
        [
            ("RabbitMQMemoryAlarm", {}),
            ("RabbitMQDiskAlarm", {}),
            ("MonitoringTargetDown", {"job": "flower"}),
            ("MonitoringTargetDown", {"job": "node", "instance": "app2:9100"}),
        ],
    )
    try:
        assert broker.run("rabbitmqctl set_vm_memory_high_watermark 0.0001").rc == 0
        assert broker.run("rabbitmqctl set_disk_free_limit 100000GB").rc == 0
        assert app1.run("supervisorctl stop flower").rc == 0
        assert app2.run("systemctl stop prometheus-node-exporter").rc == 0
        clock.wait_fired(90)
    finally:
        # Every clean-up runs, whatever failed before it; they are checked after. Resolution is timed from the
        # start of the clean-up.
        clock.clear()
        disk = broker.run("rabbitmqctl set_disk_free_limit %s", disk_limit)
        memory = broker.run("rabbitmqctl set_vm_memory_high_watermark %s", watermark)
        flower = app1.run("supervisorctl start flower")
        exporter = app2.run("systemctl start prometheus-node-exporter")
    assert disk.rc == 0, disk.stderr
    assert memory.rc == 0, memory.stderr
    assert flower.rc == 0, flower.stdout + flower.stderr
    assert exporter.rc == 0, exporter.stderr
    clock.wait_resolved(120)
    observe(clock.summary())


def restart_broker(broker):
    assert broker.run("systemctl daemon-reload").rc == 0
    restarted = broker.run("systemctl restart rabbitmq-server")
    assert restarted.rc == 0, restarted.stderr


@pytest.mark.reliability(
    f"RabbitMQ restarted with LimitNOFILE={FD_LIMIT}, then up to {FD_CONNECTIONS} client connections opened and held",
    "RabbitMQFileDescriptorsNearLimit fires (open descriptors above the ratio, or RabbitMQ's own descriptor alarm) "
    "and reaches Alertmanager, and resolves once the connections close; the broker gets its own limit back",
)
def test_file_descriptor_alert(monitor, broker, app1, app2, observe):
    result_file = IDS_FILE + ".fds"
    stop_file = result_file + ".stop"
    app2.run("rm -f %s %s", result_file, stop_file)
    broker.run("mkdir -p %s", FD_DROPIN.rsplit("/", 1)[0])
    try:
        assert broker.run("printf '[Service]\\nLimitNOFILE=%s\\n' > %s", str(FD_LIMIT), FD_DROPIN).rc == 0
        restart_broker(broker)
        clock = AlertClock(monitor, [("RabbitMQFileDescriptorsNearLimit", {"job": "rabbitmq"})])
        try:
            script = (
                f"set -a; . {ENV_FILE}; set +a; cd {APP_DIR}; ulimit -n 4096; "
                f'{VENV_PYTHON} -c "$0" "$1" "$2" "$3" > {result_file}.part 2>&1 && mv {result_file}.part {result_file}'
            )
            app2.run(
                "sh -c %s %s %s %s %s </dev/null >/dev/null 2>&1 &", script, HOLD, str(FD_CONNECTIONS), stop_file, "240"
            )
            clock.wait_fired(120)
        finally:
            clock.clear()
            app2.run("touch %s", stop_file)
            clock.wait_resolved(120)
    finally:
        broker.run("rm -f %s", FD_DROPIN)
        restart_broker(broker)
    limits = broker.run("cat /proc/$(systemctl show -p MainPID --value rabbitmq-server)/limits").stdout
    deadline = time.monotonic() + 60
    while not app2.file(result_file).exists and time.monotonic() < deadline:
        time.sleep(1)
    held = json.loads(app2.file(result_file).content_string.strip().splitlines()[-1])
    deadline = time.monotonic() + 120
    while not set(NODES) <= answering(app1) and time.monotonic() < deadline:
        time.sleep(3)
    assert set(NODES) <= answering(app1), "a worker did not reconnect after the broker got its limit back"
    assert f"{FD_LIMIT} " not in limits.split("Max open files")[1].split("\n")[0], limits
    observe(f"{held['opened']} connections opened ({held['error'] or 'no refusal'}); {clock.summary()}")
