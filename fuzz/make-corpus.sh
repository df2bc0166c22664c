#!/bin/sh
# make-corpus.sh DIR: the seed corpus of fuzz_elf, tiny real ELF files and
# broken variants of them. Its output is committed (fuzz/corpus/elf); run
# again only to change the seeds.
set -eu
out=${1:-fuzz/corpus/elf}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
cat > "$tmp/t.c" <<'C'
static inline __attribute__((always_inline)) int twice(int x) { return x * 2; }
__attribute__((noinline)) int work(int x) { return twice(x) + 1; }
void _start(void) { volatile int v = work(3); (void)v; for (;;) ; }
C
cat > "$tmp/t.cc" <<'C'
namespace fh { struct S { __attribute__((noinline)) int f(int x) { return x + 1; } }; }
extern "C" void _start() { fh::S s; volatile int v = s.f(1); (void)v; for (;;) ; }
C
flags="-Os -nostdlib -static -Wl,--build-id,-z,noseparate-code,-z,max-page-size=4096 -fno-stack-protector"
cc $flags "$tmp/t.c" -o "$out/static"
cc $flags -g "$tmp/t.c" -o "$out/dwarf"
cc -Os -nostdlib -shared -fPIC -g -Wl,--build-id,-z,noseparate-code "$tmp/t.c" -o "$out/shared.so"
g++ $flags -g -fno-exceptions "$tmp/t.cc" -o "$out/cxx"
objcopy --compress-debug-sections=zlib "$out/dwarf" "$out/dwarf-zlib"
cp "$out/dwarf" "$out/minidebug"
sh tests/progs/minidebuginfo.sh "$out/minidebug"
strip --strip-all -o "$out/stripped" "$out/static"
head -c 700 "$out/dwarf" > "$out/truncated-headers"
size=$(wc -c < "$out/dwarf")
head -c $((size / 2)) "$out/dwarf" > "$out/truncated-half"
# Section headers pointing anywhere: a byte run of 0xff over e_shoff's table.
python3 - "$out/dwarf" "$out/corrupt-shdrs" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
shoff = struct.unpack_from("<Q", b, 0x28)[0]
for i in range(shoff + 24, min(len(b), shoff + 64 * 6), 64):
    b[i:i + 8] = b"\xff" * 8
open(sys.argv[2], "wb").write(b)
PY
