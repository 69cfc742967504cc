#!/usr/bin/env bash
# Prepares what the attach-on-demand tests (tests/inject.rs) need, cached between runs:
# - a Debian sid root with python3.14 (debootstrap, ~40 s the first time), where the test
#   apps run chrooted with /proc mounted inside: the sidecar on the host then sees them
#   through /proc/<pid>/root like a container sharing its PID namespace;
#   with `python3.14-shared` next to it: a two-line launcher (Py_BytesMain) linked against
#   Debian's libpython3.14.so, built on the host, for an interpreter in a shared library
#   (as in the official python:3.14 images) rather than in the executable;
# - the debugpy cp314 wheel, downloaded on the host and unpacked (what the sidecar brings).
# Prints nothing on success; the paths are fixed (below) and read by the tests.
# Needs root (debootstrap, chroot) and network access to the Debian and PyPI mirrors.
# Set DAP_SIDECAR_PY314_CACHE to move the cache; delete it to rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."

cache=${DAP_SIDECAR_PY314_CACHE:-/var/cache/dap-sidecar}
# The key: change it when the packages or the layout below change.
key=sid-minbase-python3.14-v1
root="$cache/$key"
debugpy_version=1.8.22
wheels="$cache/debugpy-$debugpy_version-cp314"

if [ "$(id -u)" != 0 ]; then
  echo "py314-root: needs root (debootstrap, chroot)" >&2
  exit 1
fi
mkdir -p "$cache"

if [ ! -f "$root/.complete" ]; then
  rm -rf "$root.partial"
  debootstrap --variant=minbase --include=python3.14 sid "$root.partial" \
    >"$cache/$key.log" 2>&1 || {
    echo "py314-root: debootstrap failed, see $cache/$key.log" >&2
    exit 1
  }
  chroot "$root.partial" python3.14 -c 'import sys; print(sys.version)' >"$root.partial/.complete"
  rm -rf "$root"
  mv "$root.partial" "$root"
fi

# The interpreter in libpython (a step of its own, so an existing root is kept).
if [ ! -f "$root/.libpython-complete" ]; then
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  # Debian's mirror may serve a Release file older than this machine's clock says is valid.
  chroot "$root" sh -c 'apt-get -o Acquire::Check-Valid-Until=false update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Check-Valid-Until=false install -y -qq \
      --no-install-recommends libpython3.14-dev >/dev/null && apt-get clean' \
    >>"$cache/$key.log" 2>&1 || {
    echo "py314-root: installing libpython3.14-dev failed, see $cache/$key.log" >&2
    exit 1
  }
  src=$(mktemp -d)
  printf '#include <Python.h>\nint main(int argc, char **argv) { return Py_BytesMain(argc, argv); }\n' >"$src/main.c"
  # Sid's headers after the host's (the host's libc headers win); libpython's own
  # libc symbols are resolved in the root, where it runs.
  gcc -I"$root/usr/include/python3.14" -idirafter "$root/usr/include" "$src/main.c" \
    -L"$root/usr/lib/x86_64-linux-gnu" -Wl,--allow-shlib-undefined -lpython3.14 \
    -o "$root/usr/local/bin/python3.14-shared"
  rm -rf "$src"
  chroot "$root" /usr/local/bin/python3.14-shared -c 'import sys; print(sys.version)' >"$root/.libpython-complete"
fi

if [ ! -f "$wheels/.complete" ]; then
  rm -rf "$wheels.partial"
  mkdir -p "$wheels.partial/wheel" "$wheels.partial/site"
  pip=(python3 -m pip)
  [ -x .venv/bin/pip ] && pip=(.venv/bin/pip)
  "${pip[@]}" download --quiet --disable-pip-version-check "debugpy==$debugpy_version" \
    --python-version 3.14 --only-binary=:all: --platform manylinux_2_34_x86_64 \
    -d "$wheels.partial/wheel"
  python3 -m zipfile -e "$wheels.partial/wheel"/debugpy-*.whl "$wheels.partial/site"
  touch "$wheels.partial/.complete"
  rm -rf "$wheels"
  mv "$wheels.partial" "$wheels"
fi
