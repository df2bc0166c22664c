#!/bin/sh
# Install every Debian package forkhazard's build, tests and benchmarks need
# (python3-jsonschema: the tests check every JSON record against
# docs/json.schema.json). Idempotent: asks apt only for what is missing.
set -eu
pkgs="make gcc clang llvm bpftool libbpf-dev libelf-dev libdw-dev zlib1g-dev
      libcapstone-dev pkg-config python3 python3-jsonschema procps util-linux
      g++ liblzma-dev xz-utils binutils libc6-dbg libclang-rt-14-dev musl-tools
      libjson-c-dev"
# Static analysis and the sanitizer/valgrind runs (make lint, check-valgrind).
pkgs="$pkgs cppcheck clang-tidy valgrind"
# `deps.sh bench`: also what only the benchmarks use (bench/README.md).
if [ "${1:-}" = bench ]; then
	pkgs="$pkgs bpftrace sqlite3"
fi
# `deps.sh service`: also what make check-service uses (a QEMU virtual
# machine booting Debian's kernels into systemd); `deps.sh container`, what
# make check-container uses (podman). Hundreds of MB: not for every make test.
if [ "${1:-}" = service ]; then
	pkgs="$pkgs qemu-system-x86 debootstrap cpio zstd"
fi
if [ "${1:-}" = container ]; then
	pkgs="$pkgs podman runc debootstrap"
fi
# Service mode: metrics endpoint (libmicrohttpd), sd_notify (libsystemd), the
# Debian package build, promtool and prometheus (the alert rules run in a
# real one) and systemd-analyze for its tests, PyYAML to read the rules, node
# and npm for the Kubernetes manifest's schema validation.
pkgs="$pkgs libmicrohttpd-dev libsystemd-dev debhelper dpkg-dev bash-completion prometheus
      systemd curl nodejs python3-yaml"
# The validators the tests run, from the npm registry, once, pinned by their
# package-lock.json: packaging/k8s/validate (kubernetes-models: the manifest
# against the Kubernetes schemas) and packaging/sarif/validate (the SARIF
# SDK's validator and the SARIF 2.1.0 schema: --sarif's output).
npm_validator() {
	dir="$(dirname "$0")/../packaging/$1/validate"
	[ -d "$dir/node_modules/$2" ] && return 0
	command -v npm >/dev/null || { echo "deps: npm is missing (Debian: npm)" >&2; return 1; }
	echo "deps: npm ci in packaging/$1/validate"
	(cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
}
validators() {
	npm_validator k8s kubernetes-models && npm_validator sarif @microsoft/sarif-multitool-linux
}
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
if [ -z "$missing" ]; then
	validators
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing; run 'sudo make deps'" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
validators
