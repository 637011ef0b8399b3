#!/bin/sh
# Container entry point: MLflow's scoring server on the baked-in model, or on MODEL_URI pulled from
# the registry at MLFLOW_TRACKING_URI when no model was baked in. Runs under dumb-init (the image's
# PID 1), which passes `docker stop`'s SIGTERM on to mlflow and its uvicorn worker.
set -eu
if [ -f /opt/model/MLmodel ]; then
    model=/opt/model
elif [ -n "${MODEL_URI:-}" ]; then
    if [ -z "${MLFLOW_TRACKING_URI:-}" ]; then
        echo "serve-model: MODEL_URI=$MODEL_URI needs MLFLOW_TRACKING_URI (the registry to pull it from)" >&2
        exit 2
    fi
    model="$MODEL_URI"
else
    echo "serve-model: no model baked in (docker build --build-arg MODEL_DIR=...) and no MODEL_URI set" >&2
    exit 2
fi
echo "serve-model: serving $model on 0.0.0.0:$PORT with $WORKERS worker(s)"
exec mlflow models serve -m "$model" --env-manager local -h 0.0.0.0 -p "$PORT" -w "$WORKERS"
