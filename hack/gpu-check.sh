#!/usr/bin/env bash
# gpu-check: build headroom-agent with cgo and run it once on this machine's GPUs.
# Prints what NVML reports (GPU count, product, memory, MIG, health), the report
# the agent would write, and a metrics scrape. Exits non-zero, loudly, when there
# is no NVIDIA driver, no NVML, or no GPU: it must never pass on a machine without one.
set -euo pipefail

GO=${GO:-go}
BIN=${BIN:-bin}
cd "$(dirname "$0")/.."

fail() { echo "gpu-check: FAIL: $*" >&2; exit 1; }

command -v gcc >/dev/null || fail "gcc not found: headroom-agent needs cgo to load libnvidia-ml"
mkdir -p "$BIN"
echo "gpu-check: building headroom-agent (cgo)"
CGO_ENABLED=1 "$GO" build -o "$BIN/headroom-agent" ./cmd/headroom-agent

ls /dev/nvidia* >/dev/null 2>&1 || fail "no /dev/nvidia* device files: no NVIDIA GPU or driver on this machine"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi -L || true
fi

set +e
"$BIN/headroom-agent" --once --node-name "${NODE_NAME:-$(hostname)}" ${GPU_CHECK_FLAGS:-}
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
  fail "headroom-agent --once exited $rc (no NVML or no GPU; see the lines above)"
fi
echo "gpu-check: OK"
