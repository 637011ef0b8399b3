#!/usr/bin/env bash
# Install the project into .venv with the pinned dependency set.
#   bash scripts/install.sh        the main job's dependencies
#   bash scripts/install.sh server plus the shared tracking server (scripts/tracking_server.sh): the
#                                  PostgreSQL server (Debian), Azurite (npm, pinned by deploy/tracking)
#   bash scripts/install.sh test   all of it, plus the test extras (TensorFlow backend, Spark,
#                                  Playwright, ruff) and Chromium and a Java runtime.
# torch is installed first and pinned to the CPU build (2.13.0): an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-main}"
python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), f"Python 3.11 required, found {sys.version.split()[0]}"'

[ -x .venv/bin/python ] || "$python" -m venv .venv
# PyPI's Linux torch wheels carry CUDA. This project's machines hold the CPU build locally; elsewhere
# set TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu to get the CPU build from PyTorch's index.
torch_source=(); [ -z "${TORCH_INDEX_URL:-}" ] || torch_source=(--index-url "$TORCH_INDEX_URL")
echo "==> installing torch==2.13.0 (CPU build)"
.venv/bin/pip install --quiet --disable-pip-version-check "${torch_source[@]}" torch==2.13.0
case "$profile" in
  main) extras="" ;;
  server | test) extras="[$profile]" ;;
  *) echo "install.sh: unknown profile '$profile' (main, server or test)" >&2; exit 2 ;;
esac
echo "==> installing the project${extras:+ with its $profile extras} (pinned by requirements.lock)"
.venv/bin/pip install --quiet --disable-pip-version-check -c requirements.lock -e ".$extras"
missing=()
if [ "$profile" != main ]; then
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
  command -v npm >/dev/null || missing+=(npm)
fi
if [ "$profile" = test ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v java >/dev/null || missing+=(default-jre-headless)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing system packages: ${missing[*]}"
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ "$profile" != main ]; then
  echo "==> installing Azurite (pinned by deploy/tracking/package-lock.json)"
  npm ci --prefix deploy/tracking --no-audit --no-fund --silent
fi
echo "==> installed into .venv"
