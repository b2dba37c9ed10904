#!/usr/bin/env bash
# Install lawful and its dependencies. torch is pinned first to the CPU wheel: an open-ended
# torch requirement on a machine without torch can pull a multi-GB CUDA build.
# On a GPU machine, install the torch build for your CUDA first; this script keeps it.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! python -c "import torch" >/dev/null 2>&1; then
    python -m pip install --quiet "torch==2.13.0"
fi
python -m pip install --quiet -e ".[test,neuralop]"
