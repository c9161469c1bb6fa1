#!/usr/bin/env bash
# Issue 40: the whole recipe on a card in one prepared run; each step under its own timeout, one JSON at the end
# (OUT/recipe.json; on a card copy it to docs/gpu-results/<card>-recipe.json). Usage:
#   bash benchmarks/gpu_recipe.sh OUT               # on the GPU machine, from the repository root
#   bash benchmarks/gpu_recipe.sh OUT --cpu-smoke   # the same steps at toy sizes here (the slow test runs this)
set -u
OUT=${1:?usage: gpu_recipe.sh OUT [--cpu-smoke]}
shift
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-$(command -v python3)}
[ -x .venv/bin/python ] && [ -z "${MASKCLS_DEVICE_IMAGE:-}" ] && PYTHON=.venv/bin/python
exec "$PYTHON" benchmarks/gpu_recipe.py "$OUT" "$@"
