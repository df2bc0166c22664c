"""Issue 13: what the lock probes cost a traced program, counted in traps (a
probe hit is one CPU exception, whatever it costs on the machine at hand):
N lock operations of each kind under forkhazard -- COMMAND, and the probe hits
the tool's per-process counters (the lock_hits map) record for exactly those
N. Deterministic: no timing is measured or asserted."""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile

from fh import Skip, Tracer, binary, check, check_sanitizers, prog

N = 2000
PY_PAIRS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "progs", "py_pairs.py")


def bpftool(*args):
    p = subprocess.run(["bpftool", "-j"] + list(args), capture_output=True, text=True, timeout=30)
    check(p.returncode == 0, "bpftool %s" % " ".join(args), p.stderr)
    return json.loads(p.stdout)


def map_of(pid, name):
    """The id of the BPF map `name` that process pid holds open."""
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                ids = [int(l.split()[1]) for l in f if l.startswith("map_id:")]
        except OSError:
            continue
        for i in ids:
            if bpftool("map", "show", "id", str(i)).get("name") == name:
                return i
    raise AssertionError("forkhazard (PID %d) has no map %s" % (pid, name))


def total_hits(map_id):
    """Every slot of the per-CPU hit counters, summed."""
    total = 0
    for e in bpftool("map", "dump", "id", str(map_id)):
        for v in e["formatted"]["values"] if "formatted" in e else e["values"]:
            val = v["value"]
            total += val if isinstance(val, int) else int.from_bytes(
                bytes(int(b, 16) for b in val), sys.byteorder)
    return total


class Counted:
    """forkhazard -- CMD, where CMD speaks the pairs protocol on stdin/stdout."""

    def __init__(self, cmd):
        self.out = tempfile.NamedTemporaryFile(prefix="fh-", suffix=".out", delete=False)
        self.out.close()
        self.err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([binary(), "-j", "-o", self.out.name, "--"] + cmd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.err, text=True)

    def expect(self, word):
        line = self.proc.stdout.readline().strip()
        if line != word:
            self.err.seek(0)
            raise AssertionError("expected %r from the workload, got %r: %s"
                                 % (word, line, self.err.read()[-2000:]))

    def go(self):
        self.proc.stdin.write("x")
        self.proc.stdin.flush()

    def traps(self):
        """Probe hits taken by the workload's N operations."""
        self.expect("ready")
        hits = map_of(self.proc.pid, "lock_hits")
        before = total_hits(hits)
        self.go()
        self.expect("done")
        n = total_hits(hits) - before
        self.go()
        facts = json.loads(self.proc.stdout.readline())
        self.proc.wait(timeout=60)
        self.err.seek(0)
        err = self.err.read()
        check_sanitizers(err)
        check(self.proc.returncode == 0, "forkhazard exited %s" % self.proc.returncode, err)
        os.unlink(self.out.name)
        return n, facts


# traps per operation: a pair for the locking kinds, one call for the tries
PER_OP = {
    "mutex": 1,              # the lock's probe; unlock is not probed (the word names the owner)
    "rwlock-write": 1,       # the writer half of unlock branches away before the reader point
    "rwlock-read": 2,        # rdlock, and the reader half's success point in unlock
    "sem": 1,                # sem_wait's success point; sem_post is not probed
    "sem-try": 1,            # sem_trywait's success point
    "spin": 1,               # pthread_spin_lock's success point (after lock decl)
    "rwlock-trywrite": 1,    # trywrlock's success point
    "rwlock-tryread": 2,     # tryrdlock's success point, the reader half of unlock
    "mutex-try-fail": 1,     # the trylock's probe (the word says it failed, at the fork)
    "sem-try-fail": 0,       # branches away before the success point
    "rwlock-trywrite-fail": 0,
}


def test_traps_per_lock_operation():
    got = {}
    for kind, per_op in PER_OP.items():
        n, facts = Counted([prog("pairs"), kind, str(N)]).traps()
        check(facts["n"] == N, "%s: the workload ran" % kind, facts)
        if kind.endswith("-fail"):
            check(facts["failed"] == N, "%s: every try failed" % kind, facts)
        got[kind] = n
        check(per_op * N <= n <= per_op * N + 2,
              "%s: %d traps per operation (+2 at most), got %d for %d" % (kind, per_op, n, N),
              got)


def pythons():
    """Every CPython 3 installed: the system's and pyenv's."""
    found = ["/usr/bin/python3"] if os.path.exists("/usr/bin/python3") else []
    root = subprocess.run(["sh", "-c", "pyenv root 2>/dev/null"], capture_output=True,
                          text=True).stdout.strip()
    if root:
        found += sorted(glob.glob(os.path.join(root, "versions", "3.*", "bin", "python3")))
    return found


def test_traps_per_python_lock_pair():
    """threading.Lock acquire+release: one sem_trywait that succeeds (its
    success point), one sem_post (not probed). CPython up to 3.13 builds the
    lock on sem_t; 3.14's PyMutex makes no libc call at all."""
    exes = pythons()
    if not exes:
        raise Skip("no CPython 3 installed")
    seen = []
    for exe in exes:
        n, facts = Counted([exe, PY_PAIRS, str(N)]).traps()
        version = tuple(int(x) for x in facts["python"].split("."))
        seen.append((facts["python"], n))
        if version >= (3, 14):
            continue
        # a few GIL hand-overs around the handshakes come on top
        check(N <= n <= N + 20, "CPython %s: one trap per Lock pair, got %d for %d"
              % (facts["python"], n, N), seen)


def test_verifier_work_stays_far_from_its_limit():
    """Start-up is mostly the kernel verifying the programs, and a program
    past a million verified instructions does not load at all. The fork
    program once took 973,852 (its Python walk inlined four times): 1.2 s
    of start-up, and one more branch from not loading. Every program must
    stay under a quarter of the limit, in each mode that loads a different
    set of them."""
    limit = 250_000
    for mode in ([], ["--light"], ["--track-all"]):
        # -- COMMAND for the first two, whole-system for --track-all
        r = Tracer(["-vv"] + mode, json_out=False).stop() if mode == ["--track-all"] else \
            Tracer(["-vv"] + mode + ["--", "true"], json_out=False).wait()
        check(r.status == 0, "forkhazard %s" % " ".join(mode), r.stderr[-2000:])
        work = {m.group(1): int(m.group(2)) for m in
                re.finditer(r"BPF program (\w+): (\d+) instructions verified", r.stderr)}
        check("on_fork" in work, "the fork program's work is reported", mode, work)
        if mode != ["--light"]:
            check("lock_acquire" in work, "the lock probe's work is reported", mode, work)
        over = {name: n for name, n in work.items() if n > limit}
        check(not over, "programs past %d verified instructions %s" % (limit, mode), over)
