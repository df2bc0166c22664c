#!/bin/sh
# minidebuginfo.sh BINARY: strip BINARY and give it MiniDebugInfo as Fedora
# does: the function symbols .dynsym lacks, in a small ELF file compressed
# with xz, in section .gnu_debugdata. For the symbolization tests.
set -eu
bin=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
nm -D "$bin" --format=posix --defined-only 2>/dev/null | awk '{ print $1 }' | sort > "$tmp/dynsyms"
nm "$bin" --format=posix --defined-only | awk '$2 == "T" || $2 == "t" { print $1 }' |
	sort > "$tmp/funcsyms"
comm -13 "$tmp/dynsyms" "$tmp/funcsyms" > "$tmp/keep"
objcopy --only-keep-debug "$bin" "$tmp/debug"
objcopy -S --remove-section .gdb_index --remove-section .comment \
	--keep-symbols="$tmp/keep" "$tmp/debug" "$tmp/mini"
xz -z "$tmp/mini"
strip --strip-all "$bin"
objcopy --add-section .gnu_debugdata="$tmp/mini.xz" "$bin"
