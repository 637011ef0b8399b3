#!/usr/bin/env bash
# Build the serving image from the repository's Dockerfile and smoke-test it, on a machine where
# Docker Hub cannot be reached (docs/design.md, "Offline assets"):
#   1. docker.io (dockerd) and debootstrap are installed with apt-get if missing; dockerd is
#      started if none runs (and stopped again at the end if this script started it)
#   2. a local base image: Debian bookworm (its python3 is 3.11) by debootstrap, `docker import`ed
#      (built once, then reused; BASE_IMAGE=python:3.11-slim-bookworm skips it where Hub is reachable)
#   3. the model staged into build/model (`mlflow artifacts download`, or copied from a local directory)
#   4. `docker build` with the host's CA bundle as build argument, `docker run`, the smoke test of
#      /invocations (scripts/smoke_test.py), the image size, `docker stop`
#   5. telemetry: the container's connection string points at the repository's local capture server
#      (harness/appinsights_capture.py, on the Docker bridge's host address), and the
#      script fails unless request items for POST /invocations and metric items arrive there
#
#   bash scripts/build_image.sh [MODEL_URI_OR_DIR]          (default models:/tweet-sentiment@champion)
#
# Environment: MLFLOW_TRACKING_URI (the store holding the model; default sqlite:///mlflow.db),
# IMAGE (tweet-sentiment:local), BASE_IMAGE, CA_BUNDLE (/etc/ssl/certs/ca-certificates.crt),
# DEBIAN_MIRROR (http://deb.debian.org/debian), TORCH_WHEEL (a torch CPU wheel to use where
# download.pytorch.org is unreachable; default: the one in pip's find-links folder, if any), PORT (host port, 8080), SMOKE_ARGS (extra smoke-test
# flags, e.g. --no-label-check for a toy model), KEEP_RUNNING=1 (leave the container up).
set -euo pipefail
cd "$(dirname "$0")/.."

model="${1:-models:/tweet-sentiment@champion}"
image="${IMAGE:-tweet-sentiment:local}"
base_image="${BASE_IMAGE:-tweet-sentiment-base:bookworm}"
ca_bundle="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
port="${PORT:-8080}"
container="tweet-sentiment-smoke-$$"
capture_pid=""
capture_record="$(mktemp /tmp/appinsights-capture.XXXXXX.jsonl)"
export MLFLOW_TRACKING_URI="${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db}"
python="$(command -v python3)"
[ -x .venv/bin/python ] && python=.venv/bin/python
[ -n "${VIRTUAL_ENV:-}" ] && python="$VIRTUAL_ENV/bin/python"
sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
started_dockerd=""

step() { printf '\n==> %s\n' "$*"; }

cleanup() {
  [ -n "$capture_pid" ] && kill "$capture_pid" 2>/dev/null || true
  if docker inspect "$container" >/dev/null 2>&1 && [ -z "${KEEP_RUNNING:-}" ]; then
    docker rm -f "$container" >/dev/null 2>&1 || true
  fi
  if [ -n "$started_dockerd" ] && [ -z "${KEEP_RUNNING:-}" ]; then
    echo "==> stopping the dockerd this script started (pid $started_dockerd)"
    "${sudo_cmd[@]}" kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
}
trap cleanup EXIT

install_missing() {
  local missing=()
  command -v dockerd >/dev/null || missing+=(docker.io)
  if [ "$base_image" = "tweet-sentiment-base:bookworm" ]; then command -v debootstrap >/dev/null || missing+=(debootstrap); fi
  if [ ${#missing[@]} -gt 0 ]; then
    step "installing ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
}

ensure_dockerd() {
  docker info >/dev/null 2>&1 && return
  step "starting dockerd (none runs)"
  local log; log="$(mktemp /tmp/dockerd.XXXXXX.log)"
  "${sudo_cmd[@]}" dockerd >"$log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && { echo "dockerd ready (log: $log)"; return; }
    sleep 1
  done
  tail -20 "$log"; echo "dockerd did not start" >&2; exit 1
}

ensure_base_image() {
  docker image inspect "$base_image" >/dev/null 2>&1 && { echo "base image $base_image present"; return; }
  if [ "$base_image" != "tweet-sentiment-base:bookworm" ]; then
    step "pulling $base_image"; docker pull "$base_image"; return
  fi
  step "building $base_image with debootstrap from $mirror (Docker Hub is unreachable)"
  local root; root="$(mktemp -d /tmp/rootfs.XXXXXX)"
  "${sudo_cmd[@]}" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$root" "$mirror" >/tmp/debootstrap.log 2>&1 || { tail -20 /tmp/debootstrap.log; exit 1; }
  "${sudo_cmd[@]}" rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/*
  "${sudo_cmd[@]}" tar -C "$root" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$base_image"
  "${sudo_cmd[@]}" rm -rf "$root"
  docker run --rm "$base_image" python3 --version
}

stage_model() {
  rm -rf build/model && mkdir -p build
  if [ -f "$model/MLmodel" ]; then
    step "staging the model directory $model"
    cp -r "$model" build/model
  else
    step "downloading $model from $MLFLOW_TRACKING_URI"
    "$python" -m mlflow artifacts download -u "$model" -d build/model >/dev/null
    # A runs:/<id>/<path> URI lands one folder down (build/model/<path>/MLmodel): lift it up.
    local nested; nested="$(find build/model -mindepth 2 -maxdepth 2 -name MLmodel -printf '%h\n' | head -1)"
    if [ ! -f build/model/MLmodel ] && [ -n "$nested" ]; then
      mv "$nested" build/model-staged && rm -rf build/model && mv build/model-staged build/model
    fi
  fi
  [ -f build/model/MLmodel ] || { echo "no MLmodel in build/model: is $model an MLflow model?" >&2; exit 1; }
  echo "model requirements: $(tr '\n' ' ' < build/model/requirements.txt)"
  cp "$ca_bundle" build/ca-bundle.pem
  rm -rf build/wheels && mkdir -p build/wheels
  local wheel="${TORCH_WHEEL:-}"
  if [ -z "$wheel" ] && grep -qiE '^torch([=<>~ ]|$)' build/model/requirements.txt; then
    local links; links="$("$python" -m pip config get global.find-links 2>/dev/null || true)"
    wheel="$(ls "${links:-/nonexistent}"/torch-*+cpu*.whl 2>/dev/null | head -1 || true)"
  fi
  if [ -n "$wheel" ]; then echo "torch wheel: $wheel"; cp "$wheel" build/wheels/; fi
}

build() {
  step "docker build -t $image (base $base_image)"
  # The legacy builder where the buildx plugin is missing (Debian's docker.io); BuildKit elsewhere.
  docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
  local started=$SECONDS
  docker build --network host -t "$image" \
    --build-arg BASE_IMAGE="$base_image" \
    --build-arg CA_BUNDLE=build/ca-bundle.pem \
    --build-arg MODEL_DIR=build/model \
    --build-arg WHEELS_DIR=build/wheels . 2>&1 \
    | grep --line-buffered -vE '^ *(---> |Removing intermediate|Downloading|Collecting|Using cached|━|Requirement already)'
  echo "built in $((SECONDS - started)) s"
}

start_capture() {
  # The container reaches the host at the bridge's gateway address; nothing listens beyond that network.
  local gateway capture_port
  gateway="$(docker network inspect bridge -f '{{(index .IPAM.Config 0).Gateway}}')"
  capture_port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])')"
  step "local Application Insights capture on $gateway:$capture_port"
  "$python" -m harness.appinsights_capture --host "$gateway" --port "$capture_port" \
    --record "$capture_record" &
  capture_pid=$!
  # A connection string is no secret here (a dummy key, a local endpoint), but it goes in by environment
  # as it would in App Service, never as a command-line value.
  export APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://$gateway:$capture_port/;LiveEndpoint=http://$gateway:$capture_port/"
}

check_telemetry() {
  step "telemetry from the container"
  "$python" - "$capture_record" <<'PY'
import json, sys, time
from collections import Counter

deadline = time.monotonic() + 60
while True:
    with open(sys.argv[1]) as record:
        envelopes = [json.loads(line) for line in record if line.strip()]
    types = Counter(e.get("data", {}).get("baseType") for e in envelopes)
    requests = [e for e in envelopes if e.get("data", {}).get("baseType") == "RequestData"
                and e["data"]["baseData"].get("name") == "POST /invocations"]
    if (requests and types["MetricData"]) or time.monotonic() > deadline:
        break
    time.sleep(1)
print("items received: " + ", ".join(f"{name} {count}" for name, count in sorted(types.items(), key=str)))
if not requests or not types["MetricData"]:
    sys.exit("no request items for POST /invocations or no metric items within 60 s: telemetry is off in the image")
roles = {e.get("tags", {}).get("ai.cloud.role") for e in requests}
print(f"POST /invocations request items: {len(requests)}, cloud role: {', '.join(map(str, roles))}")
PY
}

# The image's front door is MLflow's server with the model's request guard (docs/design.md, "Serving
# limits"): a 50 MB body gets a 413 naming MAX_REQUEST_BYTES before it is parsed, and the next request
# is answered as usual.
check_front_door() {
  step "front door: a 50 MB body"
  local answer
  answer="$(head -c 50000000 /dev/zero | tr '\0' 'x' | sed 's/^/{"inputs": {"text": ["/; s/$/"]}}/' |
    curl -s -o /dev/stderr -w '%{http_code} in %{time_total} s' "http://127.0.0.1:$port/invocations" \
      -H 'Content-Type: application/json' --data-binary @- 2>&1)"
  echo "$answer"
  case "$answer" in
    *MAX_REQUEST_BYTES*"413 in"*) ;;
    *) echo "a 50 MB body was not refused with a 413 naming MAX_REQUEST_BYTES" >&2; exit 1 ;;
  esac
  "$python" scripts/smoke_test.py "http://127.0.0.1:$port" ${SMOKE_ARGS:-} >/dev/null
  echo "the next request was answered as usual"
}

smoke() {
  start_capture
  step "docker run $image on 127.0.0.1:$port"
  docker run -d --name "$container" -p "127.0.0.1:$port:8080" -e APPLICATIONINSIGHTS_CONNECTION_STRING \
    -e APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL=true -e APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED=true \
    -e OTEL_METRIC_EXPORT_INTERVAL=2000 -e OTEL_BSP_SCHEDULE_DELAY=200 "$image" >/dev/null
  for _ in $(seq 180); do
    curl -fs "http://127.0.0.1:$port/ping" >/dev/null 2>&1 && break
    if [ "$(docker inspect -f '{{.State.Running}}' "$container")" != true ]; then
      docker logs "$container" | tail -30; echo "the container exited" >&2; exit 1
    fi
    sleep 1
  done
  docker logs "$container" 2>&1 | grep -E 'serve-model|Uvicorn running|Started server' || true
  echo "user inside the container: $(docker exec "$container" id)"
  step "smoke test of /invocations"
  "$python" scripts/smoke_test.py "http://127.0.0.1:$port" ${SMOKE_ARGS:-}
  echo "curl: $(curl -s "http://127.0.0.1:$port/invocations" -H 'Content-Type: application/json' \
    -d '{"inputs": {"text": ["@united worst airline ever, lost my bag"]}}')"
  check_front_door
  printf 'waiting for the HEALTHCHECK: '
  for _ in $(seq 90); do
    health="$(docker inspect -f '{{.State.Health.Status}}' "$container")"
    [ "$health" = starting ] || break
    sleep 2
  done
  echo "$health"
  [ "$health" = healthy ] || { echo "HEALTHCHECK says $health" >&2; exit 1; }
  check_telemetry
}

report() {
  step "image"
  docker image ls "$image" --format 'table {{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}'
  local bytes; bytes="$(docker image inspect -f '{{.Size}}' "$image")"
  echo "image size: $((bytes / 1000000)) MB ($bytes bytes)"
  if [ -z "${KEEP_RUNNING:-}" ]; then
    local started=$SECONDS
    docker stop "$container" >/dev/null && docker rm "$container" >/dev/null
    echo "container stopped in $((SECONDS - started)) s and removed"
  else
    echo "container $container left running on 127.0.0.1:$port (KEEP_RUNNING=1)"
  fi
}

install_missing
ensure_dockerd
ensure_base_image
stage_model
build
smoke
report
