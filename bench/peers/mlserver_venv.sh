#!/usr/bin/env bash
# Create the separate virtualenv MLServer runs from: its pins must never touch MLBuffet's.
#   bash bench/peers/mlserver_venv.sh [DIR]      (default: .bench-mlserver-venv)
#   python -m bench --mlserver-python DIR/bin/python
set -euo pipefail
dir="${1:-.bench-mlserver-venv}"
python3 -m venv "$dir"
"$dir/bin/pip" install --quiet "mlserver==1.7.1" onnxruntime
"$dir/bin/python" -c 'import mlserver, onnxruntime; print("mlserver", mlserver.__version__, "in", "'"$dir"'")'
