#!/bin/sh
# Regenerate vmlinux/<arch>/vmlinux.h from the running kernel's BTF.
# The header is committed so that a build never depends on the build
# machine's kernel; CO-RE relocations adapt the objects to the kernel
# they are loaded on. Run this only to pick up new kernel types.
set -eu
arch=${1:-$(uname -m)}
btf=${BTF:-/sys/kernel/btf/vmlinux}
out="$(dirname "$0")/../vmlinux/$arch/vmlinux.h"
[ -r "$btf" ] || { echo "gen-vmlinux: cannot read $btf (kernel built without BTF?)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
bpftool btf dump file "$btf" format c > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -l < "$out") lines) from $btf"
