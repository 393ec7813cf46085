#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest over both tiers (the fast one
# and the `slow` one: all real models, the full ONNX conformance suite).
# Arguments replace the tier selection, e.g. `scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export HAI_CACHE_DIR=${HAI_CACHE_DIR:-$HOME/.cache/hai}
.venv/bin/ruff check .
.venv/bin/mypy ir runtime
if [ $# -eq 0 ]; then
  set -- -m "slow or not slow"
fi
.venv/bin/python -m pytest -n 2 -q "$@"
