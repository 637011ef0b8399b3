# The serving image for CD: MLflow's own scoring server (`mlflow models serve`) on one model.
#
# `mlflow models build-docker -m models:/tweet-sentiment@champion -n tweet-sentiment` is the MLflow way
# to build a serving image (docs/serving.md). This file builds the same server with what CD needs:
# a slim base, a non-root user, a health check on /ping, an explicit port, the model baked in at build
# time or pulled from the registry at start, and the CA bundle pip must trust as a build argument.
#
#   model baked in (what cd.yml and scripts/build_image.sh do):
#     mlflow artifacts download -u models:/tweet-sentiment@champion -d build/model
#     docker build -t tweet-sentiment --build-arg MODEL_DIR=build/model .
#   model pulled from the registry when the container starts:
#     docker build -t tweet-sentiment .
#     docker run -p 8080:8080 -e MLFLOW_TRACKING_URI=https://mlflow.example.com \
#       -e MODEL_URI=models:/tweet-sentiment@champion tweet-sentiment
#
# Paths given as build arguments are relative to the build context (the repository root); .dockerignore
# only lets Dockerfile, requirements.lock, docker/, build/model/, build/ca-bundle.pem and build/wheels/ into
# the context (the deploy guide keeps secrets under build/ too).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}

# A PEM bundle pip must trust in addition to the base image's (a corporate proxy's, or the host's
# where TLS is intercepted). The default file is empty.
ARG CA_BUNDLE=docker/no-extra-ca.pem
# An MLflow model directory to bake in; the default placeholder means "pull MODEL_URI at start".
ARG MODEL_DIR=docker/no-model
# torch's CPU build: PyPI's default Linux wheel pulls several GB of CUDA libraries. A torch wheel in
# WHEELS_DIR (a folder in the build context) is used instead of the index where it cannot be reached.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG WHEELS_DIR=docker/no-wheels
ARG TORCH_VERSION=2.13.0
ARG UID=10001
# PID 1 that forwards `docker stop`'s SIGTERM to the server and reaps its children (Azure App
# Service cannot pass `docker run --init`); from PyPI, so no apt inside the build.
ARG DUMB_INIT_VERSION=1.2.5.post1

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HF_HUB_OFFLINE=1 \
    PORT=8080 \
    WORKERS=1 \
    MAX_ROWS_PER_REQUEST=2000 \
    MAX_REQUEST_BYTES=10485760 \
    MODEL_URI=""

# The baked model's own requirements.txt (what it was logged with), else every model family's
# serving packages; versions pinned by requirements.lock either way. azure-monitor-opentelemetry is
# installed whatever the model lists: a model logged without it would otherwise serve with telemetry
# silently off (docs/monitoring.md). Copied before the model itself,
# so a new model with the same requirements reuses this layer.
COPY requirements.lock docker/serving-requirements.txt ${MODEL_DIR}/requirements.tx[t] /tmp/build/
COPY ${CA_BUNDLE} /tmp/build/extra-ca.pem
COPY ${WHEELS_DIR} /tmp/build/wheels/
RUN set -eu; \
    { cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true; cat /tmp/build/extra-ca.pem; } > /tmp/build/ca.pem; \
    export PIP_CERT=/tmp/build/ca.pem; \
    requirements=/tmp/build/serving-requirements.txt; \
    if [ -f /tmp/build/requirements.txt ]; then requirements=/tmp/build/requirements.txt; fi; \
    python3 -m venv /opt/venv; \
    if grep -qiE '^torch([=<>~ ]|$)' "$requirements"; then \
        if ls /tmp/build/wheels/torch-"$TORCH_VERSION"*.whl >/dev/null 2>&1; then \
            pip install -c /tmp/build/requirements.lock /tmp/build/wheels/torch-"$TORCH_VERSION"*.whl; \
        else \
            pip install --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"; \
        fi; \
    fi; \
    pip install -c /tmp/build/requirements.lock -r "$requirements" "dumb-init==$DUMB_INIT_VERSION" \
        azure-monitor-opentelemetry; \
    rm -rf /tmp/build /root/.cache

RUN useradd --uid "$UID" --create-home --home-dir /home/app --shell /usr/sbin/nologin app
# Owned by the server's user: save_pretrained writes weights as 0600, unreadable to anyone else.
COPY --chown=app:app ${MODEL_DIR} /opt/model/

COPY docker/serve.sh /usr/local/bin/serve-model
USER app
WORKDIR /home/app
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=180s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/ping', timeout=4)"
ENTRYPOINT ["/opt/venv/bin/dumb-init", "--", "/usr/local/bin/serve-model"]
