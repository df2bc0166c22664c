#!/usr/bin/env python3
"""forkhazard's benchmark suite: what tracing costs the traced programs, and
what the tracer itself costs (start-up, memory, event throughput and loss).

Every benchmark runs its baseline and each mode alternately within each
repetition (bare, bpftrace, fh-p, ..., bare, bpftrace, fh-p, ...), and each
mode's cost is reported as a ratio to the bare run of the same repetition:
median and min over repetitions. Absolute timings are printed for reading,
never asserted. See bench/README.md for what each benchmark measures.

    python3 bench/run.py [--quick] [--only NAME[,NAME]] [--reps N] [--build DIR]
"""

import argparse
import ctypes
import datetime
import glob
import json
import math
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")

# ---- modes ------------------------------------------------------------------


class Mode:
    """One way of running a benchmark. `tracer` is None (nothing runs beside
    the benchmark), "bpftrace" or "fh"; in `args`, {pid} is the benchmark's
    PID and {decoy} the PID of an idle process that is not the benchmark.
    A mode with `needs` runs only if forkhazard --help mentions that string."""

    def __init__(self, name, tracer, args=(), desc="", needs=None):
        self.name, self.tracer, self.args = name, tracer, list(args)
        self.desc, self.needs = desc, needs

    @property
    def wants_decoy(self):
        return any("{decoy}" in a for a in self.args)


# Adding a mode is one line. The first must be the baseline.
MODES = [
    Mode("bare", None, desc="no tracing: the baseline"),
    Mode("bare2", None, desc="no tracing, a second time in each repetition: how far bare strays "
         "from itself (the spread that untraced modes are judged against)"),
    Mode("bpftrace", "bpftrace", desc="bench/bpftrace/mutex.bt -p PID: the minimal bpftrace peer"),
    Mode("fh-p", "fh", ["-p", "{pid}"], desc="forkhazard -p PID: full lock tracking of the benchmark"),
    Mode("fh-p-entry", "fh", ["-p", "{pid}", "--probe-at-entry"], needs="--probe-at-entry",
         desc="forkhazard -p PID --probe-at-entry: lock probes on function entries, where "
         "the kernel single-steps the first instruction (the original placement)"),
    Mode("fh-sys", "fh", [], desc="forkhazard system-wide, default options (adaptive once the "
         "binary has --track-all: lock probes only for processes that forked while "
         "multithreaded)"),
    Mode("fh-track-all", "fh", ["--track-all"], needs="--track-all",
         desc="forkhazard --track-all: lock probes on every process"),
    Mode("fh-light", "fh", ["--light"], desc="forkhazard --light system-wide: no lock probes"),
    Mode("fh-other", "fh", ["-p", "{decoy}"],
         desc="benchmark untraced while forkhazard -p traces another process"),
]

# ---- benchmarks -------------------------------------------------------------


class Bench:
    """One measured quantity. `n0` is the size of the calibration run, `nmax`
    (full, quick) caps the size of a measured run; a Bench without n0 runs a
    fixed size in every mode. `modes`: the only modes it runs in (None: all
    but `skip_modes`)."""

    def __init__(self, name, unit, title, n0=None, nmax=(None, None), nmin=1, fixed=None,
                 skip_modes=(), modes=None):
        self.name, self.unit, self.title = name, unit, title
        self.n0, self.nmax, self.nmin, self.fixed = n0, nmax, nmin, fixed
        self.skip_modes = set(skip_modes)
        self.modes = set(modes) if modes else None

    def runs_in(self, mode):
        return mode not in self.skip_modes and (self.modes is None or mode in self.modes)


class Group:
    """Benchmarks measured by one process: one tracer session covers them."""

    benches = []
    builds = []
    count_in_quick = True	# --quick makes its counting runs too

    def command(self, ctx, sizes):
        """(argv, stdin path or None, env or None) for the given sizes."""
        raise NotImplementedError

    def parse(self, ctx, sizes, out):
        """{bench name: {"n":.., "elapsed_ns":.., ...}} from the program's stdout;
        "ops" when the operations of a run are not n (several threads)."""
        raise NotImplementedError

    def count_span(self, index, bench, labels):
        """Between which two snapshots of a counting run (see run_job) the
        probe hits of the index-th benchmark of the run are counted: the
        pauses around its loop when the program makes them, else from SIGUSR1
        to its exit."""
        edges = ("before:%d" % index, "after:%d" % index)
        return edges if all(e in labels for e in edges) else ("go", "exit")


class Locks(Group):
    # (bench, the `locks` loop it runs, threads)
    loops = {"mutex-1t": ("mutex", 1), "mutex-2t": ("mutex", 2),
             "contended": ("contended", 2), "rdlock": ("rdlock", 2), "wrlock": ("wrlock", 1),
             "syscall": ("syscall", 1)}
    benches = [
        Bench("mutex-1t", "pair", "uncontended mutex lock/unlock, 1 thread",
              n0=2000, nmax=(20_000_000, 5_000_000), nmin=1000),
        Bench("mutex-2t", "pair", "uncontended mutex lock/unlock, 2 threads, a mutex each",
              n0=2000, nmax=(20_000_000, 5_000_000), nmin=1000),
        Bench("contended", "pair", "contended mutex: 2 threads on one mutex",
              n0=2000, nmax=(3_000_000, 1_000_000), nmin=1000),
        Bench("rdlock", "pair", "rwlock rdlock/unlock, 2 threads on one rwlock",
              n0=2000, nmax=(5_000_000, 1_500_000), nmin=1000),
        Bench("wrlock", "pair", "rwlock wrlock/unlock, 1 thread",
              n0=2000, nmax=(10_000_000, 3_000_000), nmin=1000),
        Bench("syscall", "call", "getppid(2), 1 thread: what every system call pays",
              n0=2000, nmax=(10_000_000, 3_000_000), nmin=1000),
    ]
    builds = ["locks"]

    def command(self, ctx, sizes):
        specs = ["%s:%d:%d" % (self.loops[b][0], n, self.loops[b][1]) for b, n in sizes.items()]
        return [ctx.prog("locks"), "--wait"] + specs, None, None

    def parse(self, ctx, sizes, out):
        lines = [json.loads(l) for l in out.splitlines() if l.startswith('{"name"')]
        if len(lines) != len(sizes):
            raise BenchError("locks printed %d results for %d loops" % (len(lines), len(sizes)))
        # n: a thread's pairs (time per pair of one thread); ops: every thread's
        return {b: {"n": l["iters"], "ops": l["iters"] * l["threads"],
                    "elapsed_ns": l["elapsed_ns"]} for b, l in zip(sizes, lines)}


class Sqlite(Group):
    ROWS, BLOB = 4000, 400
    benches = [
        Bench("sqlite3", "round", "sqlite3 CLI: %d-row load, 2 indexes (PRAGMA threads=2), "
              "sorted scan" % ROWS, n0=1, nmax=(20, 8)),
    ]
    builds = ["launch"]

    def sql(self, rounds):
        # One round: load, index, scan, drop. The same round whatever the
        # number of rounds, so that costs per round compare across modes.
        # Rows big enough that each index build's sort spills into several
        # runs, which PRAGMA threads=2 merges on a helper thread.
        head = [".timer on", "PRAGMA journal_mode=OFF;", "PRAGMA synchronous=OFF;",
                "PRAGMA threads=2;"]
        one = [
            "CREATE TABLE t(a INTEGER, b TEXT);",
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<%d) "
            "INSERT INTO t SELECT random(), hex(randomblob(%d)) FROM c;" % (self.ROWS, self.BLOB),
            "CREATE INDEX ta ON t(a);",
            "CREATE INDEX tb ON t(b);",
            "SELECT count(*), sum(length(b)) FROM (SELECT b FROM t ORDER BY b DESC);",
            "DROP TABLE t;",
        ]
        return "\n".join(head + one * rounds) + "\n"

    def command(self, ctx, sizes):
        rounds = sizes["sqlite3"]
        script = os.path.join(ctx.tmp, "sqlite-%d.sql" % rounds)
        with open(script, "w") as f:
            f.write(self.sql(rounds))
        db = os.path.join(ctx.tmp, "bench.db")
        if os.path.exists(db):
            os.unlink(db)
        env = dict(os.environ, SQLITE_TMPDIR=ctx.tmp)
        return [ctx.prog("launch"), "sqlite3", db], script, env

    def parse(self, ctx, sizes, out):
        rounds = sizes["sqlite3"]
        real = [float(l.split()[3]) for l in out.splitlines() if l.startswith("Run Time: real")]
        rows = [l for l in out.splitlines() if l == "%d|%d" % (self.ROWS, 2 * self.ROWS * self.BLOB)]
        if len(rows) != rounds:
            raise BenchError("sqlite3 finished %d of %d rounds" % (len(rows), rounds))
        os.unlink(os.path.join(ctx.tmp, "bench.db"))
        return {"sqlite3": {"n": rounds, "elapsed_ns": int(sum(real) * 1e9)}}


class Python(Group):
    """pythreads.py under one CPython. Its size is the acquire+release count of
    all threads together: pinned to one CPU, they take turns, so time / ops
    is what one acquire+release costs."""
    THREADS = 4
    builds = ["launch"]

    def __init__(self, name, exe, version, modes=None):
        self.exe, self.version = exe, version
        self.benches = [
            Bench(name, "acquire+release", "CPython %s (%s): %d threads taking one "
                  "threading.Lock in turn, pinned to one CPU"
                  % (version, exe, self.THREADS), n0=8000,
                  nmax=(2_400_000, 1_000_000), nmin=2000, modes=modes)]

    def command(self, ctx, sizes):
        cpu = str((os.cpu_count() or 1) - 1)
        iters = max(1, sizes[self.benches[0].name] // self.THREADS)
        return [ctx.prog("launch"), self.exe, os.path.join(BENCH, "progs", "pythreads.py"),
                "--cpu", cpu, str(self.THREADS), str(iters)], None, None

    def parse(self, ctx, sizes, out):
        r = [json.loads(l) for l in out.splitlines() if l.startswith("{") and "elapsed_ns" in l]
        if len(r) != 1:
            raise BenchError("pythreads printed no result")
        return {self.benches[0].name: {"n": r[0]["ops"], "elapsed_ns": r[0]["elapsed_ns"]}}


def pythons():
    """(bench name, interpreter, version) of each CPython to measure: pyenv's
    newest 3.10-3.13 and the system's /usr/bin/python3, in that order. The one
    running this suite gets every mode; the others bare and fh-p."""
    root = os.environ.get("PYENV_ROOT")
    if not root and shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    root = root or os.path.expanduser("~/.pyenv")
    found = []
    for minor in (10, 11, 12, 13):
        builds = []
        for d in glob.glob(os.path.join(root, "versions", "3.%d.*" % minor)):
            parts = os.path.basename(d).split(".")
            exe = os.path.join(d, "bin", "python3.%d" % minor)
            if len(parts) == 3 and parts[2].isdigit() and os.access(exe, os.X_OK):
                builds.append((int(parts[2]), exe, os.path.basename(d)))
        if builds:
            _, exe, version = max(builds)
            found.append(("py" + version, exe, version))
    if os.access("/usr/bin/python3", os.X_OK):
        version = subprocess.run(["/usr/bin/python3", "-c", "import platform; "
                                  "print(platform.python_version())"], capture_output=True,
                                 text=True, timeout=10).stdout.strip() or "?"
        found.append(("py%s-system" % version, "/usr/bin/python3", version + ", Debian"))
    me = os.path.realpath(sys.executable)
    if not any(os.path.realpath(exe) == me for _, exe, _ in found):
        found.insert(0, ("py%s" % platform.python_version(), sys.executable,
                         platform.python_version()))
    return [Python(name, exe, version,
                   None if os.path.realpath(exe) == me else ("bare", "fh-p"))
            for name, exe, version in found]


class Service(Group):
    """bench/progs/pyservice.py: a ThreadPoolExecutor service that forks a
    worker once. Its size is the measured window in seconds; its result, the
    lock operations in that window."""
    builds = ["launch"]
    benches = [
        Bench("service", "op", "Python ThreadPoolExecutor service (2 tasks on one "
              "threading.Lock, pinned to one CPU) that forks a worker once: throughput "
              "after the fork and a settling time", fixed=(2, 0.5),
              modes=("bare", "bare2", "fh-sys", "fh-p", "fh-light")),
    ]

    def command(self, ctx, sizes):
        a = ctx.args
        cpu = str((os.cpu_count() or 1) - 1)
        return [ctx.prog("launch"), sys.executable, os.path.join(BENCH, "progs", "pyservice.py"),
                "--cpu", cpu, "--before", str(a.service_before), "--settle", str(a.service_settle),
                str(sizes["service"])], None, None

    def parse(self, ctx, sizes, out):
        r = [json.loads(l) for l in out.splitlines() if l.startswith('{"ops"')]
        if len(r) != 1 or not r[0]["ops"]:
            raise BenchError("pyservice printed no result")
        return {"service": {"n": r[0]["ops"], "elapsed_ns": r[0]["elapsed_ns"],
                            "ops_before": r[0]["ops_before"], "before_ns": r[0]["before_ns"],
                            "seconds": sizes["service"]}}

    def count_span(self, index, bench, labels):
        return ("mark:window_start", "mark:window_end")


class ForkBig(Group):
    THREADS, MB = 8, 100
    count_in_quick = False
    benches = [
        Bench("fork100m", "fork", "fork+wait of an %d-thread process with %d MB touched heap "
              "(7 threads holding a lock)" % (THREADS, MB), fixed=(100, 30)),
    ]
    builds = ["forks"]

    def command(self, ctx, sizes):
        return [ctx.prog("forks"), "--wait", "big", str(self.THREADS), str(self.MB),
                str(sizes["fork100m"])], None, None

    def parse(self, ctx, sizes, out):
        r = [json.loads(l) for l in out.splitlines() if l.startswith('{"pid"')]
        if len(r) != 1:
            raise BenchError("forks big printed no result")
        return {"fork100m": {"n": r[0]["forks"], "elapsed_ns": r[0]["elapsed_ns"]}}


class ForkStorm(Group):
    count_in_quick = False
    benches = [
        Bench("forkstorm", "fork", "fork storm: a 2-thread process (worker holding a lock) "
              "forks as fast as it can", fixed=(2, 1), skip_modes=("bpftrace",)),
    ]
    builds = ["forks"]

    def command(self, ctx, sizes):
        return [ctx.prog("forks"), "--wait", "storm", str(sizes["forkstorm"])], None, None

    def parse(self, ctx, sizes, out):
        r = [json.loads(l) for l in out.splitlines() if l.startswith('{"pid"')]
        if len(r) != 1:
            raise BenchError("forks storm printed no result")
        return {"forkstorm": {"n": r[0]["forks"], "elapsed_ns": r[0]["elapsed_ns"],
                              "seconds": sizes["forkstorm"]}}


class Report(Group):
    """forkhazard report over a made-up recording (tests/jsonl_gen.py: hazard
    forks with their stacks and locks, children's fates, deadlocks, as -j -o
    writes them), made once per suite. Only bare: it measures forkhazard's
    own command, not a traced program."""
    EVENTS = 100_000
    builds = ["launch"]
    count_in_quick = False
    benches = [
        Bench("report", "event", "forkhazard report over a %d-event recording (hazard forks "
              "with stacks, children's fates, deadlocks; 5 sites)" % EVENTS,
              fixed=(EVENTS, EVENTS), modes=("bare",)),
    ]

    def recording(self, ctx, n):
        path = os.path.join(ctx.tmp, "report-%d.jsonl" % n)
        if not os.path.exists(path):
            sys.path.insert(0, os.path.join(ROOT, "tests"))
            import jsonl_gen
            lines, _ = jsonl_gen.recording(n)
            with open(path, "w") as f:
                for line in lines:	# forkhazard writes compact JSON
                    f.write(json.dumps(json.loads(line), separators=(",", ":")) + "\n")
        return path

    def command(self, ctx, sizes):
        path = self.recording(ctx, sizes["report"])
        return [ctx.prog("launch"), sys.executable, os.path.join(BENCH, "progs", "timed.py"),
                ctx.fh, "report", path], None, None

    def parse(self, ctx, sizes, out):
        r = [json.loads(l) for l in out.splitlines() if l.startswith('{"elapsed_ns"')]
        if len(r) != 1 or r[0]["status"] != 0:
            raise BenchError("forkhazard report failed: %s" % out[-300:])
        path = self.recording(ctx, sizes["report"])
        return {"report": {"n": sizes["report"], "elapsed_ns": r[0]["elapsed_ns"],
                           "cpu_ns": r[0]["cpu_ns"], "max_rss_kb": r[0]["max_rss_kb"],
                           "bytes": os.path.getsize(path)}}


# Filled by build_groups(): the Python groups depend on the interpreters installed.
GROUPS = []
ALL_BENCHES = []


def build_groups():
    GROUPS[:] = [Locks(), Sqlite()] + pythons() + [Service(), ForkBig(), ForkStorm(), Report()]
    ALL_BENCHES[:] = [b.name for g in GROUPS for b in g.benches]

# ---- running ----------------------------------------------------------------


class BenchError(Exception):
    pass


def median(xs):
    return statistics.median(xs) if xs else None


def _die_with_parent():
    """In each child before exec: SIGKILL when the suite dies, even by
    SIGKILL, so that no tracer or benchmark outlives it."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class Procs:
    """Every process the suite starts, killed at the end whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, argv, **kw):
        try:
            p = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
        except OSError as e:
            raise BenchError("cannot run %s: %s" % (argv[0], e))
        self.procs.append(p)
        return p

    def stop(self, p, timeout, sig=signal.SIGINT):
        """Signal p and wait for it. Returns the seconds it took, or None if
        it was still there after `timeout` (then it is killed)."""
        t0 = time.monotonic()
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill(p)
                return None
        self.kill(p)
        return time.monotonic() - t0

    def kill(self, p):
        if p.poll() is None:
            p.kill()
            p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def kill_all(self):
        for p in list(self.procs):
            self.kill(p)


def vmhwm_kb(pid):
    try:
        with open("/proc/%d/status" % pid, errors="replace") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def read_line(p, timeout, what):
    """The first line a process prints, within timeout."""
    r, _, _ = select.select([p.stdout], [], [], timeout)
    if not r:
        raise BenchError("%s printed nothing within %ss" % (what, timeout))
    line = p.stdout.readline()
    if not line:
        raise BenchError("%s exited before it was ready (status %s)" % (what, p.wait()))
    return line


def wait_for_text(path, text, p, timeout, what):
    """Poll a log file until `text` starts one of its lines; seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        with open(path, errors="replace") as f:
            if any(l.startswith(text) for l in f):
                return time.monotonic() - t0
        if p.poll() is not None:
            raise BenchError("%s exited (status %s) before it was tracing: %s"
                             % (what, p.returncode, tail(path)))
        time.sleep(0.005)
    raise BenchError("%s not tracing after %ss: %s" % (what, timeout, tail(path)))


def tail(path, n=1500):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:].strip()
    except OSError:
        return ""


def scan_fh_output(path, pid):
    """The summary and the number of fork events of `pid`, streaming: a storm
    writes hundreds of megabytes."""
    summary, forks, needle = None, 0, '"pid":%d,' % pid
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith('{"type":"fork"'):
                if needle in line:
                    forks += 1
            elif line.startswith('{"type":"summary"'):
                summary = json.loads(line)
    return summary, forks


def remove_stale_tmp(base):
    """Scratch directories of suites that were killed (named by their PID)."""
    for d in os.listdir(base):
        parts = d.split("-")
        if len(parts) == 4 and d.startswith("fh-bench-") and parts[2].isdigit():
            if not os.path.exists("/proc/" + parts[2]):
                shutil.rmtree(os.path.join(base, d), ignore_errors=True)


class Ctx:
    def __init__(self, args):
        self.args = args
        self.build = os.path.join(ROOT, args.build)
        self.built_fh = os.path.join(self.build, "forkhazard")
        self.bpftrace = shutil.which("bpftrace")
        base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
        remove_stale_tmp(base)
        self.tmp = tempfile.mkdtemp(prefix="fh-bench-%d-" % os.getpid(), dir=base)
        self.bin = os.path.join(self.tmp, "bin")
        self.fh = os.path.join(self.bin, "forkhazard")
        self.procs = Procs()

    def freeze_binaries(self, progs):
        """Run copies: the build directory is shared, and a rebuild or a
        `make clean` in the middle of the suite would otherwise mix binaries
        or fail runs. The BPF object is inside the forkhazard binary."""
        os.makedirs(self.bin, exist_ok=True)
        shutil.copy2(self.built_fh, self.fh)
        for name in progs:
            shutil.copy2(os.path.join(self.build, "bench", name), os.path.join(self.bin, name))

    def prog(self, name):
        return os.path.join(self.bin, name)


TRACER_COMMS = ("forkhazard", "bpftrace")


def foreign_tracers(procs):
    """"PID: command line" of the tracers on the machine that this suite did
    not start: other people's tests in a shared tree run forkhazard too, and a
    system-wide one may make every process pay for its probes."""
    ours = {p.pid for p in procs.procs}
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) in ours:
            continue
        try:
            with open("/proc/%s/comm" % d, "rb") as f:
                # Other people's tests name processes with any bytes.
                if f.read().decode(errors="replace").strip() not in TRACER_COMMS:
                    continue
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            if cmd:  # else a zombie: it traces nothing
                found.append("%s: %s" % (d, cmd[:200]))
        except OSError:
            pass
    return found


# ---- counting traps -----------------------------------------------------------

BPF_PROG_TYPE_KPROBE = 2	# uprobes and uretprobes are kprobe-type programs
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_ENABLE_STATS = 32
COUNT_IDLE_S = 0.25	# before SIGUSR1 and after the exit: the rate of hits not the benchmark's


def bpf_prog_infos(pid):
    """The fdinfo of each BPF program process pid holds open, as a dict
    (prog_id, prog_type, run_cnt, run_time_ns...); none if it is gone."""
    fds = "/proc/%d/fd" % pid
    try:
        names = os.listdir(fds)
    except OSError:
        return
    for fd in names:
        try:
            if os.readlink(os.path.join(fds, fd)) != "anon_inode:bpf-prog":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                yield dict(l.split(":", 1) for l in f if ":" in l)
        except OSError:
            continue


def probe_counters(pid):
    """(runs, run time in ns) summed over the uprobe programs that process
    pid holds open: every run is one trap, a uprobe's or a uretprobe's. The
    kernel writes both in each program fd's fdinfo (counted while BPF run-time
    statistics are on). (0, 0) when it is gone: the caller sees that it exited."""
    runs = ns = 0
    seen = set()
    for info in bpf_prog_infos(pid):
        if int(info.get("prog_type", -1)) != BPF_PROG_TYPE_KPROBE or info["prog_id"] in seen:
            continue
        seen.add(info["prog_id"])
        runs += int(info["run_cnt"])
        ns += int(info["run_time_ns"])
    return runs, ns


class BpfStats:
    """BPF run-time statistics on while counting, and as they were after,
    whatever happens. Preferably through a BPF_ENABLE_STATS file descriptor:
    the kernel keeps statistics on while it is open, counting it beside the
    kernel.bpf_stats_enabled sysctl and beside anyone else's, so another
    user turning the sysctl off cannot stop this count, and the suite dying
    closes it. Else through the sysctl, its old value written back after."""

    SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"

    def __init__(self):
        self.fd = self.old = None

    def __enter__(self):
        if SYS_BPF:
            libc = ctypes.CDLL(None, use_errno=True)
            attr = ctypes.create_string_buffer(8)	# enable_stats.type = BPF_STATS_RUN_TIME (0)
            fd = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(BPF_ENABLE_STATS), attr,
                              ctypes.c_long(len(attr)))
            if fd >= 0:
                self.fd = fd
                return self
        with open(self.SYSCTL) as f:
            self.old = f.read().strip()
        if self.old != "1":
            with open(self.SYSCTL, "w") as f:
                f.write("1")
        return self

    def __exit__(self, *exc):
        if self.fd is not None:
            os.close(self.fd)
        elif self.old is not None and self.old != "1":
            with open(self.SYSCTL, "w") as f:
                f.write(self.old)
        return False


def follow_counting(bench, pid, snap, deadline):
    """A counting run's output as it comes: at each {"pause":..} line read the
    counters (snap) and let the program go on; at each {"mark":..} line read
    them. Returns the rest of the output."""
    fd = bench.stdout.fileno()	# nothing buffered: the program printed its ready line only
    buf, out = b"", []
    while True:
        if time.monotonic() > deadline:
            raise BenchError("counting run did not finish in time")
        if not select.select([fd], [], [], 0.1)[0]:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            snap("exit")	# at once: a tracer may exit with the program
            break
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            text = line.decode(errors="replace")
            if text.startswith('{"pause"'):
                d = json.loads(text)
                snap("%s:%d" % (d["pause"], d["loop"]))
                os.kill(pid, signal.SIGUSR1)
            elif text.startswith('{"mark"'):
                snap("mark:" + json.loads(text)["mark"])
            else:
                out.append(text)
    bench.wait(timeout=max(1, deadline - time.monotonic()))
    time.sleep(COUNT_IDLE_S)
    snap("idle-after")
    return "\n".join(out + [buf.decode(errors="replace")])


def trap_counts(group, sizes, results, snaps):
    """Per benchmark of a counting run: the probes' hits over its loop, less
    what the same time took while the benchmark was not running (before it
    started and after it exited: other processes' hits, in the system-wide
    modes and under bpftrace, whose probes are on every process), per
    operation."""
    at = {label: (t, runs, ns) for label, t, runs, ns in snaps}
    idle = [(at[a], at[z]) for a, z in (("idle", "go"), ("exit", "idle-after"))
            if at[a][1] is not None and at[z][1] is not None]
    rate = sum(z[1] - a[1] for a, z in idle) / max(sum(z[0] - a[0] for a, z in idle), 1e-3)
    counts = {}
    for i, b in enumerate(sizes):
        a, z = group.count_span(i, b, at)
        if a not in at or z not in at:
            raise BenchError("counting run of %s: no %s/%s in its output" % (b, a, z))
        if at[a][1] is None or at[z][1] is None:
            continue	# the tracer was gone: not counted
        raw = at[z][1] - at[a][1]
        background = rate * (at[z][0] - at[a][0])
        ops = results[b].get("ops", results[b]["n"])
        traps = max(0.0, raw - background)
        counts[b] = {"ops": ops, "hits": raw, "background": round(background, 1),
                     "traps_per_op": traps / ops if ops else None,
                     "bpf_ns_per_hit": (at[z][2] - at[a][2]) / raw if raw else None}
    return counts


def run_job(ctx, group, mode, sizes, timeout, count=False):
    """Run one group's program once under one mode. Returns (results, info).
    count: a counting run (BPF statistics on, the program pausing at its
    loops' edges): info["counts"] has each benchmark's traps per operation."""
    argv, stdin_path, env = group.command(ctx, sizes)
    if count:
        env = dict(env or os.environ, FH_BENCH_PAUSE="1")
    procs = ctx.procs
    info = {}
    foreign = set(foreign_tracers(procs))
    decoy = tracer = bench = None
    stdin = open(stdin_path) if stdin_path else subprocess.DEVNULL
    errlog = os.path.join(ctx.tmp, "bench.err")
    trlog = os.path.join(ctx.tmp, "tracer.log")
    trout = os.path.join(ctx.tmp, "tracer.out")
    try:
        with open(errlog, "w") as err:
            bench = procs.start(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=err, text=True,
                                env=env)
        ready = json.loads(read_line(bench, 20, argv[0]))
        pid = ready["ready"]
        if mode.wants_decoy:
            decoy = procs.start([ctx.prog("locks"), "--wait", "mutex:1"], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
            decoy_pid = json.loads(read_line(decoy, 20, "decoy"))["ready"]
        if mode.tracer:
            subst = {"{pid}": str(pid), "{decoy}": str(decoy_pid) if decoy else ""}
            targs = [subst.get(a, a) for a in mode.args]
            if mode.tracer == "fh":
                cmd, ready_text, log = [ctx.fh, "-j", "-o", trout] + targs, "Tracing", trlog
                with open(trlog, "w") as log_f:
                    tracer = procs.start(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log_f)
            else:
                cmd = [ctx.bpftrace, "-p", str(pid), os.path.join(BENCH, "bpftrace", "mutex.bt")]
                ready_text, log = "bpftrace: tracing", trlog
                with open(trlog, "w") as log_f:
                    tracer = procs.start(cmd, stdin=subprocess.DEVNULL, stdout=log_f,
                                         stderr=subprocess.STDOUT)
            info["startup_s"] = wait_for_text(log, ready_text, tracer, 30, mode.tracer)
        snaps = []

        def snap(label):
            runs, ns = probe_counters(tracer.pid)
            last = next((x[2] for x in reversed(snaps) if x[2] is not None), 0)
            # bpftrace -p exits with the benchmark: its counters go with it
            # (a count that went down was read while its fds were closing)
            gone = tracer.poll() is not None or runs < last
            snaps.append((label, time.monotonic()) + ((None, None) if gone else (runs, ns)))
        if count:
            snap("idle")
            time.sleep(COUNT_IDLE_S)
            snap("go")
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        hwm = None
        while not count and bench.poll() is None:
            if time.monotonic() > deadline:
                raise BenchError("%s did not finish within %.0f s" % ("/".join(sizes), timeout))
            if tracer:
                hwm = vmhwm_kb(tracer.pid) or hwm
            try:
                bench.wait(timeout=0.1)
            except subprocess.TimeoutExpired:
                pass
        out = follow_counting(bench, pid, snap, deadline) if count else bench.stdout.read()
        foreign.update(foreign_tracers(procs))
        info["foreign_tracers"] = sorted(foreign)
        if bench.returncode != 0:
            raise BenchError("%s exited %s: %s" % (argv[0], bench.returncode, tail(errlog)))
        results = group.parse(ctx, sizes, out)
        if count:
            info["counts"] = trap_counts(group, sizes, results, snaps)
        if tracer:
            hwm = vmhwm_kb(tracer.pid) or hwm
            info["vmhwm_kb"] = hwm
            stop_s = procs.stop(tracer, ctx.args.stop_timeout)
            if stop_s is None:
                raise BenchError("%s still running %ss after SIGINT: killed" % (
                    mode.tracer, ctx.args.stop_timeout))
            info["stop_s"] = stop_s
            if mode.tracer == "fh":
                if tracer.returncode != 0:
                    raise BenchError("forkhazard exited %s: %s" % (tracer.returncode, tail(trlog)))
                summary, forks = scan_fh_output(trout, pid)
                if summary is None:
                    raise BenchError("forkhazard printed no summary: %s" % tail(trlog))
                info["summary"] = {k: summary.get(k) for k in
                                   ("forks", "mt_forks", "hazards", "deadlocks", "lost")}
                info["summary"]["dropped"] = summary.get("dropped")
                info["fork_events"] = forks
        return results, info
    finally:
        for p in (bench, tracer, decoy):
            if p:
                procs.kill(p)
        if stdin_path:
            stdin.close()
        for path in (trout,):
            if os.path.exists(path):
                os.unlink(path)


def build_progs(ctx):
    """Build bench/progs/*.c into BUILD/bench/; returns their names."""
    out = os.path.join(ctx.build, "bench")
    os.makedirs(out, exist_ok=True)
    common = os.path.join(BENCH, "progs", "common.h")
    names = sorted({b for g in GROUPS for b in g.builds} | {"locks"})
    for name in names:
        src = os.path.join(BENCH, "progs", name + ".c")
        dst = os.path.join(out, name)
        if os.path.exists(dst) and os.path.getmtime(dst) >= max(os.path.getmtime(src),
                                                                 os.path.getmtime(common)):
            continue
        cmd = [os.environ.get("CC", "cc"), "-std=c11", "-O2", "-g", "-fno-omit-frame-pointer",
               "-Wall", "-Wextra", "-D_GNU_SOURCE", "-pthread", src, "-o", dst]
        print("  " + " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    return names


def read_int(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def machine_calibration(ctx, notes, log):
    """`forkhazard calibrate --json`: what a trap costs on this machine, the
    unit in which traced costs carry to another one. None if it fails."""
    try:
        p = subprocess.run([ctx.fh, "calibrate", "--json"], capture_output=True, text=True,
                           timeout=30)
        cal = json.loads(p.stdout) if p.returncode == 0 else None
    except (OSError, subprocess.SubprocessError, ValueError):
        cal = p = None
    if not cal or "costs_ns" not in cal:
        notes.append("forkhazard calibrate failed (%s): no traps' worth column" % (
            tail_text(p.stderr) if p else "did not run"))
        log("calibration FAILED")
        return None
    log("calibration (ns of CPU time per call over an unprobed call): " + ", ".join(
        "%s %.0f" % (k, v) for k, v in cal["costs_ns"].items()) +
        (", nop5 optimized" if cal.get("nop5_optimized") else ""))
    return cal


def tail_text(text, n=300):
    return " ".join(text.split())[-n:]


def select_modes(ctx, args):
    help_text = subprocess.run([ctx.fh, "--help"], capture_output=True, text=True,
                               timeout=10).stdout
    modes, notes = [], []
    for m in MODES:
        if args.modes and m.name not in args.modes and m.name != "bare":
            continue
        if m.needs and m.needs not in help_text:
            continue
        if m.tracer == "bpftrace" and not ctx.bpftrace:
            notes.append("bpftrace is not installed: mode bpftrace skipped "
                         "(scripts/deps.sh bench installs it)")
            continue
        modes.append(m)
    return modes, notes


CAL_MIN_S = 0.03	# a calibration run shorter than this is grown and rerun


def calibrate(ctx, group, benches, mode, target):
    """Sizes for one mode: runs from n0 up, until each lasts CAL_MIN_S, give
    the cost of one operation, and a measured run is sized to last about
    `target` seconds, within bounds. Returns (sizes, expected seconds)."""
    q = 1 if ctx.args.quick else 0
    sizes = {b.name: b.n0 for b in benches}
    per_op = {}
    for _ in range(5):
        res, _ = run_job(ctx, group, mode, sizes, ctx.args.timeout)
        grow = {}
        for b in benches:
            elapsed = res[b.name]["elapsed_ns"] / 1e9
            per_op[b.name] = res[b.name]["elapsed_ns"] / res[b.name]["n"]
            # Too short to trust (timer resolution, a late wake-up): grow it.
            if elapsed < CAL_MIN_S and sizes[b.name] < b.nmax[q]:
                factor = min(1000, max(2, 2 * CAL_MIN_S / max(elapsed, 1e-6)))
                grow[b.name] = min(b.nmax[q], int(sizes[b.name] * factor))
        if not grow:
            break
        sizes.update(grow)
    out = {b.name: max(b.nmin, min(b.nmax[q], int(target * 1e9 / max(per_op[b.name], 1e-3))))
           for b in benches}
    return out, sum(out[b] * per_op[b] for b in out) / 1e9


def count_traps(ctx, group, benches, gmodes, sizes, timeouts, failures, log):
    """One counting run per traced mode, before its timed runs: BPF
    statistics on only there, so that they never slow a timed run."""
    counts = {}
    for m in gmodes:
        if not m.tracer or m.name not in sizes or ctx.args.no_count or \
                (ctx.args.quick and not group.count_in_quick):
            continue
        try:
            with BpfStats():
                _, info = run_job(ctx, group, m, sizes[m.name], timeouts[m.name], count=True)
        except (BenchError, OSError) as e:
            failures.append({"group": benches[0].name, "mode": m.name, "stage": "counting",
                             "error": str(e)})
            log("  %-12s counting FAILED: %s" % (m.name, e))
            continue
        for b, c in info["counts"].items():
            counts[(b, m.name)] = c
        log("  %-12s traps/op %s" % (m.name, " ".join(
            "%s=%s" % (b, fmt_traps(c["traps_per_op"])) for b, c in info["counts"].items())))
    return counts


# --quick (without --modes) leaves out the modes that are there for
# comparison (the original probe placement; probes on every process, which
# costs the benchmark what fh-p does), and runs the peer and the untraced
# case on the lock loops only.
QUICK_SKIPS = ("fh-p-entry", "fh-track-all")
QUICK_LOCKS_ONLY = ("bpftrace", "fh-other")


def run_suite(ctx, modes, benches_wanted, log):
    args = ctx.args
    runs, failures, sizes_used, counts = [], [], {}, {}
    target = args.target if args.target else (0.1 if args.quick else 0.4)
    for group in GROUPS:
        benches = [b for b in group.benches if b.name in benches_wanted]
        if not benches:
            continue
        gmodes = [m for m in modes if any(b.runs_in(m.name) for b in benches)]
        if args.quick and not args.modes:
            gmodes = [m for m in gmodes if m.name not in QUICK_SKIPS and
                      (isinstance(group, Locks) or m.name not in QUICK_LOCKS_ONLY)]
        log("\n== %s" % ", ".join(b.name for b in benches))
        sizes, timeouts = {}, {}
        for m in gmodes:
            if m.name == "bare2" and "bare" in sizes:
                # bare again, to the operation: only the moment differs
                sizes[m.name], timeouts[m.name] = sizes["bare"], timeouts["bare"]
                continue
            if all(b.fixed for b in benches):
                sizes[m.name] = {b.name: b.fixed[1 if args.quick else 0] for b in benches}
                timeouts[m.name] = args.timeout
                continue
            try:
                sizes[m.name], expected = calibrate(ctx, group, benches, m, target)
                timeouts[m.name] = min(args.timeout, 20 + 10 * expected)
            except BenchError as e:
                failures.append({"group": benches[0].name, "mode": m.name, "stage": "calibration",
                                 "error": str(e)})
                log("  %-12s calibration FAILED: %s" % (m.name, e))
        for m in gmodes:
            if m.name in sizes:
                sizes_used.setdefault(m.name, {}).update(sizes[m.name])
                log("  %-12s sizes %s" % (m.name, " ".join("%s=%s" % kv for kv in sizes[m.name].items())))
        counts.update(count_traps(ctx, group, benches, gmodes, sizes, timeouts, failures, log))
        failed = set()
        for rep in range(args.reps):
            line = []
            for m in gmodes:
                # A mode that failed once is not run again for this group:
                # a tracer that cannot keep up would eat the time budget.
                if m.name not in sizes or m.name in failed:
                    continue
                try:
                    res, info = run_job(ctx, group, m, sizes[m.name], timeouts[m.name])
                except BenchError as e:
                    failures.append({"group": benches[0].name, "mode": m.name, "rep": rep,
                                     "error": str(e)})
                    # bare is needed for every ratio: it always gets another go.
                    if m.name != "bare":
                        failed.add(m.name)
                    line.append("%s FAILED" % m.name)
                    log("  rep %d %s FAILED%s: %s" % (
                        rep + 1, m.name, "" if m.name == "bare" else " (not run again here)", e))
                    continue
                for b in benches:
                    r = res[b.name]
                    runs.append(dict(r, bench=b.name, mode=m.name, rep=rep,
                                     ns_per_op=r["elapsed_ns"] / r["n"], **info))
                line.append("%s %s" % (m.name, "/".join(
                    fmt_ns(res[b.name]["elapsed_ns"] / res[b.name]["n"]) for b in benches)))
            log("  rep %d: %s" % (rep + 1, ", ".join(line)))
    return runs, failures, sizes_used, counts


def storm_100k(ctx, runs, log):
    """forkhazard -p through a storm of at least --storm-events forks: its
    peak memory and loss after that many events."""
    want = ctx.args.storm_events
    # Sized on the events the tool delivered in the short storms, not on the
    # forks (it may lose some), with a margin: its loss varies with the load.
    rates = [r["fork_events"] / (r["elapsed_ns"] / 1e9) for r in runs
             if r["bench"] == "forkstorm" and r["mode"] == "fh-p"]
    if not rates:
        return None
    secs = min(45, max(5, math.ceil(want * 1.8 / max(median(rates), 1))))
    log("\n== forkstorm of %d s under fh-p (aiming at %d events)" % (secs, want))
    mode = next(m for m in MODES if m.name == "fh-p")
    res, info = run_job(ctx, ForkStorm(), mode, {"forkstorm": secs}, secs + 120)
    r = res["forkstorm"]
    out = dict(r, **info)
    log("  %d forks in %.1f s, %d fork events, lost %s, peak RSS %s kB"
        % (r["n"], r["elapsed_ns"] / 1e9, info["fork_events"], info["summary"]["lost"],
           info["vmhwm_kb"]))
    return out


# ---- reporting --------------------------------------------------------------


def fmt_ns(ns):
    if ns is None:
        return "-"
    if ns >= 1e6:
        return "%.2f ms" % (ns / 1e6)
    if ns >= 1e3:
        return "%.2f us" % (ns / 1e3)
    return "%.1f ns" % ns


# A count from which more than this share was subtracted as other processes'
# hits is marked "~": it is as good as the background's steadiness.
NOISY_BACKGROUND = 0.2


def fmt_traps(t, count=None):
    if t is None:
        return "-"
    if t == 0:
        return "0"
    approx = "~" if count and count["hits"] and \
        count["background"] > NOISY_BACKGROUND * count["hits"] else ""
    return approx + ("%.2f" % t if t < 100 else "%.0f" % t)


def fmt_ratio(r):
    if r is None:
        return "-"
    if r >= 100:
        return "%.0f" % r
    if r >= 10:
        return "%.1f" % r
    return "%.2f" % r


def fmt_n(n):
    if n >= 1_000_000:
        return ("%.2f" % (n / 1e6)).rstrip("0").rstrip(".") + "M"
    if n >= 10_000:
        return ("%.1f" % (n / 1e3)).rstrip("0").rstrip(".") + "k"
    return str(n)


def summarize(runs, modes, benches_wanted, counts, emulated_ns):
    """Per bench and mode: medians and ratios to bare paired by repetition,
    traps per operation from the counting runs, and the added cost in units
    of the calibrated emulated-instruction hit (emulated_ns; None: unknown)."""
    rows = []
    by = {}
    for r in runs:
        by.setdefault((r["bench"], r["mode"]), {})[r["rep"]] = r
    for bench in benches_wanted:
        bare = by.get((bench, "bare"), {})
        for m in modes:
            mine = by.get((bench, m.name))
            if not mine:
                continue
            paired = [k for k in mine if k in bare]
            ratios = [mine[k]["ns_per_op"] / bare[k]["ns_per_op"] for k in paired]
            added = median([mine[k]["ns_per_op"] - bare[k]["ns_per_op"] for k in paired])
            c = counts.get((bench, m.name), {})
            row = {
                "bench": bench, "mode": m.name, "reps": len(mine),
                "foreign_runs": sum(1 for x in mine.values() if x.get("foreign_tracers")),
                "n": sorted({x["n"] for x in mine.values()}),
                "ns_per_op_median": median([x["ns_per_op"] for x in mine.values()]),
                "ratio_median": median(ratios), "ratio_min": min(ratios) if ratios else None,
                "ratio_max": max(ratios) if ratios else None,
                "added_ns_per_op_median": added,
                # nothing traced, nothing trapped; else the counting run's
                "traps_per_op": 0.0 if m.tracer is None else c.get("traps_per_op"),
                "bpf_ns_per_hit": c.get("bpf_ns_per_hit"),
                "count": c or None,
                "traps_worth": added / emulated_ns if added is not None and emulated_ns
                else None,
            }
            if bench == "service":
                row["ops_per_s_median"] = median([x["n"] / x["elapsed_ns"] * 1e9
                                                  for x in mine.values()])
                row["ops_per_s_before_median"] = median([x["ops_before"] / x["before_ns"] * 1e9
                                                         for x in mine.values()])
                row["throughput_vs_bare_median"] = median([1 / r for r in ratios])
                row["throughput_vs_bare_min"] = min(1 / r for r in ratios) if ratios else None
            if bench == "report":
                row["seconds_median"] = median([x["elapsed_ns"] / 1e9 for x in mine.values()])
                row["seconds_min"] = min(x["elapsed_ns"] / 1e9 for x in mine.values())
                row["seconds_max"] = max(x["elapsed_ns"] / 1e9 for x in mine.values())
                row["cpu_s_median"] = median([x["cpu_ns"] / 1e9 for x in mine.values()])
                row["max_rss_mb"] = max(x["max_rss_kb"] for x in mine.values()) / 1024
                row["mb"] = next(iter(mine.values()))["bytes"] / 1e6
            if bench == "forkstorm":
                row["forks_per_s_median"] = median([x["n"] / (x["elapsed_ns"] / 1e9)
                                                    for x in mine.values()])
                if m.tracer == "fh":
                    # Totals over the repetitions: a loss shows whatever rep it is in.
                    row["forks_total"] = sum(x["n"] for x in mine.values())
                    row["fork_events_total"] = sum(x["fork_events"] for x in mine.values())
                    row["missed_total"] = row["forks_total"] - row["fork_events_total"]
                    for k in ("lost", "hazards", "mt_forks"):
                        row[k + "_total"] = sum(x["summary"][k] for x in mine.values())
            rows.append(row)
    # Untraced modes are judged against how far bare strays from itself in
    # the same run: the range of bare2's ratios.
    for bench in benches_wanted:
        b2 = next((r for r in rows if r["bench"] == bench and r["mode"] == "bare2"), None)
        for r in rows:
            if r["bench"] == bench and b2 and b2["ratio_min"] is not None and \
                    r["ratio_median"] is not None:
                r["within_bare_spread"] = b2["ratio_min"] <= r["ratio_median"] <= b2["ratio_max"]
    tracer = []
    for m in modes:
        mine = [r for r in runs if r["mode"] == m.name and "startup_s" in r]
        if mine:
            # The lock loops share one process and one tracer: count it once.
            per_proc = {}
            for r in mine:
                per_proc[(r["rep"], "locks" if r["bench"] in Locks.loops else r["bench"])] = r
            tracer.append({
                "mode": m.name, "runs": len(per_proc),
                "startup_ms_median": median([r["startup_s"] * 1e3 for r in per_proc.values()]),
                "startup_ms_max": max(r["startup_s"] * 1e3 for r in per_proc.values()),
                "vmhwm_mb_max": max((r.get("vmhwm_kb") or 0) for r in per_proc.values()) / 1024,
                "stop_ms_median": median([r["stop_s"] * 1e3 for r in per_proc.values()]),
                "stop_ms_max": max(r["stop_s"] * 1e3 for r in per_proc.values()),
            })
    return rows, tracer


def markdown(meta, rows, tracer, storm, modes, failures, notes, foreign_seen):
    L = []
    L.append("# forkhazard benchmarks, %s" % meta["date"])
    L.append("")
    L.append("%s; kernel %s, %d cores; %s (commit %s, built %s); %s; %d repetitions%s; "
             "the suite took %.0f s; load average %.1f at its start, %.1f at its end." % (
                 meta["machine"], meta["kernel"], meta["cores"], meta["forkhazard"],
                 meta["commit"], meta["forkhazard_built"], meta["bpftrace"] or "no bpftrace",
                 meta["reps"], ", --quick" if meta["quick"] else "", meta["elapsed_s"],
                 meta["load_start"], meta["load_end"]))
    L.append("")
    L.append("Modes, run alternately in each repetition:")
    L.append("")
    for m in modes:
        L.append("- `%s`: %s" % (m.name, m.desc))
    L.append("")
    L.append("Benchmarks:")
    L.append("")
    for g in GROUPS:
        for b in g.benches:
            if any(r["bench"] == b.name for r in rows):
                L.append("- `%s` (per %s): %s" % (b.name, b.unit, b.title))
    L.append("")
    cal = meta.get("calibration")
    emulated = cal["costs_ns"].get("uprobe_emulated") if cal else None
    L.extend(calibration_md(cal))
    cost_rows = [r for r in rows if r["bench"] not in ("forkstorm", "service", "report")]
    if cost_rows:
        L += cost_table(cost_rows, emulated)
    svc = [r for r in rows if r["bench"] == "service"]
    if svc:
        L += md_section("A real service", "bench/progs/pyservice.py: a Python ThreadPoolExecutor "
                        "service whose 2 tasks take one threading.Lock in a loop, pinned to one "
                        "CPU; it forks a worker once while they run (which arms the adaptive "
                        "default's lock probes), then runs %s s before its throughput is counted "
                        "over %s s. `throughput vs bare`: bare's time per operation / this mode's, "
                        "paired by repetition: median and min. traps/op is over the measured "
                        "window." % (meta["service_settle"], meta["service_window"]))
        L.append("| mode | ops/s before the fork (median) | ops/s after (median) | throughput vs "
                 "bare (median) | (min) | traps/op | traps' worth |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for r in svc:
            L.append(md_row(
                r["mode"], fmt_rate(r["ops_per_s_before_median"]), fmt_rate(r["ops_per_s_median"]),
                fmt_ratio(r["throughput_vs_bare_median"]) + mark(r),
                fmt_ratio(r["throughput_vs_bare_min"]), fmt_traps(r["traps_per_op"], r["count"]),
                fmt_worth(r)))
    storm_rows = [r for r in rows if r["bench"] == "forkstorm"]
    if storm_rows:
        L += md_section("Fork storm", "A 2-thread process (its worker holding a lock) forks and "
                        "reaps as fast as it can for %s s. ratio = time per fork / bare's. Counts "
                        "are totals over the repetitions: `forks` the storm made, `events` the "
                        "tool's \"fork\" events for the storm's PID, `missed` = forks - events; "
                        "`lost`, `hazards` and `mt_forks` come from forkhazard's summaries "
                        "(system-wide modes count every process's forks in mt_forks)."
                        % storm_rows[0]["n_seconds"])
        L.append("| mode | forks/s (median) | ratio (median) | ratio (min) | forks | events | "
                 "missed | lost | hazards | mt_forks |")
        L.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in storm_rows:
            L.append("| %s | %.0f | %s%s | %s | %s | %s | %s | %s | %s | %s |" % (
                r["mode"], r["forks_per_s_median"], fmt_ratio(r["ratio_median"]), mark(r),
                fmt_ratio(r["ratio_min"]), fmt_opt(r.get("forks_total")),
                fmt_opt(r.get("fork_events_total")), fmt_opt(r.get("missed_total")),
                fmt_opt(r.get("lost_total")), fmt_opt(r.get("hazards_total")),
                fmt_opt(r.get("mt_forks_total"))))
    rep_rows = [r for r in rows if r["bench"] == "report"]
    if rep_rows:
        r = rep_rows[0]
        L += md_section("Reading a recording", "`forkhazard report FILE` over a made-up "
                        "recording as -j -o writes it (tests/jsonl_gen.py), from exec to "
                        "exit, its output discarded: wall time over the repetitions, CPU time "
                        "(user + system) and peak RSS.")
        L.append("| events | file | time (median) | (min-max) | events/s | CPU (median) | "
                 "peak RSS |")
        L.append("|---:|---:|---:|---:|---:|---:|---:|")
        L.append("| %s | %.0f MB | %.2f s | %.2f-%.2f s | %s | %.2f s | %.1f MB |" % (
            fmt_n(r["n"][0]), r["mb"], r["seconds_median"], r["seconds_min"], r["seconds_max"],
            fmt_rate(r["n"][0] / r["seconds_median"]), r["cpu_s_median"], r["max_rss_mb"]))
    if tracer:
        L.append("")
        L.append("## The tracer itself")
        L.append("")
        L.append("Start-up: from exec to the line saying it traces (forkhazard: \"Tracing\" on "
                 "stderr; bpftrace: its BEGIN probe). Stop: from SIGINT to exit, once the "
                 "benchmark is over (forkhazard drains its events first). Peak RSS: VmHWM, "
                 "read just before the tracer is stopped, max over all its runs.")
        L.append("")
        L.append("| mode | runs | start-up (median) | start-up (max) | stop (median) | stop (max) "
                 "| peak RSS (max) |")
        L.append("|---|---:|---:|---:|---:|---:|---:|")
        for t in tracer:
            L.append("| %s | %d | %.0f ms | %.0f ms | %.0f ms | %.0f ms | %.1f MB |" % (
                t["mode"], t["runs"], t["startup_ms_median"], t["startup_ms_max"],
                t["stop_ms_median"], t["stop_ms_max"], t["vmhwm_mb_max"]))
    if storm:
        L.append("")
        L.append("Long storm under fh-p: %d forks in %.1f s (%.0f/s), %d fork events, lost %s, "
                 "peak RSS %.1f MB." % (storm["n"], storm["elapsed_ns"] / 1e9,
                                         storm["n"] / (storm["elapsed_ns"] / 1e9),
                                         storm["fork_events"], storm["summary"]["lost"],
                                         (storm["vmhwm_kb"] or 0) / 1024))
    if any(r.get("foreign_runs") for r in rows):
        notes = notes + ["(N*): in N of the repetitions another forkhazard or bpftrace, not "
                         "started by this suite, was running on the machine (\"foreign_tracers\" "
                         "in the JSON): depending on its options, it may have made every "
                         "process pay for its probes, bare included. Seen: " +
                         "; ".join("`%s`" % printable(c) for c in foreign_seen[:3]) +
                         (" and %d more" % (len(foreign_seen) - 3) if len(foreign_seen) > 3
                          else "")]
    if notes or failures:
        L.append("")
        L.append("## Notes")
        L.append("")
        for n in notes:
            L.append("- " + n)
        for f in failures:
            L.append("- FAILED: %s" % json.dumps(f))
    return "\n".join(L) + "\n"


def cost_table(rows, emulated):
    L = []
    L.append("## Cost per operation")
    L.append("")
    L.append("ratio = this mode's time per operation / bare's, in the same repetition: median, "
             "and min-max over repetitions; `bare2` is bare again, so its range is how far bare "
             "strays from itself in this run, and `in spread` says whether a mode's median "
             "ratio lies within it. `ops/run` differs between modes where a traced run would "
             "take too long at bare's size (sizes are calibrated per mode): the ratio then "
             "compares costs per operation.")
    L.append("")
    L.append("`traps/op`: uprobe and uretprobe hits per operation (all threads' operations), "
             "from the tracer's probe programs' run counters in a separate counting run of "
             "the mode, less the rate at which they ran while the benchmark was not running "
             "(other processes' hits, in system-wide modes and under bpftrace, whose probes "
             "are on every process); `~`: more than %d%% of the hits were subtracted so, as "
             "good as that rate was steady; 0 by definition without a tracer. `BPF/hit`: the "
             "probe programs' own run time per hit. `traps' worth`: the added time per "
             "operation (median of mode - bare, paired by repetition) divided by the "
             "calibrated cost of one emulated-instruction hit%s: multiply by another "
             "machine's `forkhazard calibrate` emulated cost to carry the result there."
             % (NOISY_BACKGROUND * 100, " (%.0f ns)" % emulated if emulated else ""))
    L.append("")
    L.append("| benchmark | mode | ops/run | time/op (median) | ratio (median) | ratio (min-max) "
             "| in spread | traps/op | BPF/hit | traps' worth |")
    L.append("|---|---|---:|---:|---:|---:|:-:|---:|---:|---:|")
    for r in rows:
        L.append(md_row(
            r["bench"] + " (" + unit_of(r["bench"]) + ")", r["mode"],
            "/".join(fmt_n(n) for n in r["n"]), fmt_ns(r["ns_per_op_median"]),
            fmt_ratio(r["ratio_median"]) + mark(r),
            fmt_ratio(r["ratio_min"]) + "-" + fmt_ratio(r["ratio_max"]), fmt_spread(r),
            fmt_traps(r["traps_per_op"], r["count"]),
            fmt_ns(r["bpf_ns_per_hit"] if (r["traps_per_op"] or 0) >= 0.01 else None),
            fmt_worth(r)))
    return L


def calibration_md(cal):
    if not cal:
        return []
    c = cal["costs_ns"]
    what = [("syscall", "system call (getppid)"),
            ("uprobe_emulated", "uprobe on an instruction the kernel emulates (`push`)"),
            ("uprobe_single_step", "uprobe on one it single-steps (`mov`)"),
            ("uprobe_nop5", "uprobe on a 5-byte nop (%s)" % (
                "optimized into a call" if cal.get("nop5_optimized") else "not optimized")),
            ("uprobe_uretprobe_pair", "uprobe + uretprobe (two traps)")]
    L = ["## This machine's trap costs", "",
         "`forkhazard calibrate` at the suite's start: ns of CPU time per call over the same "
         "call unprobed, median of its batches (docs/json.md, \"calibration\").", "",
         "| trap | ns |", "|---|---:|"]
    L += [md_row(label, "%.0f" % c[k]) for k, label in what if k in c]
    if "uretprobe_ns" in cal:
        L.append(md_row("the uretprobe alone (pair - emulated)", "%.0f" % cal["uretprobe_ns"]))
    return L + [""]


def md_section(title, intro):
    return ["", "## " + title, "", intro, ""]


def md_row(*cells):
    return "| " + " | ".join(cells) + " |"


def fmt_spread(row):
    v = row.get("within_bare_spread")
    return "-" if v is None or row["mode"] in ("bare", "bare2") else "yes" if v else "no"


def fmt_worth(row):
    """Only where the mode trapped: elsewhere it would be the noise of the
    ratio column in other units."""
    w = row.get("traps_worth")
    if w is None or (row["traps_per_op"] or 0) < 0.01:
        return "-"
    return "%.2f" % w if abs(w) < 100 else "%.0f" % w


def fmt_rate(v):
    if v is None:
        return "-"
    return "%.2fM" % (v / 1e6) if v >= 1e6 else "%.0fk" % (v / 1e3) if v >= 1e4 else "%.0f" % v


def printable(text):
    """Other people's command lines, safe inside a Markdown code span."""
    return "".join(c if c.isprintable() and c != "`" else "?" for c in text)


def mark(row):
    """A footnote mark on numbers taken while someone else's tracer ran."""
    return " (%d*)" % row["foreign_runs"] if row.get("foreign_runs") else ""


def fmt_opt(v):
    if v is None:
        return "-"
    return "%d" % v if float(v).is_integer() else "%.1f" % v


def unit_of(bench):
    for g in GROUPS:
        for b in g.benches:
            if b.name == bench:
                return b.unit
    return "op"


def write_results(args, md, data):
    out = os.path.join(ROOT, args.out) if not os.path.isabs(args.out) else args.out
    os.makedirs(out, exist_ok=True)
    stamp = data["meta"]["stamp"]
    for ext, text in (("md", md), ("json", json.dumps(data, indent=1) + "\n")):
        for name in ("%s%s.%s" % (stamp, "-quick" if args.quick else "", ext), "latest." + ext):
            path = os.path.join(out, name)
            with open(path + ".tmp", "w") as f:
                f.write(text)
            os.replace(path + ".tmp", path)
    return os.path.join(out, "latest.md")


def machine_meta(ctx, args):
    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10,
                                  cwd=ROOT).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "date": now.strftime("%Y-%m-%d %H:%M UTC"), "stamp": now.strftime("%Y-%m-%dT%H%M%SZ"),
        "machine": cpu or platform.machine(), "kernel": platform.release(),
        "cores": os.cpu_count(), "forkhazard": out([ctx.fh, "--version"]),
        "commit": (out(["git", "rev-parse", "--short", "HEAD"]) or "?") +
        (" + uncommitted changes" if out(["git", "status", "--porcelain", "--untracked-files=no",
                                          "--", "src", "bpf", "include"]) else ""),
        "forkhazard_built": datetime.datetime.fromtimestamp(
            os.path.getmtime(ctx.built_fh), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        if os.path.exists(ctx.built_fh) else "?",
        "bpftrace": out([ctx.bpftrace, "--version"]) if ctx.bpftrace else None,
        "python": platform.python_version(), "sqlite3": out(["sqlite3", "--version"]).split(" ")[0],
        "reps": args.reps, "quick": args.quick, "load_start": os.getloadavg()[0],
        "service_before": args.service_before, "service_settle": args.service_settle,
        "service_window": Service.benches[0].fixed[1 if args.quick else 0],
    }


def main():
    build_groups()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build", help="build directory (default build)")
    ap.add_argument("--quick", action="store_true", help="smaller runs, 3 repetitions, fewer modes (bench/README.md): ~3-4 min")
    ap.add_argument("--only", action="append", default=[],
                    help="benchmarks to run, comma-separated (%s; 'locks' for the lock "
                    "loops, 'python' for every interpreter)" % ", ".join(ALL_BENCHES))
    ap.add_argument("--modes", default="", help="modes to run, comma-separated (bare always "
                    "runs): " + ", ".join(m.name for m in MODES))
    ap.add_argument("--reps", type=int, help="repetitions (default 5, --quick 3)")
    ap.add_argument("--target", type=float, help="seconds a calibrated run should last "
                    "(default 0.4, --quick 0.1)")
    ap.add_argument("--timeout", type=float, default=120, help="limit for one run, seconds")
    ap.add_argument("--stop-timeout", type=float,
                    help="seconds a tracer may take to stop after SIGINT (default 30, --quick 10)")
    ap.add_argument("--storm-events", type=int, default=100_000,
                    help="fork events for the long storm under fh-p (0: none; never in --quick)")
    ap.add_argument("--out", default="bench/results", help="where results go")
    ap.add_argument("--no-count", action="store_true",
                    help="no counting runs (traps per operation)")
    ap.add_argument("--service-before", type=float,
                    help="service: seconds before its fork (default 0.5, --quick 0.2)")
    ap.add_argument("--service-settle", type=float,
                    help="service: seconds between its fork and the measured window, for the "
                    "tool to attach and the governor to act: its first window after "
                    "arming is 1 s (default 3, --quick 2)")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 if any run failed (default: report it and exit 0)")
    args = ap.parse_args()
    args.reps = args.reps or (3 if args.quick else 5)
    args.stop_timeout = args.stop_timeout or (10 if args.quick else 30)
    if args.service_before is None:
        args.service_before = 0.2 if args.quick else 0.5
    if args.service_settle is None:
        args.service_settle = 2.0 if args.quick else 3.0
    args.modes = [m for m in args.modes.split(",") if m]
    wanted = []
    for item in ",".join(args.only).split(","):
        if not item:
            continue
        if item == "locks":
            wanted += list(Locks.loops)
        elif item == "python":
            wanted += [b.name for g in GROUPS if isinstance(g, Python) for b in g.benches]
        elif item in ALL_BENCHES:
            wanted.append(item)
        else:
            ap.error("unknown benchmark %r (known: %s, locks, python)"
                     % (item, ", ".join(ALL_BENCHES)))
    wanted = [b for b in ALL_BENCHES if b in wanted] if wanted else ALL_BENCHES
    unknown = [m for m in args.modes if m not in [x.name for x in MODES]]
    if unknown:
        ap.error("unknown mode(s) %s" % ", ".join(unknown))
    if os.geteuid() != 0:
        sys.exit("bench: run as root (BPF)")

    ctx = Ctx(args)
    if not os.access(ctx.built_fh, os.X_OK) or os.path.getsize(ctx.built_fh) == 0:
        sys.exit("bench: %s is missing: run make" % ctx.built_fh)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    # Started from a non-interactive shell's background job, we inherit
    # SIGINT ignored, and so would the tracers: an ignored SIGINT never
    # reaches forkhazard's signalfd. A handled one is reset at exec.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    t0 = time.monotonic()

    def log(msg):
        print("[%5.0fs] %s" % (time.monotonic() - t0, msg) if msg.strip() else msg, flush=True)

    try:
        ctx.freeze_binaries(build_progs(ctx))
        meta = machine_meta(ctx, args)
        modes, notes = select_modes(ctx, args)
        meta["calibration"] = machine_calibration(ctx, notes, log)
        if read_int(BpfStats.SYSCTL) == 1:
            notes.append("kernel.bpf_stats_enabled was 1 when the suite started (not set by "
                         "it): every BPF program run paid for its statistics in the timed runs "
                         "too")
        log("modes: %s; benchmarks: %s; %d repetitions" % (
            ", ".join(m.name for m in modes), ", ".join(wanted), args.reps))
        runs, failures, sizes, counts = run_suite(ctx, modes, wanted, log)
        storm = None
        if "forkstorm" in wanted and not args.quick and args.storm_events > 0 and \
                any(m.name == "fh-p" for m in modes):
            try:
                storm = storm_100k(ctx, runs, log)
            except BenchError as e:
                failures.append({"group": "forkstorm-long", "mode": "fh-p", "error": str(e)})
                log("  long storm FAILED: %s" % e)
    finally:
        ctx.procs.kill_all()
        shutil.rmtree(ctx.tmp, ignore_errors=True)

    calib = meta.get("calibration")
    rows, tracer = summarize(runs, modes, wanted, counts,
                             calib["costs_ns"].get("uprobe_emulated") if calib else None)
    for r in rows:
        if r["bench"] == "forkstorm":
            r["n_seconds"] = sizes.get(r["mode"], {}).get("forkstorm")
    meta["elapsed_s"] = round(time.monotonic() - t0, 1)
    meta["load_end"] = os.getloadavg()[0]
    foreign_seen = sorted({c.split(": ", 1)[1] for r in runs for c in r.get("foreign_tracers", [])})
    md = markdown(meta, rows, tracer, storm, modes, failures, notes, foreign_seen)
    data = {"meta": meta, "modes": [{"name": m.name, "tracer": m.tracer, "args": m.args,
                                     "desc": m.desc} for m in modes],
            "sizes": sizes, "summary": rows, "tracer": tracer, "long_storm": storm,
            "runs": runs, "failures": failures, "notes": notes}
    path = write_results(args, md, data)
    print()
    print(md)
    log("results: %s (and .json), %s" % (os.path.relpath(path, ROOT),
                                         "%d failures" % len(failures) if failures else "no failures"))
    # A tracer that fails a run is a result, reported in the tables; the
    # suite itself failing (no binary, a crash) exits non-zero on its own.
    return 1 if failures and args.strict else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit("bench: interrupted; every process it started is gone")
