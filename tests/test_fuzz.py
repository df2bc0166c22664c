"""fuzz/fuzz_elf, libFuzzer on the path every ELF file the symbolizer meets
takes (src/symmod.c): the seed corpus replayed, then a few seconds of fuzzing.
A crash, an ASan/UBSan report, a timeout or an out-of-memory fails."""

import glob
import os
import re
import shutil
import subprocess
import tempfile

from fh import BUILD, ROOT, check

SEEDS = os.path.join(ROOT, "fuzz", "corpus", "elf")
SECONDS = int(os.environ.get("FH_FUZZ_SECONDS", "10"))
# Leaks found in libelf/libdw themselves on crafted files (a section's buffer
# lost inside dwarf_getcfi_elf, elfutils 0.188) would stop every run within
# seconds: the fuzzing runs look for memory errors; the replay of the seeds,
# where nothing may leak, keeps leak detection on.
RUN_FLAGS = ["-max_len=65536", "-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"]


def fuzzer():
    path = os.path.join(ROOT, BUILD, "fuzz", "fuzz_elf")
    check(os.access(path, os.X_OK), "%s is built by make test" % path)
    return path


def test_fuzz_seeds_replay_clean():
    seeds = sorted(glob.glob(os.path.join(SEEDS, "*")))
    check(len(seeds) >= 8, "the seed corpus is there", seeds)
    out = subprocess.run(["readelf", "-h", os.path.join(SEEDS, "dwarf")], capture_output=True,
                         text=True)
    check(out.returncode == 0, "the seeds include real ELF files", out.stderr)
    p = subprocess.run([fuzzer(), "-detect_leaks=1"] + seeds, capture_output=True, text=True,
                       timeout=120)
    ran = len(re.findall(r"^Executed ", p.stderr, re.M))
    check(p.returncode == 0, "every seed runs clean (leaks included)", p.stderr[-3000:])
    check(ran == len(seeds), "every seed ran", ran, len(seeds))


def test_fuzz_briefly():
    work = tempfile.mkdtemp(prefix="fh-fuzz-")
    try:
        corpus = os.path.join(work, "corpus")
        os.mkdir(corpus)
        p = subprocess.run([fuzzer(), "-detect_leaks=0", "-max_total_time=%d" % SECONDS,
                            "-artifact_prefix=%s/" % work] + RUN_FLAGS + [corpus, SEEDS],
                           capture_output=True, text=True, timeout=SECONDS + 120,
                           env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0"))
        found = [f for f in os.listdir(work) if f != "corpus"]
        check(p.returncode == 0 and not found, "no crash, timeout or OOM", found,
              p.stderr[-3000:])
        m = re.search(r"stat::number_of_executed_units: (\d+)", p.stderr)
        check(m and int(m.group(1)) >= 1000, "it did fuzz", p.stderr[-1000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
