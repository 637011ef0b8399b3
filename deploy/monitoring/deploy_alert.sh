#!/usr/bin/env bash
# Deploy the alerts next to an existing Application Insights component: the wrong-prediction alert
# (e-mail action group + scheduled query rule with a managed identity + that identity's Log Analytics
# Reader role on the component, wrong_prediction_alert.json), then the service-health alerts on the
# same action group (p95 latency and 5xx rate of /invocations, service_health_alerts.json).
#
#   RESOURCE_GROUP=rg-tweets APP_INSIGHTS_NAME=appi-tweets ALERT_EMAIL=oncall@example.com \
#     deploy/monitoring/deploy_alert.sh            # add --what-if to preview the changes only
#
# Optional: ALERT_THRESHOLD (3), ALERT_WINDOW_MINUTES (5), ALERT_COOLDOWN_MINUTES (15),
# ALERT_EVALUATION_MINUTES (1), ALERT_INGESTION_LATENCY_MINUTES (9), ALERT_SEVERITY (2),
# ALERT_CLOUD_ROLE (tweet-sentiment-dashboard: whose wrong_prediction events count),
# ALERT_RULE_NAME (tweet-sentiment-wrong-predictions), ALERT_P95_MS (500), ALERT_ERROR_RATE_PCT (1).
# A rule for a staging dashboard: ALERT_CLOUD_ROLE=tweet-sentiment-dashboard-staging
# ALERT_RULE_NAME=tweet-sentiment-wrong-predictions-staging.
# Needs `az login` and the Azure CLI only (no extension); the signed-in account must be allowed to
# assign roles on the component (Owner, User Access Administrator or Role Based Access Control Administrator).
set -euo pipefail

: "${RESOURCE_GROUP:?set RESOURCE_GROUP to the resource group of the Application Insights component}"
: "${APP_INSIGHTS_NAME:?set APP_INSIGHTS_NAME to the Application Insights component name}"
: "${ALERT_EMAIL:?set ALERT_EMAIL to the address that receives the alert}"

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
template="$here/wrong_prediction_alert.json"
action=create
if [[ "${1:-}" == "--what-if" ]]; then
  action=what-if
fi

app_insights_id="$(az resource show --resource-group "$RESOURCE_GROUP" --name "$APP_INSIGHTS_NAME" \
  --resource-type Microsoft.Insights/components --query id --output tsv)"

az deployment group "$action" \
  --resource-group "$RESOURCE_GROUP" \
  --name tweet-sentiment-wrong-prediction-alert \
  --template-file "$template" \
  --parameters \
    appInsightsResourceId="$app_insights_id" \
    alertEmail="$ALERT_EMAIL" \
    threshold="${ALERT_THRESHOLD:-3}" \
    windowMinutes="${ALERT_WINDOW_MINUTES:-5}" \
    cooldownMinutes="${ALERT_COOLDOWN_MINUTES:-15}" \
    evaluationFrequencyMinutes="${ALERT_EVALUATION_MINUTES:-1}" \
    ingestionLatencyMinutes="${ALERT_INGESTION_LATENCY_MINUTES:-9}" \
    cloudRoleName="${ALERT_CLOUD_ROLE:-tweet-sentiment-dashboard}" \
    ruleName="${ALERT_RULE_NAME:-tweet-sentiment-wrong-predictions}" \
    severity="${ALERT_SEVERITY:-2}"

az deployment group "$action" \
  --resource-group "$RESOURCE_GROUP" \
  --name tweet-sentiment-service-health-alerts \
  --template-file "$here/service_health_alerts.json" \
  --parameters \
    appInsightsResourceId="$app_insights_id" \
    p95LimitMs="${ALERT_P95_MS:-500}" \
    errorRatePct="${ALERT_ERROR_RATE_PCT:-1}" \
    windowMinutes="${ALERT_WINDOW_MINUTES:-5}" \
    evaluationFrequencyMinutes="${ALERT_EVALUATION_MINUTES:-1}" \
    severity="${ALERT_SEVERITY:-2}"
