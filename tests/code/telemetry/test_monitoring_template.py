"""Alerts and workbook as code: the ARM template is well formed, its deploy script passes the right
parameters, and every KQL query (template and docs) names only what the SDK really emits."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from harness.appinsights_capture import INVOCATIONS_REQUEST, CaptureServer, base_data, telemetry_env
from monitoring.alerts import KQL_MEASURE, KQL_TEMPLATE, AlertRule, kql_query
from pyfunc.telemetry import DASHBOARD_SERVICE, MODEL_SERVICE
from tests.code.arm_templates import check_arm_template

REPO = Path(__file__).resolve().parents[3]
TEMPLATE = REPO / "deploy" / "monitoring" / "wrong_prediction_alert.json"
SERVICE_TEMPLATE = REPO / "deploy" / "monitoring" / "service_health_alerts.json"
DEPLOY_SCRIPT = REPO / "deploy" / "monitoring" / "deploy_alert.sh"
DOCS = REPO / "docs" / "monitoring.md"
# Envelope type behind each Application Insights table the queries read.
TABLES = {"requests": "RequestData", "customMetrics": "MetricData", "customEvents": "EventData"}
# Window sizes Azure Monitor log alerts accept, in minutes, and evaluation frequencies.
AZURE_WINDOWS = {1, 5, 10, 15, 30, 45, 60, 120, 180, 240, 300, 360, 1440}
AZURE_FREQUENCIES = {1, 5, 10, 15, 30, 45, 60}
LOG_ANALYTICS_READER = "73c42c96-874c-492b-b04d-ab87d138a893"  # Azure built-in role "Log Analytics Reader"

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
        # The text is opt-in: switched on here, so the docs' query that shows it is checked too.
        env = {**os.environ, **telemetry_env(capture.port), "TMPDIR": str(tmp_path_factory.mktemp("telemetry"))}
        env["TELEMETRY_SEND_TEXT"] = "true"
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


class Arm:
    """Evaluates the subset of ARM template expressions these templates use, so tests can check what the
    template computes (the query it builds, the lookback it picks) rather than how it is spelled.

    `Arm(document, windowMinutes=10)("[format('PT{0}M', parameters('windowMinutes'))]")` -> "PT10M".
    """

    TOKEN = re.compile(r"\s*(?:('(?:[^']|'')*')|(-?\d+)|([A-Za-z_]\w*)|([(),.\[\]]))")

    def __init__(self, document: dict, **parameters: Any) -> None:
        self.parameters = {k: v.get("defaultValue") for k, v in document["parameters"].items()} | parameters
        self.functions = {
            "parameters": lambda name: self(self.parameters[name]),
            "variables": lambda name: self(document["variables"][name]),
            "format": lambda text, *args: text.format(*args),  # .NET's {0} placeholders read as Python's
            "add": lambda a, b: a + b,
            "max": lambda *values: max(values),
            "lessOrEquals": lambda a, b: a <= b,
            "greater": lambda a, b: a > b,
            "if": lambda condition, yes, no: yes if condition else no,
            "null": lambda: None,
            "resourceGroup": lambda: {"id": "/subscriptions/s/resourceGroups/rg", "location": "westeurope"},
            "resourceId": lambda kind, *names: "/".join(["/subscriptions/s/resourceGroups/rg/providers", kind, *names]),
            "subscriptionResourceId": lambda kind, *names: "/".join(["/subscriptions/s/providers", kind, *names]),
            "guid": lambda *parts: str(uuid.uuid5(uuid.NAMESPACE_URL, "|".join(parts))),
            "reference": lambda resource, *_: {"identity": {"principalId": "principal-of-" + resource.split("/")[-1]}},
        }

    def __call__(self, value: Any) -> Any:
        if not (isinstance(value, str) and value.startswith("[") and value.endswith("]")):
            return value
        outer = getattr(self, "tokens", None), getattr(self, "at", 0)  # variables() evaluates within an expression
        self.tokens = [match.groups() for match in self.TOKEN.finditer(value[1:-1])]
        self.at = 0
        result = self.expression()
        assert self.at == len(self.tokens), f"trailing tokens in {value}"
        self.tokens, self.at = outer
        return result

    def take(self, punctuation: str | None = None) -> tuple:
        token = self.tokens[self.at]
        assert punctuation is None or token[3] == punctuation, f"expected {punctuation!r}, got {token}"
        self.at += 1
        return token

    def peek(self) -> str | None:
        return self.tokens[self.at][3] if self.at < len(self.tokens) else None

    def expression(self) -> Any:
        string, number, name, _ = self.take()
        if string is not None:
            value = string[1:-1].replace("''", "'")
        elif number is not None:
            value = int(number)
        else:
            self.take("(")
            args = []
            while self.peek() != ")":
                args.append(self.expression())
                if self.peek() == ",":
                    self.take(",")
            self.take(")")
            value = self.functions[name](*args)
        while self.peek() in (".", "["):
            if self.take()[3] == ".":
                value = value[self.take()[2]]
            else:
                value = value[self.expression()]
                self.take("]")
        return value


def wrong_prediction_rule(document: dict | None = None) -> dict:
    document = document or template()
    [rule] = [r for r in document["resources"] if r["type"] == "Microsoft.Insights/scheduledQueryRules"]
    return rule


def template_query(**parameters: Any) -> str:
    """The wrong-prediction rule's query as Azure receives it (default parameters unless given)."""
    document = template()
    [criterion] = wrong_prediction_rule(document)["properties"]["criteria"]["allOf"]
    return Arm(document, **parameters)(criterion["query"])


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


def test_alert_query_is_the_python_rule():
    """One source of truth: the template holds monitoring.alerts.KQL_TEMPLATE and fills it with format()."""
    assert template()["variables"]["queryTemplate"] == KQL_TEMPLATE
    assert template_query() == AlertRule().kql() == kql_query(timedelta(minutes=5), DASHBOARD_SERVICE)
    staging = "tweet-sentiment-dashboard-staging"
    assert template_query(cloudRoleName=staging, windowMinutes=10) == kql_query(timedelta(minutes=10), staging)
    query = template_query()
    assert query.startswith(
        'customEvents\n| where name == "wrong_prediction" and cloud_RoleName == "tweet-sentiment-dashboard"\n'
    )
    assert "tolong(itemCount)" in query and "row_cumsum(items)" in query  # a sampled row counts its itemCount
    assert query.endswith(f"| project {KQL_MEASURE}")


def test_docs_show_the_alert_query_azure_runs():
    assert AlertRule().kql() + "\n" in doc_queries()


@pytest.mark.parametrize("path", [TEMPLATE, SERVICE_TEMPLATE], ids=lambda path: path.name)
def test_template_is_a_valid_arm_template(path):
    # The wrong-prediction template also holds a role assignment: an extension resource, with a scope
    # instead of a location (test_the_rule_runs_as_its_own_identity... checks it); the others need one.
    document = check_arm_template(path, ("type", "apiVersion", "name", "properties"))
    for resource in document["resources"]:
        extension = resource["type"] == "Microsoft.Authorization/roleAssignments"
        assert ("scope" if extension else "location") in resource, resource["type"]
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


def test_template_encodes_the_rule_three_in_any_five_minutes_with_email():
    document = template()
    parameters = document["parameters"]
    assert parameters["threshold"]["defaultValue"] == 3 and parameters["windowMinutes"]["defaultValue"] == 5
    assert parameters["cloudRoleName"]["defaultValue"] == DASHBOARD_SERVICE  # the role that emits the events
    assert set(parameters["evaluationFrequencyMinutes"]["allowedValues"]) <= AZURE_FREQUENCIES
    resources = {r["type"]: r for r in document["resources"]}
    group = resources["Microsoft.Insights/actionGroups"]
    assert group["properties"]["emailReceivers"][0]["emailAddress"] == "[parameters('alertEmail')]"
    rule = resources["Microsoft.Insights/scheduledQueryRules"]
    assert rule["kind"] == "LogAlert" and rule["apiVersion"] == "2023-12-01"
    properties = rule["properties"]
    assert properties["scopes"] == ["[parameters('appInsightsResourceId')]"]
    [criterion] = properties["criteria"]["allOf"]
    assert criterion["query"] == "[variables('query')]"
    # The query returns the busiest window's count; the rule takes its maximum and compares it.
    assert (criterion["timeAggregation"], criterion["metricMeasureColumn"]) == ("Maximum", KQL_MEASURE)
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThanOrEqual", "[parameters('threshold')]")
    assert criterion["failingPeriods"] == {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1}
    assert "dimensions" not in criterion and "overrideQueryTimeRange" not in properties  # the range is windowSize
    assert properties["autoMitigate"] is False and "cooldownMinutes" in properties["muteActionsDuration"]
    group_id = "[resourceId('Microsoft.Insights/actionGroups', parameters('actionGroupName'))]"
    assert properties["actions"]["actionGroups"] == [group_id] and group_id in rule["dependsOn"]
    arm = Arm(document)
    assert (arm(properties["windowSize"]), arm(properties["evaluationFrequency"])) == ("PT15M", "PT1M")
    assert arm(properties["muteActionsDuration"]) == "PT15M"


def test_the_rule_runs_as_its_own_identity_with_read_access_to_the_component():
    document = template()
    resources = {r["type"]: r for r in document["resources"]}
    rule = resources["Microsoft.Insights/scheduledQueryRules"]
    assert rule["identity"] == {"type": "SystemAssigned"}
    assignment = resources["Microsoft.Authorization/roleAssignments"]
    assert assignment["scope"] == "[parameters('appInsightsResourceId')]" and "location" not in assignment
    rule_id = "[resourceId('Microsoft.Insights/scheduledQueryRules', parameters('ruleName'))]"
    assert assignment["dependsOn"] == [rule_id]  # it needs the identity that creating the rule makes
    component = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Insights/components/appi"
    arm = Arm(document, appInsightsResourceId=component)
    properties = {key: arm(value) for key, value in assignment["properties"].items()}
    roles = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions"
    assert properties["roleDefinitionId"] == f"{roles}/{LOG_ANALYTICS_READER}"
    assert properties["principalId"] == "principal-of-tweet-sentiment-wrong-predictions"
    assert properties["principalType"] == "ServicePrincipal"
    name = arm(assignment["name"])
    assert str(uuid.UUID(name)) == name == arm(assignment["name"])  # deterministic: a redeployment updates it
    assert name != Arm(document, appInsightsResourceId=component, ruleName="staging")(assignment["name"])
    assert "alertRulePrincipalId" in document["outputs"]


GRID = [
    (window, frequency, latency)
    for window in (1, 2, 5, 7, 10, 30, 59, 120, 360)
    for frequency in sorted(AZURE_FREQUENCIES)
    for latency in (0, 1, 9, 10, 30, 60)
]


@pytest.mark.parametrize(("window", "frequency", "latency"), GRID)
def test_the_lookback_covers_window_frequency_and_latency(window, frequency, latency):
    """No burst can be missed: a burst within [a, a + window] is queryable by b + latency (b its last event),
    the first run after that comes within `frequency`, and that run's range [e - lookback, e] reaches a."""
    document = template()
    settings = dict(windowMinutes=window, evaluationFrequencyMinutes=frequency, ingestionLatencyMinutes=latency)
    arm = Arm(document, **settings)
    lookback = arm("[variables('lookbackMinutes')]")
    needed = window + frequency + latency
    assert lookback in AZURE_WINDOWS and lookback >= needed
    assert lookback == min(size for size in AZURE_WINDOWS if size >= needed)  # and no longer than it must be
    properties = wrong_prediction_rule(document)["properties"]
    assert arm(properties["windowSize"]) == f"PT{lookback}M"
    assert arm(properties["evaluationFrequency"]) == f"PT{frequency}M"
    assert f"timestamp + {window}m" in arm(properties["criteria"]["allOf"][0]["query"])
    for cooldown in (0, 5, 15, 90):  # a burst mutes notifications for at least the lookback: one e-mail
        mute = Arm(document, **settings, cooldownMinutes=cooldown)(properties["muteActionsDuration"])
        assert mute == (None if cooldown == 0 else f"PT{max(cooldown, lookback)}M")


def test_window_and_latency_parameters_stay_within_what_the_lookback_can_cover():
    parameters = template()["parameters"]
    most = (
        parameters["windowMinutes"]["maxValue"]
        + max(parameters["evaluationFrequencyMinutes"]["allowedValues"])
        + parameters["ingestionLatencyMinutes"]["maxValue"]
    )
    assert most <= max(AZURE_WINDOWS)
    assert parameters["ingestionLatencyMinutes"]["defaultValue"] == 9  # 5 + 1 + 9: a 15-minute lookback


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
    staging = {"ALERT_CLOUD_ROLE": "tweet-sentiment-dashboard-staging"}
    staging["ALERT_RULE_NAME"] = "tweet-sentiment-wrong-predictions-staging"
    subprocess.run(["bash", str(DEPLOY_SCRIPT), "--what-if"], env={**env, **staging}, check=True)
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
        "ingestionLatencyMinutes=9",
        "cloudRoleName=tweet-sentiment-dashboard",
        "ruleName=tweet-sentiment-wrong-predictions",
    ):
        assert argument in create.split()
    assert what_if.startswith("deployment group what-if") and "windowMinutes=5" in what_if.split()
    assert "cloudRoleName=tweet-sentiment-dashboard-staging" in what_if.split()
    assert "ruleName=tweet-sentiment-wrong-predictions-staging" in what_if.split()
    assert f"--template-file {SERVICE_TEMPLATE}" in service and "p95LimitMs=500" in service.split()
    assert "errorRatePct=1" in service.split() and "windowMinutes=10" in service.split()
    assert service_what_if.startswith("deployment group what-if") and str(SERVICE_TEMPLATE) in service_what_if


def test_deploy_script_names_what_is_missing(fake_az):
    env, _ = fake_az
    result = subprocess.run(["bash", str(DEPLOY_SCRIPT)], env=env, capture_output=True, text=True)
    assert result.returncode != 0 and "set RESOURCE_GROUP" in result.stderr
