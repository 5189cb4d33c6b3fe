#!/usr/bin/env bash
# One-time setup: a virtual environment with the CPU build of torch and every offline default.
# Usage: bash setup.sh [VENV_DIR]   (default .venv)
set -euo pipefail
cd "$(dirname "$0")"
VENV="${1:-.venv}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP="$VENV/bin/python -m pip"
$PIP install -q --upgrade pip
# torch first and pinned: a later unpinned resolve would otherwise pull CUDA wheels.
$PIP install -q torch==2.13.0
$PIP install -q -e ".[dev]"
$PIP install -q --no-deps -r requirements-nodeps.txt
for tool in ffmpeg espeak-ng sox; do
  command -v "$tool" >/dev/null || echo "note: '$tool' is not installed (Debian: apt-get install ffmpeg espeak-ng sox flite festival festvox-kdlpc16k)" >&2
done
echo "acoustemo is installed in $VENV (activate with: source $VENV/bin/activate)"
