#!/usr/bin/env bash
# Installs the real components the test suite runs against. Idempotent and cached
# outside the repository, so only the first run on a machine pays for the build.
#   KUBE2IAM_TEST_CACHE  cache directory (default: ~/.cache/kube2iam-ts)
set -euo pipefail

CACHE=${KUBE2IAM_TEST_CACHE:-${HOME:-/root}/.cache/kube2iam-ts}
K8S_SRC_VERSION=1.20.5+really1.20.2-1.1+deb12u1
K8S_ORIG=kubernetes_1.20.5+really1.20.2.orig.tar.gz
APISERVER=$CACHE/bin/kube-apiserver
PACKAGES=(etcd-server etcd-client iptables wrk golang-go golang-github-gorilla-mux-dev golang-github-sirupsen-logrus-dev golang-github-prometheus-client-golang-dev rsync jq ca-certificates iproute2 curl debootstrap)

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get, network namespaces and iptables need it)"
mkdir -p "$CACHE/bin"
exec 9>"$CACHE/.lock"
flock 9   # two concurrent runs would race on apt and on the build tree

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v moto_server >/dev/null 2>&1 && python3 -c 'import moto' 2>/dev/null \
  || die "moto_server (Python package moto) is missing; it cannot be installed here (no Python package index). The STS tests need it."

if ! "$APISERVER" --version >/dev/null 2>&1; then
  log "building kube-apiserver from Debian's kubernetes source package (about 3 minutes, once per machine)"
  W=$CACHE/build
  rm -rf "$W"
  mkdir -p "$W/apt/parts" "$W/apt/lists/partial" "$W/apt/cache/archives/partial" "$W/src" "$W/home"
  # deb-src stanzas derived from the machine's own deb stanzas; /etc/apt stays untouched
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > "$W/apt/parts/debian-src.sources"
  APTO=(-o APT::Sandbox::User=root -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$W/apt/parts"
        -o Dir::State::Lists="$W/apt/lists" -o Dir::Cache="$W/apt/cache")
  apt-get "${APTO[@]}" update >/dev/null
  ( cd "$W/src" && apt-get "${APTO[@]}" source --download-only "kubernetes=$K8S_SRC_VERSION" >/dev/null 2>&1 ) \
    || die "apt-get source kubernetes=$K8S_SRC_VERSION failed"
  tar -C "$W/src" -xzf "$W/src/$K8S_ORIG"
  (
    cd "$W/src/kubernetes-1.20.2"
    export GOPATH="$PWD/.go" CGO_ENABLED=0 GOPROXY=off GOFLAGS= GO111MODULE= HOME="$W/home"
    mkdir -p .go/src/k8s.io
    ln -sfn ../../.. .go/src/k8s.io/kubernetes
    make WHAT=cmd/kube-apiserver >"$W/build.log" 2>&1 || { tail -40 "$W/build.log" >&2; exit 1; }
    cp _output/bin/kube-apiserver "$APISERVER.tmp"
  ) || die "kube-apiserver build failed (log: $W/build.log)"
  mv "$APISERVER.tmp" "$APISERVER"
  rm -rf "$W"   # 1.9 GB of sources and objects; the binary is all we keep
  log "built $("$APISERVER" --version)"
fi

command -v kubectl >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null
bash "$(dirname "$0")/image-rootfs.sh" "$CACHE" >/dev/null
echo "$CACHE"
