#!/usr/bin/env bash
# Builds the local base images the container test uses instead of pulling from registries
# (no registry is reachable here): a minimal Debian (debootstrap), Debian's Python 3.11,
# a Rust builder holding this machine's toolchain, and Prometheus from Debian's binary.
# Idempotent: an image that exists is kept. Needs root, debootstrap and a running dockerd.
set -euo pipefail
cache=${DOCKER_ROOTFS_CACHE:-$(cd "$(dirname "$0")/../.." && pwd)/target/docker-rootfs}
mkdir -p "$cache"
have() { docker image inspect "$1" >/dev/null 2>&1; }
import() { # rootfs image [docker import --change ...]
  local rootfs=$1 image=$2; shift 2
  tar -C "$rootfs" -c . | docker import "$@" - "$image" >/dev/null
}
chroot_apt() { # rootfs packages...
  local rootfs=$1; shift
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"
  chroot "$rootfs" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $* >/dev/null 2>&1; apt-get clean; rm -rf /var/lib/apt/lists/*"
}
images=(local/debian:bookworm local/python:bookworm local/rust-builder:latest local/prometheus:latest)
missing=0
for image in "${images[@]}"; do have "$image" || missing=1; done
[ "$missing" = 1 ] || exit 0
base="$cache/bookworm"
if [ ! -x "$base/bin/sh" ]; then
  rm -rf "$base"
  debootstrap --variant=minbase bookworm "$base" http://deb.debian.org/debian >/dev/null
fi
have local/debian:bookworm || import "$base" local/debian:bookworm
if ! have local/python:bookworm; then
  rm -rf "$cache/python" && cp -a "$base" "$cache/python"
  chroot_apt "$cache/python" python3 python3-venv
  import "$cache/python" local/python:bookworm
fi
if ! have local/rust-builder:latest; then
  toolchain=$(dirname "$(dirname "$(rustup which rustc)")")
  rm -rf "$cache/builder" && cp -a "$base" "$cache/builder"
  chroot_apt "$cache/builder" gcc libc6-dev
  mkdir -p "$cache/builder/usr/local/rust"
  cp -a "$toolchain/bin" "$toolchain/lib" "$cache/builder/usr/local/rust/"
  rm -rf "$cache/builder/usr/local/rust/lib/rustlib/src"
  # rustc's $ORIGIN runpath does not resolve in this image; say where its libraries are.
  import "$cache/builder" local/rust-builder:latest \
    --change 'ENV PATH=/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LD_LIBRARY_PATH=/usr/local/rust/lib' --change 'ENV CARGO_HOME=/usr/local/cargo'
fi
if ! have local/prometheus:latest; then
  dir=$(mktemp -d)
  cp "$(command -v prometheus)" "$dir/prometheus"
  printf 'FROM local/debian:bookworm\nCOPY prometheus /bin/prometheus\nRUN mkdir -p /prometheus && chown 65534:65534 /prometheus\nUSER 65534\nENTRYPOINT ["/bin/prometheus"]\n' > "$dir/Dockerfile"
  docker build -q -t local/prometheus:latest "$dir" >/dev/null
  rm -rf "$dir"
fi
