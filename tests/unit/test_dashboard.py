"""The monitoring role's Grafana dashboard: importable, well-formed, and every query valid against our metrics.

Each target's PromQL is checked by promtool: the expressions, with Grafana's variables replaced by literals, become
recording rules of a temporary file that ``promtool check rules`` must accept. promtool comes from
hacking/promtool.sh (Debian's prometheus package unpacked into build/promtool/): the tests fail when it cannot.
"""

# SPDX-License-Identifier: MIT

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess

import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "roles" / "monitoring" / "files" / "celeryops-dashboard.json"
PROMTOOL_SCRIPT = REPO / "hacking" / "promtool.sh"
DATASOURCE_UID = "${DS_PROMETHEUS}"

# Metric names the monitoring role's scrapes produce, as found in dumps of Debian 12's RabbitMQ 3.10.8
# (/metrics, and /metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count), of Flower 2
# (/metrics) and of the node exporter on the lab. Only the families a dashboard may reasonably use are listed.
SCRAPED = {
    # RabbitMQ /metrics/detailed, queue_coarse_metrics and queue_consumer_count
    "rabbitmq_detailed_queue_consumers",
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_messages_ready",
    "rabbitmq_detailed_queue_messages_unacked",
    "rabbitmq_detailed_queue_process_reductions_total",
    # RabbitMQ /metrics (aggregated per node)
    "rabbitmq_alarms_file_descriptor_limit",
    "rabbitmq_alarms_free_disk_space_watermark",
    "rabbitmq_alarms_memory_used_watermark",
    "rabbitmq_disk_space_available_bytes",
    "rabbitmq_disk_space_available_limit_bytes",
    "rabbitmq_global_messages_acknowledged_total",
    "rabbitmq_global_messages_delivered_total",
    "rabbitmq_global_messages_received_total",
    "rabbitmq_global_messages_redelivered_total",
    "rabbitmq_global_messages_routed_total",
    "rabbitmq_process_max_fds",
    "rabbitmq_process_open_fds",
    "rabbitmq_process_resident_memory_bytes",
    "rabbitmq_resident_memory_limit_bytes",
    # Flower /metrics
    "flower_events_total",
    "flower_task_prefetch_time_seconds",
    "flower_task_runtime_seconds_bucket",
    "flower_task_runtime_seconds_count",
    "flower_task_runtime_seconds_sum",
    "flower_worker_number_of_currently_executing_tasks",
    "flower_worker_online",
    "flower_worker_prefetched_tasks",
    # Node exporter /metrics (Debian 12's 1.5.0 and Debian 13's 1.9.0, Debian's default collectors)
    "node_cpu_seconds_total",
    "node_filesystem_avail_bytes",
    "node_filesystem_size_bytes",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
}
# Series Prometheus makes itself.
PROMETHEUS_OWN = {"ALERTS", "ALERTS_FOR_STATE", "up"}

# Grafana's variables and what stands for them in the promtool check.
SUBSTITUTIONS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$vhost": ".*", "$queue": ".*"}

PROMQL_WORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "inf",
    "nan",
}


def load():
    return json.loads(DASHBOARD.read_text(encoding="utf-8"))


def panels(dashboard):
    """Every panel, the ones inside collapsed rows included."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets():
    return [(panel, target) for panel in panels(load()) for target in panel.get("targets", [])]


def substitute(expr):
    # Longest names first, so that $__rate_interval is not read as $__r... of another variable.
    for name in sorted(SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(name, SUBSTITUTIONS[name])
    assert "$" not in expr, f"an unknown Grafana variable is left in {expr!r}"
    return expr


def metric_names(expr):
    """The metric names of a PromQL expression: identifiers outside strings, matchers, grouping lists and ranges,
    not followed by a parenthesis (functions and aggregations) and not keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        word = match.group(0)
        rest = text[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in PROMQL_WORDS:
            continue
        # A digit run with a unit ("5m") or an exponent is a number or a duration, not a name.
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue
        names.add(word)
    return names


@pytest.fixture(scope="session")
def promtool():
    """Debian's promtool, unpacked by hacking/promtool.sh; a failure to get it fails the tests."""
    result = subprocess.run(["bash", str(PROMTOOL_SCRIPT)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"hacking/promtool.sh could not provide promtool:\n{result.stderr}")
    path = pathlib.Path(result.stdout.strip().splitlines()[-1])
    assert os.access(path, os.X_OK), f"hacking/promtool.sh printed {path}, which is not executable"
    return path


def test_is_an_importable_dashboard():
    dashboard = load()
    for key in ("__inputs", "__requires", "panels", "templating", "title", "uid", "schemaVersion", "time"):
        assert key in dashboard, key
    assert dashboard["schemaVersion"] >= 36
    assert [(item["name"], item["type"], item["pluginId"]) for item in dashboard["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    # An exported dashboard has no id of its own: Grafana assigns one on import.
    assert dashboard.get("id") is None


def test_templating_offers_vhost_and_queue():
    variables = {item["name"]: item for item in load()["templating"]["list"]}
    assert set(variables) == {"vhost", "queue"}
    for name, variable in variables.items():
        assert variable["datasource"]["uid"] == DATASOURCE_UID
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        assert re.fullmatch(rf"label_values\(rabbitmq_detailed_queue_messages_ready(\{{.*\}})?, {name}\)", query)


def test_panel_ids_are_unique():
    ids = [panel["id"] for panel in panels(load())]
    assert len(ids) == len(set(ids)), sorted(ids)


def test_every_panel_has_a_place_a_source_and_queries():
    for panel in panels(load()):
        if panel["type"] == "row":
            continue
        assert set(panel["gridPos"]) >= {"x", "y", "w", "h"}, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == DATASOURCE_UID, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
            assert "legendFormat" in target, panel["title"]
            assert target.get("datasource", panel["datasource"])["uid"] == DATASOURCE_UID, panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


def test_panels_do_not_overlap():
    taken = {}
    for panel in panels(load()):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']} overlaps {taken[(x, y)]}"
                taken[(x, y)] = panel["title"]


@pytest.mark.parametrize(
    "metric",
    [
        "rabbitmq_detailed_queue_messages_ready",
        "rabbitmq_detailed_queue_messages_unacked",
        "rabbitmq_detailed_queue_consumers",
        "flower_events_total",
        "flower_task_runtime_seconds_bucket",
        "flower_worker_online",
        "flower_worker_number_of_currently_executing_tasks",
        "rabbitmq_process_resident_memory_bytes",
        "rabbitmq_process_open_fds",
        "node_cpu_seconds_total",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "ALERTS",
    ],
)
def test_the_dashboard_shows(metric):
    assert any(metric in metric_names(target["expr"]) for _panel, target in targets())


def test_every_metric_is_scraped_or_made_by_prometheus():
    unknown = {
        (panel["title"], name)
        for panel, target in targets()
        for name in metric_names(target["expr"])
        if name not in SCRAPED | PROMETHEUS_OWN
    }
    assert unknown == set()


def test_metric_names_are_read_right():
    expr = 'histogram_quantile(0.95, sum by (task, le) (rate(flower_task_runtime_seconds_bucket{a="b c"}[5m])))'
    assert metric_names(expr) == {"flower_task_runtime_seconds_bucket"}
    assert metric_names('count(ALERTS{alertstate="firing"}) or vector(0)') == {"ALERTS"}
    assert metric_names("rabbitmq_process_open_fds / on (instance) rabbitmq_process_max_fds > 0.8") == {
        "rabbitmq_process_open_fds",
        "rabbitmq_process_max_fds",
    }


def test_every_expression_is_valid_promql(promtool, tmp_path):
    rules = [
        {"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": substitute(target["expr"])}
        for panel, target in targets()
    ]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
