#!/usr/bin/env bash
# Builds Berth's container image (Dockerfile at the top of the repository)
# with docker, without network access: the image is FROM scratch and runs no
# RUN step, so everything it holds is staged here first, in deploy/stage/:
# the release binary (stripped of its symbol table), the shared libraries
# `ldd` lists for it copied from this machine (so they match the glibc it
# was linked against), CA roots, and a few files under /etc.
#
# Usage: deploy/build-image.sh TAG
#   BERTH_BINARY   the binary to package [default: target/release/berth,
#                  built with `cargo build --release -p berth` when missing]
#   DOCKER_HOST    which docker engine builds it (docker's own variable)
#   CA_BUNDLE      CA roots to ship [default: /etc/ssl/certs/ca-certificates.crt]
set -euo pipefail
# The image keeps the modes staged here: everything readable by its user.
umask 022

tag=${1:?usage: deploy/build-image.sh TAG}
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary=${BERTH_BINARY:-$repo/target/release/berth}
ca_bundle=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

die() {
  echo "build-image: $*" >&2
  exit 1
}

if [[ ! -x $binary ]]; then
  # A binary named explicitly is never built behind the caller's back.
  [[ -z ${BERTH_BINARY:-} ]] || die "BERTH_BINARY=$binary is not an executable file"
  echo "build-image: $binary is missing; building it" >&2
  (cd "$repo" && cargo build --release -p berth)
fi
[[ -r $ca_bundle ]] || die "no CA roots at $ca_bundle (install ca-certificates or set CA_BUNDLE)"

# One build at a time owns deploy/stage/.
exec 9>"$repo/deploy/stage.lock"
flock 9

stage=$repo/deploy/stage
rootfs=$stage/rootfs
rm -rf "$stage"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/docker/registry" "$rootfs/etc/ssl/certs" \
  "$rootfs/tmp" "$stage/volume"
chmod 1777 "$rootfs/tmp"

if command -v strip >/dev/null; then
  # The symbol table is a fifth of the binary and only names frames in a
  # native panic's backtrace; the guest's wasm backtraces keep their names.
  strip -o "$rootfs/usr/local/bin/berth" "$binary"
else
  cp "$binary" "$rootfs/usr/local/bin/berth"
fi
chmod 0755 "$rootfs/usr/local/bin/berth"

# Every library at the path ldd resolved it to (the loader at the path
# the binary names as its interpreter), the file itself rather than the
# symlink. A static binary has nothing to copy.
if ldd_out=$(ldd "$binary" 2>&1); then
  libs=$(awk '
    /not found/ { print "build-image: missing library: " $0 > "/dev/stderr"; exit 1 }
    $2 == "=>" && $3 ~ /^\// { print $3; next }
    $1 ~ /^\// { print $1 }' <<<"$ldd_out")
  grep -q '/ld-linux' <<<"$libs" || die "ldd named no dynamic loader for $binary"
  while read -r lib; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib"
  done <<<"$libs"
elif ! grep -q 'not a dynamic executable' <<<"$ldd_out"; then
  die "ldd $binary: $ldd_out"
fi

cp -L "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
cp "$repo/deploy/config.yml" "$rootfs/etc/docker/registry/config.yml"
printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
  'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' >"$rootfs/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$rootfs/etc/group"
# glibc's default asks DNS before /etc/hosts; docker writes /etc/hosts.
printf '%s\n' 'hosts: files dns' >"$rootfs/etc/nsswitch.conf"
chmod -R go-w "$rootfs/etc"

# Without buildx the CLI falls back to the classic builder, unless
# DOCKER_BUILDKIT=1 asks for BuildKit, which then fails; the classic one
# builds this Dockerfile the same.
if ! docker buildx version >/dev/null 2>&1; then
  export DOCKER_BUILDKIT=0
fi
docker build --pull=false -t "$tag" -f "$repo/Dockerfile" "$repo"
echo "build-image: built $tag from $binary" >&2
