#!/usr/bin/env bash
# Create or reuse the project's virtual environment at .venv/ and install HAI
# with its test tools, at the exact versions of constraints.txt (pyproject.toml
# holds only ranges). Idempotent; safe to run before every command; installs
# again when pyproject.toml or constraints.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "HAI needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }

# Debian packages the project uses: DejaVu fonts render the text lines of the
# quantization bench and tests (Pillow's built-in font is the fallback); the
# aarch64 cross compiler and qemu-user build and run arm64 artifacts here (the
# arm64 Python they run in is scripts/arm64_env.sh's, built on first use); PoCL's OpenCL ICD runs
# `--target opencl` artifacts on the CPU (tests/opencl/).
DEB_PACKAGES=(fonts-dejavu-core gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user pocl-opencl-icd ocl-icd-opencl-dev)
missing=()
for pkg in "${DEB_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${missing[@]}"
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.hai-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -c constraints.txt -e '.[test,bench,opencl,power]'
  touch "$stamp"
fi
