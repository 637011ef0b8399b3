#!/usr/bin/env bash
# The shared MLflow tracking server on this machine: `mlflow server` with a PostgreSQL backend store
# (a private cluster in a data directory of its own, never the system cluster) and an Azure Blob
# artifact store emulated by Azurite, Microsoft's emulator (docs/deploy.md, "A shared tracking server").
#
#   bash scripts/tracking_server.sh up       start what is not running, print the lines to export
#   bash scripts/tracking_server.sh status   say what runs, where; exit 0 only when all three run
#   (neither prints a password: the export lines read it from its file, and the admin's file is named)
#   bash scripts/tracking_server.sh down     stop all three (the data stays for the next `up`)
#
# Settings (environment): TRACKING_SERVER_HOME (state: data, logs, secrets; default .tracking-server),
# TRACKING_HOST (127.0.0.1), TRACKING_PORT (5050), POSTGRES_PORT (5433), AZURITE_PORT (10000),
# TRACKING_AUTH (`none` or `basic`; default none on 127.0.0.1/localhost, and any other host demands
# `basic`: MLflow's basic-auth app, users and permissions kept in the same PostgreSQL cluster),
# TRACKING_PUBLIC_URI (the https:// address of a TLS proxy in front of the server: demanded with any host
# beyond this machine, since basic auth sends the password with every request and `mlflow server` speaks
# plain HTTP). With basic auth the pipeline runs as the user `pipeline`, not as `admin`: it may write the
# Default experiment, what it creates and the registered model; the admin account only manages users
# (docs/design.md, "Who may write the registry").
# Needs: bash scripts/install.sh server (PostgreSQL, Azurite, psycopg2 and azure-storage-blob).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
home="${TRACKING_SERVER_HOME:-$repo/.tracking-server}"
host="${TRACKING_HOST:-127.0.0.1}"
port="${TRACKING_PORT:-5050}"
pg_port="${POSTGRES_PORT:-5433}"
blob_port="${AZURITE_PORT:-10000}"
python="${PYTHON:-$repo/.venv/bin/python}"
public_uri="${TRACKING_PUBLIC_URI:-}"
account=mlflowlocal     # the emulated storage account; its key is generated at the first `up`
container=mlflow        # the artifact container
db_user=mlflow
pipeline_user=pipeline
model_name=tweet-sentiment   # steps/lib/registry.py's MODEL_NAME
case "$host" in 127.0.0.1 | localhost) default_auth=none ;; *) default_auth=basic ;; esac
auth="${TRACKING_AUTH:-$default_auth}"

fail() { echo "tracking_server: $*" >&2; exit 1; }
say() { echo "tracking_server: $*"; }

port_busy() { "$python" -c 'import socket,sys; s=socket.socket(); s.settimeout(0.5); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$1"; }
pid_alive() { [ -f "$home/run/$1.pid" ] && kill -0 "$(cat "$home/run/$1.pid")" 2>/dev/null; }
wait_for_port() { # name port seconds log
  for _ in $(seq "$(($3 * 4))"); do port_busy "$2" && return 0; pid_alive "$1" || break; sleep 0.25; done
  tail -20 "$4" >&2 || true
  fail "$1 did not start listening on port $2 (log: $4)"
}

pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do [ -x "$dir/pg_ctl" ] && { echo "$dir"; return; }; done
  command -v pg_ctl >/dev/null && { dirname "$(command -v pg_ctl)"; return; }
  fail "PostgreSQL is not installed: run bash scripts/install.sh server"
}
# PostgreSQL refuses to run as root: the private cluster then belongs to the `postgres` system user.
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

azurite_bin() {
  local bin="$repo/deploy/tracking/node_modules/.bin/azurite-blob"
  [ -x "$bin" ] || fail "Azurite is not installed: run bash scripts/install.sh server"
  echo "$bin"
}

check_requirements() {
  [ -x "$python" ] || fail "no Python environment at $python: run bash scripts/install.sh server"
  "$python" -c 'import psycopg2, azure.storage.blob' 2>/dev/null ||
    fail "psycopg2 or azure-storage-blob missing from $python: run bash scripts/install.sh server"
  case "$auth" in
    basic) ;;
    none) [ "$default_auth" = none ] || fail "TRACKING_HOST=$host reaches beyond this machine: it needs TRACKING_AUTH=basic" ;;
    *) fail "TRACKING_AUTH must be none or basic, got '$auth'" ;;
  esac
  case "$public_uri" in
    https://?*) ;;
    "") [ "$default_auth" = none ] || fail "TRACKING_HOST=$host reaches beyond this machine over plain HTTP," \
      "where basic auth would send passwords in clear: put a TLS proxy in front and set TRACKING_PUBLIC_URI=https://<its address>" ;;
    *) fail "TRACKING_PUBLIC_URI must be the https:// address of the TLS proxy in front, got '$public_uri'" ;;
  esac
  pg_bin >/dev/null
  azurite_bin >/dev/null
}

secret() { # name: created once, readable by its owner only
  local file="$home/secrets/$1"
  [ -s "$file" ] || (umask 077 && "$python" -c 'import secrets; print(secrets.token_urlsafe(24))' >"$file")
  cat "$file"
}

storage_key() { # Azurite wants a base64 account key
  local file="$home/secrets/azurite_key"
  [ -s "$file" ] || (umask 077 && "$python" -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())' >"$file")
  cat "$file"
}

connection_string() {
  echo "DefaultEndpointsProtocol=http;AccountName=$account;AccountKey=$(storage_key);BlobEndpoint=http://127.0.0.1:$blob_port/$account;"
}

start_postgres() {
  local bin data="$home/pgdata"
  bin="$(pg_bin)"
  if [ ! -s "$data/PG_VERSION" ]; then
    say "creating the PostgreSQL cluster in $data"
    mkdir -p "$data"
    as_pg test -x "$data" || fail "PostgreSQL refuses to run as root, so the cluster runs as the postgres user," \
      "who cannot reach $data: choose a TRACKING_SERVER_HOME whose folders others may enter (chmod o+x)"
    [ "$(id -u)" -ne 0 ] || chown postgres "$data"
    local pwfile
    pwfile="$(mktemp)"
    secret postgres_password >"$pwfile"
    [ "$(id -u)" -ne 0 ] || chown postgres "$pwfile"
    as_pg "$bin/initdb" -D "$data" -U "$db_user" --pwfile="$pwfile" --auth=scram-sha-256 >"$home/logs/initdb.log" 2>&1 ||
      { rm -f "$pwfile"; tail -20 "$home/logs/initdb.log" >&2; fail "initdb failed (log: $home/logs/initdb.log)"; }
    rm -f "$pwfile"
  fi
  [ "$(id -u)" -ne 0 ] || chown postgres "$home/logs"
  as_pg "$bin/pg_ctl" -D "$data" -l "$home/logs/postgres.log" -w -t 60 \
    -o "-p $pg_port -k $data -c listen_addresses=127.0.0.1" start >/dev/null ||
    { tail -20 "$home/logs/postgres.log" >&2; fail "PostgreSQL did not start (log: $home/logs/postgres.log)"; }
  as_pg cat "$data/postmaster.pid" | head -1 >"$home/run/postgres.pid"
  local database
  for database in mlflow mlflow_auth; do
    PGPASSFILE="$home/secrets/pgpass" "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U "$db_user" -d postgres -tAq \
      -c "SELECT 1 FROM pg_database WHERE datname = '$database'" | grep -q 1 ||
      PGPASSFILE="$home/secrets/pgpass" "$bin/psql" -h 127.0.0.1 -p "$pg_port" -U "$db_user" -d postgres -q \
        -c "CREATE DATABASE $database"
  done
}

start_detached() { # name log command...: its own session, so `down` stops the whole process group
  local name="$1" log="$2"
  shift 2
  setsid "$@" >"$log" 2>&1 </dev/null &
  echo $! >"$home/run/$name.pid"
}

start_azurite() {
  AZURITE_ACCOUNTS="$account:$(storage_key)" start_detached azurite "$home/logs/azurite.log" \
    "$(azurite_bin)" --blobHost 127.0.0.1 --blobPort "$blob_port" --location "$home/azurite" --skipApiVersionCheck
  wait_for_port azurite "$blob_port" 60 "$home/logs/azurite.log"
  AZURE_STORAGE_CONNECTION_STRING="$(connection_string)" "$python" - "$container" <<'PY'
import os, sys, time
from azure.core.exceptions import ResourceExistsError, ServiceRequestError, ServiceResponseError
from azure.storage.blob import BlobServiceClient

# Azurite opens its port before it answers: on a busy machine the first requests are dropped
# ("Remote end closed connection without response"), so the container is retried for a minute.
service = BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"])
deadline = time.monotonic() + 60
while True:
    try:
        service.create_container(sys.argv[1])
        break
    except ResourceExistsError:
        break
    except (ServiceRequestError, ServiceResponseError):
        if time.monotonic() > deadline:
            raise
        time.sleep(1)
PY
}

start_mlflow() {
  local args=(--backend-store-uri "postgresql+psycopg2://$db_user@127.0.0.1:$pg_port/mlflow"
    --artifacts-destination "wasbs://$container@$account.blob.core.windows.net/artifacts"
    --host "$host" --port "$port" --workers 2)
  local env=(PGPASSFILE="$home/secrets/pgpass" AZURE_STORAGE_CONNECTION_STRING="$(connection_string)")
  if [ "$auth" = basic ]; then
    cat >"$home/basic_auth.ini" <<EOF
[mlflow]
default_permission = READ
database_uri = postgresql+psycopg2://$db_user@127.0.0.1:$pg_port/mlflow_auth
admin_username = admin
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
EOF
    args+=(--app-name basic-auth)
    env+=(MLFLOW_AUTH_CONFIG_PATH="$home/basic_auth.ini" MLFLOW_AUTH_ADMIN_PASSWORD="$(secret admin_password)"
      MLFLOW_FLASK_SERVER_SECRET_KEY="$(secret flask_secret_key)") # CSRF tokens must survive a restart
  fi
  # Secrets travel in the environment and files, never on a command line (`ps` shows those to everyone).
  (export "${env[@]}" && start_detached mlflow "$home/logs/mlflow.log" "$(dirname "$python")/mlflow" server "${args[@]}")
  wait_for_port mlflow "$port" 120 "$home/logs/mlflow.log"
  for _ in $(seq 120); do
    "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
      "http://127.0.0.1:$port/health" 2>/dev/null && return 0
    sleep 0.5
  done
  fail "mlflow server answers no /health on port $port (log: $home/logs/mlflow.log)"
}

ensure_pipeline_user() { # the account the pipeline, serving and CD use locally: not the admin
  [ "$auth" = basic ] || return 0
  secret pipeline_password >/dev/null
  # As admin, once: create the user, let it write the Default experiment and the registered model if
  # an earlier admin-run pipeline created that. Experiments and models it creates itself are its own.
  MLFLOW_TRACKING_URI="http://127.0.0.1:$port" MLFLOW_TRACKING_USERNAME=admin \
    MLFLOW_TRACKING_PASSWORD="$(secret admin_password)" PIPELINE_PASSWORD="$(secret pipeline_password)" \
    "$python" - "$pipeline_user" "$model_name" >>"$home/logs/users.log" 2>&1 <<'PY' ||
import os, sys
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.server.auth.client import AuthServiceClient

user, model = sys.argv[1:]
auth = AuthServiceClient(os.environ["MLFLOW_TRACKING_URI"])
try:
    auth.get_user(user)
except MlflowException:
    auth.create_user(user, os.environ["PIPELINE_PASSWORD"])
    print(f"created user {user}")


def grant(kind: str, name: str, permission: str) -> None:
    try:
        auth.grant_user_permission(user, kind, name, permission)
    except MlflowException as error:  # granted at an earlier `up`
        if error.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


grant("experiment", "0", "EDIT")
try:
    MlflowClient().get_registered_model(model)
except MlflowException:
    pass  # the pipeline's first register creates it, and owns it
else:
    grant("registered_model", model, "MANAGE")
PY
    fail "could not create the user $pipeline_user (log: $home/logs/users.log)"
}

print_exports() { # no password is printed: the lines read the pipeline's from its file when pasted
  echo "# the pipeline, the model server and CD read these:"
  echo "export MLFLOW_TRACKING_URI=$(cat "$home/run/uri" 2>/dev/null || echo "http://$host:$port")"
  if [ "$(cat "$home/run/auth" 2>/dev/null || echo none)" = basic ]; then
    echo "export MLFLOW_TRACKING_USERNAME=$pipeline_user"
    printf 'export MLFLOW_TRACKING_PASSWORD="$(cat %q)"\n' "$home/secrets/pipeline_password"
    echo "# the admin's password (managing users only: docs/deploy.md) is in $home/secrets/admin_password"
  fi
}

component_state() { # name port
  if pid_alive "$1"; then echo "$1: running (pid $(cat "$home/run/$1.pid"), port $2)"; else echo "$1: stopped"; fi
}

all_running() { pid_alive postgres && pid_alive azurite && pid_alive mlflow; }

up() {
  check_requirements
  mkdir -p "$home"/{run,logs,secrets,azurite}
  chmod 700 "$home/secrets"
  if all_running; then
    say "already up at http://$host:$port"
    print_exports
    return 0
  fi
  local name p setting
  for entry in "postgres:$pg_port:POSTGRES_PORT" "azurite:$blob_port:AZURITE_PORT" "mlflow:$port:TRACKING_PORT"; do
    IFS=: read -r name p setting <<<"$entry"
    if ! pid_alive "$name" && port_busy "$p"; then
      fail "port $p (for $name) is in use by another process: set $setting, or stop that process"
    fi
  done
  [ -s "$home/secrets/pgpass" ] ||
    (umask 077 && echo "127.0.0.1:$pg_port:*:$db_user:$(secret postgres_password)" >"$home/secrets/pgpass")
  pid_alive postgres || start_postgres
  pid_alive azurite || start_azurite
  echo "$auth" >"$home/run/auth"
  echo "${public_uri:-http://$host:$port}" >"$home/run/uri"
  pid_alive mlflow || start_mlflow
  ensure_pipeline_user
  say "up: runs and the registry in PostgreSQL (127.0.0.1:$pg_port), artifacts in Azurite" \
    "(http://127.0.0.1:$blob_port/$account/$container); logs in $home/logs"
  print_exports
}

stop_group() { # name port
  local pid
  pid_alive "$1" || { rm -f "$home/run/$1.pid"; return 0; }
  pid="$(cat "$home/run/$1.pid")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || port_busy "$2" || break; sleep 0.25; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$home/run/$1.pid"
  say "stopped $1"
}

down() {
  if ! pid_alive postgres && ! pid_alive azurite && ! pid_alive mlflow; then
    say "not running (nothing to stop in $home)"
    return 0
  fi
  stop_group mlflow "$port"
  stop_group azurite "$blob_port"
  if pid_alive postgres; then
    as_pg "$(pg_bin)/pg_ctl" -D "$home/pgdata" -m fast -w stop >/dev/null
    rm -f "$home/run/postgres.pid"
    say "stopped postgres"
  fi
}

status() {
  component_state postgres "$pg_port"
  component_state azurite "$blob_port"
  component_state mlflow "$port"
  if all_running; then print_exports; else return 3; fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: bash scripts/tracking_server.sh up|down|status" >&2; exit 2 ;;
esac
