#!/usr/bin/env bash
# The whole test suite: lint, types, then pytest (fast tier by default).
# Pass pytest arguments through, e.g. `scripts/test.sh -m slow` for real models
# and the full ONNX conformance suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export HAI_CACHE_DIR=${HAI_CACHE_DIR:-$HOME/.cache/hai}
.venv/bin/ruff check .
.venv/bin/mypy ir runtime
.venv/bin/python -m pytest -n 2 -q "$@"
