#!/usr/bin/env bash
# Create the separate virtualenv MLServer runs from: its pins must never touch MLBuffet's.
#   bash bench/peers/mlserver_venv.sh [DIR]      (default: .bench-mlserver-venv)
#   python -m bench --mlserver-python DIR/bin/python
set -euo pipefail
dir="${1:-.bench-mlserver-venv}"
python3 -m venv "$dir"
# uvloop 0.22+ breaks MLServer 1.7.1's inference workers (asyncio.get_event_loop() raises there).
"$dir/bin/pip" install --quiet "mlserver==1.7.1" "uvloop<0.22" onnxruntime
"$dir/bin/python" -c 'import mlserver, onnxruntime; print("mlserver", mlserver.__version__, "in", "'"$dir"'")'
