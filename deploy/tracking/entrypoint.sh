#!/usr/bin/env bash
# The MLflow tracking server in its container (deploy/tracking/Dockerfile): `mlflow server` with MLflow's
# basic-auth app, runs and the registry in PostgreSQL, artifacts proxied to Azure Blob Storage
# (docs/deploy.md, "A shared tracking server", "In Azure"). The container listens on every interface,
# so it never starts without authentication: a missing setting ends it with one line and exit code 2.
#
# Settings (environment; App Service passes its app settings, Key Vault references already resolved):
#   MLFLOW_BACKEND_STORE_URI        runs and the registry: postgresql+psycopg2://USER:PASSWORD@HOST:5432/mlflow?sslmode=require
#   MLFLOW_ARTIFACTS_DESTINATION    wasbs://mlflow@ACCOUNT.blob.core.windows.net/artifacts
#   MLFLOW_AUTH_DATABASE_URI        users and permissions: postgresql+psycopg2://USER:PASSWORD@HOST:5432/mlflow_auth?sslmode=require
#   MLFLOW_AUTH_ADMIN_PASSWORD      the admin user's password; MLflow uses it once, when the user store has no admin yet
#   MLFLOW_FLASK_SERVER_SECRET_KEY  signs the UI's CSRF tokens: the same value across restarts and workers
#   optional: MLFLOW_AUTH_ADMIN_USERNAME (admin), MLFLOW_AUTH_DEFAULT_PERMISSION (READ), PORT (8080),
#   MLFLOW_WORKERS, MLFLOW_SERVER_ALLOWED_HOSTS and MLFLOW_SERVER_CORS_ALLOWED_ORIGINS (the public host name),
#   AZURE_CLIENT_ID (the user-assigned managed identity that may write the blob container).
#
# `mlflow server` reads MLFLOW_BACKEND_STORE_URI, MLFLOW_ARTIFACTS_DESTINATION, MLFLOW_WORKERS and the
# MLFLOW_SERVER_* settings itself (click envvars), and the basic-auth app reads MLFLOW_AUTH_CONFIG_PATH,
# MLFLOW_AUTH_ADMIN_USERNAME/PASSWORD and MLFLOW_FLASK_SERVER_SECRET_KEY: secrets stay in the environment
# and in a file only this user reads, never on the command line (`ps` shows that to every user) or in the log.
#
# Artifacts: with neither AZURE_STORAGE_CONNECTION_STRING nor AZURE_STORAGE_ACCESS_KEY in the environment,
# MLflow's AzureBlobArtifactRepository (mlflow/store/artifact/azure_blob_artifact_repo.py, __init__)
# builds its BlobServiceClient with azure.identity.DefaultAzureCredential(), whose managed-identity step
# takes the user-assigned identity's client id from AZURE_CLIENT_ID. No storage key exists anywhere
# (the storage account refuses shared-key access).
set -euo pipefail

refuse() { echo "tracking-server: $*" >&2; exit 2; }

for name in MLFLOW_BACKEND_STORE_URI MLFLOW_ARTIFACTS_DESTINATION; do
  [ -n "${!name:-}" ] || refuse "$name is not set: the server needs its backend store and its artifact store"
done
missing=()
for name in MLFLOW_AUTH_DATABASE_URI MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY; do
  [ -n "${!name:-}" ] || missing+=("$name")
done
[ ${#missing[@]} -eq 0 ] ||
  refuse "refusing to start without authentication (MLflow's basic-auth app): set ${missing[*]}"
for name in MLFLOW_BACKEND_STORE_URI MLFLOW_ARTIFACTS_DESTINATION MLFLOW_AUTH_DATABASE_URI \
  MLFLOW_AUTH_ADMIN_PASSWORD MLFLOW_FLASK_SERVER_SECRET_KEY; do
  # App Service passes a Key Vault reference it could not resolve as the literal reference.
  case "${!name}" in
    @Microsoft.KeyVault\(*) refuse "$name is an unresolved Key Vault reference: the app's identity needs" \
      "Key Vault Secrets User on the vault and the secret must exist; then restart the app" ;;
  esac
  case "${!name}" in *$'\n'*) refuse "$name spans several lines: store it as one line" ;; esac
done

admin_username="${MLFLOW_AUTH_ADMIN_USERNAME:-admin}"
permission="${MLFLOW_AUTH_DEFAULT_PERMISSION:-READ}"
case "$permission" in
  READ | USE | EDIT | MANAGE | NO_PERMISSIONS) ;;
  *) refuse "MLFLOW_AUTH_DEFAULT_PERMISSION must be READ, USE, EDIT, MANAGE or NO_PERMISSIONS, got '$permission'" ;;
esac
port="${PORT:-8080}"
[[ "$port" =~ ^[0-9]+$ ]] || refuse "PORT must be a port number, got '$port'"

# MLflow tests `in os.environ`: an empty setting would still select the connection-string client.
for name in AZURE_STORAGE_CONNECTION_STRING AZURE_STORAGE_ACCESS_KEY; do
  [ -n "${!name:-}" ] || unset "$name"
done

# The same keys as scripts/tracking_server.sh writes. configparser interpolates '%', and a password in a
# URI is percent-encoded, so '%' is doubled. The admin password stays in the environment, not in the file.
config="${MLFLOW_AUTH_CONFIG_PATH:-${HOME:-/tmp}/.mlflow/basic_auth.ini}"
umask 077
mkdir -p "$(dirname "$config")"
printf '[mlflow]\ndefault_permission = %s\ndatabase_uri = %s\nadmin_username = %s\nauthorization_function = %s\n' \
  "$permission" "${MLFLOW_AUTH_DATABASE_URI//'%'/%%}" "$admin_username" \
  "mlflow.server.auth:authenticate_request_basic_auth" >"$config"
export MLFLOW_AUTH_CONFIG_PATH="$config" MLFLOW_AUTH_ADMIN_USERNAME="$admin_username"

echo "tracking-server: mlflow server with basic-auth on 0.0.0.0:$port," \
  "artifacts proxied to ${MLFLOW_ARTIFACTS_DESTINATION%%\?*}" >&2
exec mlflow server --app-name basic-auth --host 0.0.0.0 --port "$port" --serve-artifacts "$@"
