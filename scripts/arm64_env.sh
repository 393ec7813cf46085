#!/usr/bin/env bash
# Build once, into $HAI_CACHE_DIR/arm64-python, the arm64 Python that runs HAI's runtime under
# qemu-user (hai_compiler/arm64_env.py says how, without touching the host's Python).
# With no arguments, prints the command prefix that runs it; otherwise runs it, e.g.
#   bash scripts/arm64_env.sh --cpu cortex-a53 -c 'from runtime.cpu_features import host_cpu; print(host_cpu().features)'
set -euo pipefail
cd "$(dirname "$0")/.."
export HAI_CACHE_DIR=${HAI_CACHE_DIR:-$HOME/.cache/hai}
exec .venv/bin/python -m hai_compiler.arm64_env "$@"
