#!/bin/sh
# Offline peer comparison with nv-local-gpu-verifier (see compare.py). Needs root (unshare -n),
# libfaketime (`apt-get install faketime`) and, once, network for the venv.
# Env: TARGET (cargo target dir, default target), VENV (default $TARGET/venv), RUNS (default 15).
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
TARGET=${TARGET:-$ROOT/target}
VENV=${VENV:-$TARGET/venv}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q nv-local-gpu-verifier==2.7.3
fi
(cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -q -p gpu-attest --example verify_gpu)
exec unshare -n "$VENV/bin/python" "$ROOT/gpu-attest/benches/peer/compare.py" \
  "$TARGET/release/examples/verify_gpu" "$VENV/bin/python" "${RUNS:-15}"
