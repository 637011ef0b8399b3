"""Alerts and workbook as code: the ARM template is well formed, its deploy script passes the right
parameters, and every KQL query (template and docs) names only what the SDK really emits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema
import pytest

from pyfunc.telemetry import DASHBOARD_SERVICE, MODEL_SERVICE
from tests.code.telemetry.appinsights_capture import INVOCATIONS_REQUEST, CaptureServer, base_data, telemetry_env

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "deploy" / "monitoring" / "wrong_prediction_alert.json"
SERVICE_TEMPLATE = REPO / "deploy" / "monitoring" / "service_health_alerts.json"
DEPLOY_SCRIPT = REPO / "deploy" / "monitoring" / "deploy_alert.sh"
DOCS = REPO / "docs" / "monitoring.md"
# Envelope type behind each Application Insights table the queries read.
TABLES = {"requests": "RequestData", "customMetrics": "MetricData", "customEvents": "EventData"}
# Window sizes Azure Monitor log alerts accept, in minutes.
AZURE_WINDOWS = {1, 5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440}

# What the served model does per request, without a server: a SERVER span (a `requests` item) in which
# predict records its metrics; then a failed call. The real server is covered by test_telemetry_server.
MODEL_PROCESS = f"""
from opentelemetry import trace
from pyfunc.contract import InvalidInput
from pyfunc.telemetry import MODEL_SERVICE, configure_telemetry, record_failure, record_predictions
assert configure_telemetry(MODEL_SERVICE)
tracer = trace.get_tracer("test")
with tracer.start_as_current_span("{INVOCATIONS_REQUEST}", kind=trace.SpanKind.SERVER):
    texts = ["@united late http://t.co/x 😡", "thanks"]
    record_predictions("baseline:r1", ["negative", "not_negative"], [0.93, 0.12], texts)
with tracer.start_as_current_span("{INVOCATIONS_REQUEST}", kind=trace.SpanKind.SERVER):
    record_failure("baseline:r1", InvalidInput("row 0: text is empty"))
"""
DASHBOARD_PROCESS = """
from pyfunc.telemetry import emit_wrong_prediction
emit_wrong_prediction(text="late again", predicted_label="not_negative", proba_negative=0.2,
                      true_label="negative", model_version="baseline:r1")
"""


@dataclass
class Emitted:
    """Names, dimension keys and cloud roles per table, as the SDK emitted them."""

    names: dict[str, set[str]] = field(default_factory=dict)
    dimensions: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    measurements: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    roles: dict[str, set[str]] = field(default_factory=dict)

    def add(self, table: str, name: str, role: str, dimensions: dict, measurements: dict) -> None:
        self.names.setdefault(table, set()).add(name)
        self.dimensions.setdefault((table, name), set()).update(dimensions)
        self.measurements.setdefault((table, name), set()).update(measurements)
        self.roles.setdefault(table, set()).add(role)


@pytest.fixture(scope="module")
def emitted(tmp_path_factory) -> Emitted:
    with CaptureServer() as capture:
        env = {**os.environ, **telemetry_env(capture.port), "TMPDIR": str(tmp_path_factory.mktemp("telemetry"))}
        for code in (MODEL_PROCESS, DASHBOARD_PROCESS):
            result = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
            assert result.returncode == 0, result.stderr[-3000:]
        capture.wait_for(lambda: capture.of_type("EventData"))
        envelopes = list(capture.envelopes)
    found = Emitted()
    for envelope in envelopes:
        kind, data, role = envelope["data"]["baseType"], base_data(envelope), envelope["tags"]["ai.cloud.role"]
        table = {v: k for k, v in TABLES.items()}.get(kind)
        if table == "customMetrics":
            for point in data["metrics"]:
                found.add(table, point["name"], role, data.get("properties", {}), {})
        elif table:
            found.add(table, data["name"], role, data.get("properties", {}), data.get("measurements", {}))
    return found


def doc_queries() -> list[str]:
    return re.findall(r"```kusto\n(.*?)```", DOCS.read_text(), flags=re.S)


def template() -> dict:
    return json.loads(TEMPLATE.read_text())


def template_query() -> str:
    return template()["variables"]["query"]


def service_rules() -> dict[str, dict]:
    """The service-health rules by the column they measure, with their query text."""
    document = json.loads(SERVICE_TEMPLATE.read_text())
    rules = {}
    for resource in document["resources"]:
        [criterion] = resource["properties"]["criteria"]["allOf"]
        variable = re.fullmatch(r"\[variables\('(\w+)'\)\]", criterion["query"]).group(1)
        rules[criterion["metricMeasureColumn"]] = resource | {"query": document["variables"][variable]}
    return rules


def all_queries() -> list[str]:
    return [template_query(), *(rule["query"] for rule in service_rules().values()), *doc_queries()]


def test_docs_hold_the_workbook_queries():
    queries = doc_queries()
    assert len(queries) >= 8
    text = "\n".join(queries)
    for needed in ("percentile(duration, 95)", "error_rate_pct", '"wrong_prediction"', "sum(itemCount)"):
        assert needed in text


@pytest.mark.parametrize("query", all_queries(), ids=lambda q: " ".join(q.split())[:60])
def test_query_uses_only_emitted_names_and_keys(query, emitted):
    table = query.split()[0]
    assert table in TABLES, f"unexpected table {table}"
    names = re.findall(r'\bname\s*==\s*"([^"]+)"', query)
    assert names, "every query should select its items by name"
    for name in names:
        if table == "requests":
            assert name == INVOCATIONS_REQUEST
        else:
            assert name in emitted.names[table], f"{table} has no {name!r}: {sorted(emitted.names[table])}"
    for role in re.findall(r'cloud_RoleName\s*==\s*"([^"]+)"', query):
        assert role in emitted.roles[table]
    for key in re.findall(r'customDimensions(?:\.(\w+)|\["([^"]+)"\])', query):
        key = key[0] or key[1]
        assert any(key in emitted.dimensions[(table, name)] for name in names), f"no customDimensions.{key}"
    for key in re.findall(r"customMeasurements\.(\w+)", query):
        assert any(key in emitted.measurements[(table, name)] for name in names), f"no customMeasurements.{key}"


def test_roles_are_the_documented_ones(emitted):
    assert emitted.roles["requests"] == {MODEL_SERVICE}
    assert emitted.roles["customEvents"] == {DASHBOARD_SERVICE}


def test_alert_query_counts_wrong_prediction_events():
    query = template_query()
    assert query.startswith('customEvents\n| where name == "wrong_prediction"')
    assert "summarize" not in query  # the rule counts rows (timeAggregation Count)


# The parts of the ARM deployment-template schema this template relies on (the full schema is online only).
ARM_SCHEMA = {
    "type": "object",
    "required": ["$schema", "contentVersion", "parameters", "resources"],
    "properties": {
        "$schema": {"const": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"},
        "contentVersion": {"pattern": r"^\d+(\.\d+){3}$"},
        "parameters": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"enum": ["string", "securestring", "int", "bool", "object", "array"]}},
            },
        },
        "resources": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["type", "apiVersion", "name", "location", "properties"],
                "properties": {"apiVersion": {"pattern": r"^\d{4}-\d{2}-\d{2}(-preview)?$"}},
            },
        },
    },
}


@pytest.mark.parametrize("path", [TEMPLATE, SERVICE_TEMPLATE], ids=lambda path: path.name)
def test_template_is_a_valid_arm_template(path):
    document = json.loads(path.read_text())
    jsonschema.validate(document, ARM_SCHEMA)
    text = path.read_text()
    declared = set(document["parameters"])
    used = set(re.findall(r"parameters\('(\w+)'\)", text))
    assert used == declared, f"undeclared: {used - declared}, unused: {declared - used}"
    assert set(re.findall(r"variables\('(\w+)'\)", text)) <= set(document["variables"])
    for expression in re.findall(r'"(\[[^"]*\])"', text):  # ARM expressions: balanced parentheses
        assert expression.count("(") == expression.count(")"), expression
    for name, spec in document["parameters"].items():
        default = spec.get("defaultValue")
        if default is not None and "allowedValues" in spec:
            assert default in spec["allowedValues"], name
    if "actionGroupShortName" in document["parameters"]:
        assert len(document["parameters"]["actionGroupShortName"]["defaultValue"]) <= 12


def test_service_health_rules_alert_on_p95_latency_and_the_5xx_share_over_five_minutes():
    document = json.loads(SERVICE_TEMPLATE.read_text())
    parameters = document["parameters"]
    assert parameters["p95LimitMs"]["defaultValue"] == 500 and parameters["errorRatePct"]["defaultValue"] == 1
    assert parameters["windowMinutes"]["defaultValue"] == 5
    assert set(parameters["windowMinutes"]["allowedValues"]) <= AZURE_WINDOWS
    rules = service_rules()
    assert set(rules) == {"p95_ms", "error_rate_pct", "psi_proba"}
    for column, threshold in (("p95_ms", "p95LimitMs"), ("error_rate_pct", "errorRatePct")):
        rule = rules[column]
        [criterion] = rule["properties"]["criteria"]["allOf"]
        assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", f"[parameters('{threshold}')]")
        assert rule["properties"]["windowSize"] == "[format('PT{0}M', parameters('windowMinutes'))]"
        group = "[resourceId('Microsoft.Insights/actionGroups', parameters('actionGroupName'))]"
        assert rule["properties"]["actions"]["actionGroups"] == [group]
        assert f"{column} = " in rule["query"] and "sum(itemCount)" in rule["query"]  # sampled items count
        assert "where requests >= 10" in rule["query"]  # a handful of requests is no rate
    assert "percentile(duration, 95)" in rules["p95_ms"]["query"]
    assert "toint(resultCode) >= 500" in rules["error_rate_pct"]["query"]


def test_score_drift_rule_compares_the_last_hour_with_the_rest_of_the_day():
    rule = service_rules()["psi_proba"]
    properties = rule["properties"]
    assert (properties["windowSize"], properties["evaluationFrequency"]) == ("P1D", "PT1H")
    [criterion] = properties["criteria"]["allOf"]
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", "[json(parameters('psiAlert'))]")
    assert json.loads(SERVICE_TEMPLATE.read_text())["parameters"]["psiAlert"]["defaultValue"] == "0.2"
    query = rule["query"]
    assert "recent = timestamp > ago(1h)" in query and "sum((a - e) * log(a / e))" in query
    assert "where recent >= 200 and earlier >= 200" in query  # the monitor step's minimum, on both sides
    assert "customDimensions.proba_bin" in query


def test_template_encodes_the_rule_three_in_five_minutes_with_email():
    document = template()
    parameters = document["parameters"]
    assert parameters["threshold"]["defaultValue"] == 3 and parameters["windowMinutes"]["defaultValue"] == 5
    assert set(parameters["windowMinutes"]["allowedValues"]) <= AZURE_WINDOWS
    resources = {r["type"]: r for r in document["resources"]}
    group = resources["Microsoft.Insights/actionGroups"]
    assert group["properties"]["emailReceivers"][0]["emailAddress"] == "[parameters('alertEmail')]"
    rule = resources["Microsoft.Insights/scheduledQueryRules"]
    assert rule["kind"] == "LogAlert"
    properties = rule["properties"]
    assert properties["windowSize"] == "[format('PT{0}M', parameters('windowMinutes'))]"
    assert properties["scopes"] == ["[parameters('appInsightsResourceId')]"]
    [criterion] = properties["criteria"]["allOf"]
    assert criterion["query"] == "[variables('query')]"
    assert (criterion["timeAggregation"], criterion["operator"]) == ("Count", "GreaterThanOrEqual")
    assert criterion["threshold"] == "[parameters('threshold')]"
    assert properties["autoMitigate"] is False and "cooldownMinutes" in properties["muteActionsDuration"]
    group_id = "[resourceId('Microsoft.Insights/actionGroups', parameters('actionGroupName'))]"
    assert properties["actions"]["actionGroups"] == [group_id] and group_id in rule["dependsOn"]


@pytest.fixture
def fake_az(tmp_path) -> tuple[dict[str, str], Path]:
    """An `az` on PATH that records its arguments and answers `resource show` with an id."""
    calls = tmp_path / "az-calls.txt"
    az = tmp_path / "bin" / "az"
    az.parent.mkdir()
    az.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >> {calls}\n'
        'if [[ "$1 $2" == "resource show" ]]; then echo "/subscriptions/s/resourceGroups/rg/providers/'
        'Microsoft.Insights/components/appi"; fi\n'
    )
    az.chmod(0o755)
    env = {**os.environ, "PATH": f"{az.parent}{os.pathsep}{os.environ['PATH']}"}
    return env, calls


def test_deploy_script_passes_the_rule_parameters(fake_az):
    env, calls = fake_az
    env |= {"RESOURCE_GROUP": "rg", "APP_INSIGHTS_NAME": "appi", "ALERT_EMAIL": "ops@example.com"}
    subprocess.run(["bash", str(DEPLOY_SCRIPT)], env={**env, "ALERT_WINDOW_MINUTES": "10"}, check=True)
    subprocess.run(["bash", str(DEPLOY_SCRIPT), "--what-if"], env=env, check=True)
    show, create, service, _, what_if, service_what_if = calls.read_text().splitlines()
    assert show == "resource show --resource-group rg --name appi --resource-type Microsoft.Insights/components " + (
        "--query id --output tsv"
    )
    assert create.startswith("deployment group create --resource-group rg")
    assert f"--template-file {TEMPLATE}" in create
    for argument in (
        "appInsightsResourceId=/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/appi",
        "alertEmail=ops@example.com",
        "threshold=3",
        "windowMinutes=10",
        "cooldownMinutes=15",
    ):
        assert argument in create.split()
    assert what_if.startswith("deployment group what-if") and "windowMinutes=5" in what_if.split()
    assert f"--template-file {SERVICE_TEMPLATE}" in service and "p95LimitMs=500" in service.split()
    assert "errorRatePct=1" in service.split() and "windowMinutes=10" in service.split()
    assert service_what_if.startswith("deployment group what-if") and str(SERVICE_TEMPLATE) in service_what_if


def test_deploy_script_names_what_is_missing(fake_az):
    env, _ = fake_az
    result = subprocess.run(["bash", str(DEPLOY_SCRIPT)], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "set RESOURCE_GROUP" in result.stderr
