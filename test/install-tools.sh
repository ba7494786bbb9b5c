#!/usr/bin/env bash
# The external tools the test suite needs, installed when missing:
#   promtool (Debian package `prometheus`)  -> test/prometheus.test.ts: `promtool check metrics`
#   numpy + safetensors for the python3 on the PATH (PyPI) -> test/tensor-file.test.ts
#   redis-server (Debian package `redis-server`) -> test/queue.test.ts starts its own, on a free
#     loopback port (the package's own service is not needed: without systemd it is not started)
#   onnx (PyPI) -> test/onnx.test.ts builds its small ONNX model with it (test/fixtures/byt5_embed.py)
# Without its tool, each of those tests fails and names `npm run test:tools` (this script). apt-get runs as root, or through
# sudo for another user; pip installs for the current user unless run as root.
set -euo pipefail

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then
    as_root apt-get update
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@"
}

if ! command -v promtool >/dev/null 2>&1; then
  apt_install prometheus
fi
promtool --version | head -1

if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
redis-server --version

if ! python3 -c 'import numpy, safetensors.numpy, onnx' >/dev/null 2>&1; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  user=(--user)
  [ "$(id -u)" = 0 ] && user=()
  # PIP_BREAK_SYSTEM_PACKAGES: Debian's python3 refuses pip installs without it (PEP 668).
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install "${user[@]}" --quiet --disable-pip-version-check \
    'numpy>=1.24,<3' 'safetensors>=0.4,<1' 'onnx>=1.15,<2'
fi
python3 -c 'import sys, numpy, safetensors, onnx; print(sys.executable, "numpy", numpy.__version__, "safetensors", safetensors.__version__, "onnx", onnx.__version__)'
