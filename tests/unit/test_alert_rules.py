"""The monitoring role's alert rules: rendered by Ansible, accepted by promtool, and driven by the role's variables.

The rules file is rendered with ``ansible.builtin.template`` exactly as the role does it, then checked with
``promtool check rules`` and unit-tested with ``promtool test rules`` (tests/promtool/celeryops-alerts.test.yml,
written against the role's defaults). promtool comes from hacking/promtool.sh, which unpacks Debian's prometheus
package into build/promtool/: these tests fail, not skip, when it cannot.
"""

# SPDX-License-Identifier: MIT

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "monitoring"
TEMPLATE = ROLE / "templates" / "celeryops-alerts.yml.j2"
DEFAULTS = ROLE / "defaults" / "main.yml"
PROMTOOL_TESTS = REPO / "tests" / "promtool" / "celeryops-alerts.test.yml"
PROMTOOL_SCRIPT = REPO / "hacking" / "promtool.sh"
# The name the promtool test file's rule_files entry expects beside it.
RULES_NAME = "celeryops-alerts.yml"

ALERTS = {
    "CeleryQueueWithoutConsumers": "critical",
    "CeleryQueueBacklogGrowing": "warning",
    "CeleryWorkerOffline": "critical",
    "CeleryTaskFailures": "warning",
    "RabbitMQMemoryAlarm": "critical",
    "RabbitMQDiskAlarm": "critical",
    "RabbitMQFileDescriptorsNearLimit": "warning",
    "RabbitMQNodeDown": "critical",
    "MonitoringTargetDown": "warning",
}

# Which variable sets each alert's `for:`.
DELAYS = {
    "CeleryQueueWithoutConsumers": "monitoring_queue_no_consumers_for",
    "CeleryQueueBacklogGrowing": "monitoring_queue_growth_for",
    "CeleryWorkerOffline": "monitoring_worker_offline_for",
    "CeleryTaskFailures": "monitoring_task_failure_for",
    "RabbitMQMemoryAlarm": "monitoring_broker_alarm_for",
    "RabbitMQDiskAlarm": "monitoring_broker_alarm_for",
    "RabbitMQFileDescriptorsNearLimit": "monitoring_fd_for",
    "RabbitMQNodeDown": "monitoring_target_down_for",
    "MonitoringTargetDown": "monitoring_target_down_for",
}

# A second render: every delay and threshold differs from its default, and the ignore regex holds a double quote
# and backslashes, which must survive YAML, Jinja and PromQL's string escaping.
OVERRIDES = {
    "monitoring_queue_ignore_regex": 'scratch\\..*|say"hi"',
    "monitoring_queue_no_consumers_for": "30s",
    "monitoring_queue_growth_min_ready": 250,
    "monitoring_queue_growth_window": "2m",
    "monitoring_queue_growth_for": "3m",
    "monitoring_worker_offline_for": "45s",
    "monitoring_task_failure_rate": 0.5,
    "monitoring_task_failure_window": "3m",
    "monitoring_task_failure_for": "1m",
    "monitoring_broker_alarm_for": "15s",
    "monitoring_fd_ratio": 0.95,
    "monitoring_fd_for": "2m",
    "monitoring_target_down_for": "20s",
}


def run(args, **kwargs):
    return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, check=False, **kwargs)


def render(dest, extra_vars_files=()):
    """Render the rules template with the role's defaults (then each extra vars file) through Ansible itself."""
    bin_dir = pathlib.Path(sys.executable).parent
    ansible = bin_dir / "ansible" if (bin_dir / "ansible").exists() else shutil.which("ansible")
    assert ansible, "ansible not found beside the test's Python nor on PATH"
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    args = [ansible, "localhost", "-i", "localhost,", "-c", "local"]
    args += ["-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{DEFAULTS}"]
    for path in extra_vars_files:
        args += ["-e", f"@{path}"]
    args += ["-m", "ansible.builtin.template", "-a", f"src={TEMPLATE} dest={dest}"]
    result = run(args, cwd=REPO, env=env)
    assert result.returncode == 0, f"rendering failed:\n{result.stdout}\n{result.stderr}"
    return dest


def rules_by_alert(path):
    groups = yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
    assert [group["name"] for group in groups] == ["celeryops"]
    return {rule["alert"]: rule for rule in groups[0]["rules"]}


def promtool_ok(promtool, *args):
    result = run([promtool, *args])
    assert result.returncode == 0, f"promtool {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="session")
def promtool():
    """Debian's promtool, unpacked by hacking/promtool.sh; a failure to get it fails the tests."""
    result = run(["bash", PROMTOOL_SCRIPT])
    if result.returncode != 0:
        pytest.fail(f"hacking/promtool.sh could not provide promtool:\n{result.stderr}")
    path = pathlib.Path(result.stdout.strip().splitlines()[-1])
    assert os.access(path, os.X_OK), f"hacking/promtool.sh printed {path}, which is not executable"
    return path


@pytest.fixture(scope="module")
def default_rules(tmp_path_factory):
    directory = tmp_path_factory.mktemp("default-rules")
    return render(directory / RULES_NAME)


@pytest.fixture(scope="module")
def override_rules(tmp_path_factory):
    directory = tmp_path_factory.mktemp("override-rules")
    overrides = directory / "overrides.yml"
    overrides.write_text(yaml.safe_dump(OVERRIDES), encoding="utf-8")
    return render(directory / RULES_NAME, [overrides])


def test_rendered_file_starts_with_the_managed_comment(default_rules):
    first = default_rules.read_text(encoding="utf-8").splitlines()[:3]
    assert first[0] == "#"
    assert "Ansible managed" in first[1]


def test_every_alert_is_there_with_its_severity(default_rules):
    rules = rules_by_alert(default_rules)
    assert {name: rule["labels"]["severity"] for name, rule in rules.items()} == ALERTS
    for name, rule in rules.items():
        assert set(rule["annotations"]) == {"summary", "description"}, name


def test_defaults_pass_promtool_check(promtool, default_rules):
    promtool_ok(promtool, "check", "rules", default_rules)


def test_defaults_pass_the_promtool_unit_tests(promtool, default_rules):
    shutil.copy(PROMTOOL_TESTS, default_rules.parent / PROMTOOL_TESTS.name)
    promtool_ok(promtool, "test", "rules", default_rules.parent / PROMTOOL_TESTS.name)


def test_promtool_tests_cover_every_alert_firing_and_quiet():
    """Each alert has a case where it fires; quiet twins are series in the same cases or `exp_alerts: []`."""
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text(encoding="utf-8"))["tests"]
    checks = [check for case in cases for check in case["alert_rule_test"]]
    firing = {check["alertname"] for check in checks if check.get("exp_alerts")}
    quiet = {check["alertname"] for check in checks if not check.get("exp_alerts")}
    assert firing == set(ALERTS)
    # Every delayed alert is checked while still pending; MonitoringTargetDown's quiet twin is the down broker.
    assert quiet == set(ALERTS) - {"MonitoringTargetDown"}


def test_delays_follow_the_variables(override_rules):
    rules = rules_by_alert(override_rules)
    assert {name: rule["for"] for name, rule in rules.items()} == {
        name: OVERRIDES[variable] for name, variable in DELAYS.items()
    }


@pytest.mark.parametrize(
    ("alert", "fragments"),
    [
        ("CeleryQueueBacklogGrowing", ["> 250", "[2m]"]),
        ("CeleryTaskFailures", ["> 0.5", "[3m]"]),
        ("RabbitMQFileDescriptorsNearLimit", ["> 0.95"]),
        ("CeleryQueueWithoutConsumers", ['queue!~"scratch\\\\..*|say\\"hi\\""']),
        ("CeleryQueueBacklogGrowing", ['queue!~"scratch\\\\..*|say\\"hi\\""']),
    ],
)
def test_thresholds_follow_the_variables(override_rules, alert, fragments):
    expr = rules_by_alert(override_rules)[alert]["expr"]
    for fragment in fragments:
        assert fragment in expr


def test_overrides_pass_promtool_and_change_what_fires(promtool, override_rules):
    """The overridden regex and delay change behaviour: scratch.* is ignored, and 30s of no consumer is enough."""
    promtool_ok(promtool, "check", "rules", override_rules)
    ready = "rabbitmq_detailed_queue_messages_ready"
    consumers = "rabbitmq_detailed_queue_consumers"
    series = []
    for queue in ("work", "scratch.1", "celery@w.app1.celery.pidbox"):
        labels = f'{{vhost="celery",queue="{queue}"}}'
        series += [{"series": ready + labels, "values": "5x10"}, {"series": consumers + labels, "values": "0x10"}]
    alert_labels = {"severity": "critical", "vhost": "celery"}
    tests = {
        "rule_files": [RULES_NAME],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": series,
                "alert_rule_test": [
                    {"eval_time": "15s", "alertname": "CeleryQueueWithoutConsumers", "exp_alerts": []},
                    {
                        "eval_time": "45s",
                        "alertname": "CeleryQueueWithoutConsumers",
                        # The pidbox queue is no longer ignored: the override replaced the default regex.
                        "exp_alerts": [
                            {
                                "exp_labels": {**alert_labels, "queue": queue},
                                "exp_annotations": {
                                    "summary": f"Queue {queue} (vhost celery) has 5 messages ready and no consumer"
                                    " for 30s.",
                                    "description": (
                                        f"No worker consumes queue {queue} on vhost celery while 5 messages wait in"
                                        " it: its tasks are not executed. Check first the workers that should"
                                        " consume it (`supervisorctl status` on the application hosts, then their"
                                        " logs under /var/log/celery), then whether a task is routed to a queue"
                                        " that no worker's queue list names."
                                    ),
                                },
                            }
                            for queue in ("celery@w.app1.celery.pidbox", "work")
                        ],
                    },
                ],
            }
        ],
    }
    test_file = override_rules.parent / "override.test.yml"
    test_file.write_text(yaml.safe_dump(tests), encoding="utf-8")
    promtool_ok(promtool, "test", "rules", test_file)
