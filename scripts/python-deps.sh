#!/usr/bin/env bash
# Installs the Python packages the model-import tests train with (LightGBM,
# XGBoost, numpy, pandas), the Parquet export tests read with (pyarrow) and
# the decision API's fuzz test runs (schemathesis, against config/openapi.yaml),
# into a virtualenv under .tools/python, and prints its interpreter's path.
# Idempotent: a second run only checks.
#   scripts/python-deps.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.tools/python
python=${PYTHON:-python3}
# Versions pinned so that CI trains the same models every run.
packages=(numpy==2.4.6 scipy==1.17.1 pandas==3.1.1 lightgbm==4.7.0 xgboost-cpu==3.2.0 pyarrow==26.0.1 schemathesis==4.32.5)
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv" >&2
fi
if ! "$venv/bin/python" -c 'import lightgbm, xgboost, numpy, pandas, pyarrow, schemathesis' 2>/dev/null; then
  "$venv/bin/python" -m pip install --quiet "${packages[@]}" >&2
fi
echo "$PWD/$venv/bin/python"
