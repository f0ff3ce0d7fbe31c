#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest.
#
# Optional real services: REDIS_URL, AMQP_URL (the worker test then also runs against each
# broker) and DATABASE_URL (the suite then runs on that database, e.g. PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export SCOREBRIDGE_VAR_DIR=${SCOREBRIDGE_VAR_DIR:-$PWD/var/test}
# axe-core for the accessibility checks of the browser tests: an npm package, pinned.
if [ ! -f var/node/node_modules/axe-core/axe.min.js ]; then
  if command -v npm >/dev/null; then
    npm install --silent --no-audit --no-fund --prefix var/node axe-core@4.10.0 >/dev/null
  else
    echo "test.sh: npm not found (apt-get install npm): the accessibility checks will fail" >&2
  fi
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m ruff format --check .
# the packages pyproject.toml's [tool.mypy] names: ml_core, queueing, workers and lti
.venv/bin/python -m mypy
.venv/bin/python scripts/settings_table.py --check
exec .venv/bin/python -m pytest "$@"
