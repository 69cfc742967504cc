#!/usr/bin/env bash
# Installs what the demo and the tests need, when it is missing. Idempotent.
# Debian packages need root; Python packages go into a venv; npm into tests/node.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v ip >/dev/null || need_apt+=(iproute2)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v promtool >/dev/null || need_apt+=(prometheus)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v dockerd >/dev/null || need_apt+=(docker.io)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
command -v debootstrap >/dev/null || need_apt+=(debootstrap)
command -v gcc >/dev/null || need_apt+=(gcc libc6-dev)   # the libpython launcher of py314-root.sh
command -v socat >/dev/null || need_apt+=(socat)   # the benchmark's baseline relay
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: please install: ${need_apt[*]} (e.g. sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

# A Docker engine for the container test (started here when it is not running).
if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (dockerd >/tmp/dap-sidecar-dockerd.log 2>&1 &)
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { echo "setup: dockerd did not start, see /tmp/dap-sidecar-dockerd.log" >&2; exit 1; }
  else
    echo "setup: start the Docker engine (the container test needs it)" >&2
    exit 1
  fi
fi

# The venv with the pinned debugpy that the demo uses (the tests make their own in target/).
if [ ! -x .venv/bin/python ] || ! cmp -s tests/requirements.txt .venv/.installed; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt .venv/.installed
fi

# The Debian sid root with python3.14 and the debugpy cp314 wheel for the attach-on-demand
# tests (tests/inject*.rs), cached under /var/cache/dap-sidecar (root only: debootstrap).
if [ "$(id -u)" = 0 ]; then
  bash scripts/py314-root.sh
fi

if [ -f tests/node/package.json ] && [ ! -d tests/node/node_modules ]; then
  (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
fi
