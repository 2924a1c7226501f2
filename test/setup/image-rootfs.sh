#!/usr/bin/env bash
# The container image's runtime stage as a root filesystem, without a Docker engine (none
# runs here): Debian minbase of the release the Dockerfile's runtime base is built on, with
# the packages its runtime stage installs, read from the Dockerfile itself. The Node
# binary, the production dependencies and the compiled program are added per test run
# (test/image/), on an overlay, so this base stays untouched.
#   usage: image-rootfs.sh CACHE   prints the root filesystem's path
# Cached under CACHE/rootfs, keyed by release and package list: only the first run pays
# (about 35 s, 220 MB).
set -euo pipefail
CACHE=${1:?usage: image-rootfs.sh CACHE}
DOCKERFILE="$(dirname "$0")/../../Dockerfile"

die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

# The runtime stage is the last FROM; node:<major>-<release>-slim is Debian <release>.
RELEASE=$(sed -n 's/^FROM node:[0-9]*-\([a-z]*\)-slim\( .*\)\{0,1\}$/\1/p' "$DOCKERFILE" | tail -1)
[ -n "$RELEASE" ] || die "the Dockerfile's runtime stage is not FROM node:<major>-<release>-slim"
# The runtime stage's apt-get install arguments that are not options.
RUNTIME=$(awk '/^FROM /{stage=""} {stage=stage $0 "\n"} END{printf "%s", stage}' "$DOCKERFILE")
PACKAGES=$(printf '%s' "$RUNTIME" | tr '\\\n' '  ' | grep -oE 'apt-get install [^&]*' | tr ' ' '\n' \
  | grep -vE '^(apt-get|install|-.*|)$' | sort -u | paste -sd, -)
[ -n "$PACKAGES" ] || die "the Dockerfile's runtime stage installs no Debian packages"

KEY=$(printf '%s %s' "$RELEASE" "$PACKAGES" | sha256sum | cut -c1-12)
ROOT=$CACHE/rootfs/$RELEASE-$KEY
if [ ! -f "$ROOT/.complete" ]; then
  MIRROR=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
  [ -n "$MIRROR" ] || MIRROR=$(sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) .*/\2/p' /etc/apt/sources.list 2>/dev/null | head -1)
  [ -n "$MIRROR" ] || die "no Debian mirror found in the machine's apt sources"
  printf 'setup: building the image root filesystem: Debian %s minbase + %s (about 35 s, once per machine)\n' "$RELEASE" "$PACKAGES" >&2
  rm -rf "$ROOT" "$ROOT.tmp"
  mkdir -p "$CACHE/rootfs"
  debootstrap --variant=minbase --include="$PACKAGES" "$RELEASE" "$ROOT.tmp" "$MIRROR" >"$CACHE/rootfs/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/rootfs/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE/rootfs/debootstrap.log)"; }
  rm -rf "$ROOT.tmp/var/cache/apt/archives/"*.deb "$ROOT.tmp/var/lib/apt/lists/"*
  printf '%s\n' "$RELEASE" "$PACKAGES" > "$ROOT.tmp/.complete"
  mv "$ROOT.tmp" "$ROOT"
fi
echo "$ROOT"
