#!/usr/bin/env python3
"""The lock probes' own BPF run time per hit, by workload: what the Python
frame walk adds to a Python process's lock calls, and that C processes pay
nothing for it. Not a timing of the workloads (make bench does that): the
kernel's run-time statistics of each probe program (run_cnt, run_time_ns in
its fdinfo, on while a BPF_ENABLE_STATS descriptor is open), read before and
after the workload's loop.

    python3 bench/bpfcost.py [--build DIR] [--forkhazard BIN]... [--iters N] [--reps R]
    (make bench-bpfcost)

Each workload runs paused (FH_BENCH_PAUSE) under `BIN -p PID`; its loop is
released once the probes are in; the counters are read at its pauses. Prints
one line per (binary, workload): hits per operation and ns of BPF program
time per hit of each lock program, the median of R runs.
"""

import argparse
import ctypes
import json
import os
import platform
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run	# noqa: E402 (make bench's: its C workloads, the programs' fdinfo)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(platform.machine())
BPF_ENABLE_STATS = 32
PROGS = ("lock_acquire", "lock_acquired", "lock_release")


def stats_fd():
    libc = ctypes.CDLL(None, use_errno=True)
    attr = ctypes.create_string_buffer(8)
    fd = libc.syscall(ctypes.c_long(SYS_BPF), ctypes.c_long(BPF_ENABLE_STATS), attr,
                      ctypes.c_long(len(attr)))
    if fd < 0:
        raise SystemExit("BPF_ENABLE_STATS: %s" % os.strerror(ctypes.get_errno()))
    return fd


def counters(pid):
    """{program name: (run_cnt, run_time_ns)} of the lock programs pid holds."""
    out = {}
    for info in run.bpf_prog_infos(pid):
        name = subprocess.run(["bpftool", "prog", "show", "id", info["prog_id"].strip(),
                               "--json"], capture_output=True, text=True).stdout
        name = json.loads(name).get("name", "") if name else ""
        if name in PROGS:
            out[name] = (int(info["run_cnt"]), int(info["run_time_ns"]))
    return out


def workloads(build, iters):
    py = [("python%s" % v, os.path.expanduser("~/.pyenv/versions/%s/bin/python3" % v))
          for v in ("3.10.13", "3.11.7", "3.12.1", "3.13.0")]
    py.append(("python3.11.2-debian", "/usr/bin/python3"))
    out = [(name, [exe, os.path.join(ROOT, "bench", "progs", "pythreads.py"), "--cpu", "0",
                   "1", str(iters)]) for name, exe in py if os.access(exe, os.X_OK)]
    out.append(("c-mutex", [os.path.join(build, "bench", "locks"), "mutex:%d" % iters]))
    return out


def one_run(fh, cmd, iters):
    env = dict(os.environ, FH_BENCH_PAUSE="1")
    out = tempfile.mktemp(prefix="fh-bpfcost-")
    w = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    t = None
    try:
        line = w.stdout.readline()
        if b"pause" not in line and b"ready" not in line:
            raise RuntimeError("%s did not pause: %r" % (cmd[0], line))
        t = subprocess.Popen([fh, "-p", str(w.pid), "-o", out, "-j"], stderr=subprocess.PIPE)
        deadline = time.time() + 20
        err = b""
        while b"Tracing" not in err and time.time() < deadline:
            if select.select([t.stderr], [], [], 0.1)[0]:
                err += os.read(t.stderr.fileno(), 4096)
        time.sleep(0.3)	# its layout and probes are in
        before = counters(t.pid)
        os.kill(w.pid, signal.SIGUSR1)
        line = w.stdout.readline()	# the next pause, after the loop
        after = counters(t.pid)
        if b"pause" in line:
            os.kill(w.pid, signal.SIGUSR1)
        w.wait(timeout=60)
        res = {}
        for p in PROGS:
            runs = after.get(p, (0, 0))[0] - before.get(p, (0, 0))[0]
            ns = after.get(p, (0, 0))[1] - before.get(p, (0, 0))[1]
            res[p] = (runs / iters, ns / runs if runs else 0.0)
        return res
    finally:
        if w.poll() is None:
            w.kill()
            w.wait()
        if t is not None:
            t.send_signal(signal.SIGINT)
            t.wait(timeout=30)
        if os.path.exists(out):
            os.unlink(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--forkhazard", action="append")
    ap.add_argument("--iters", type=int, default=200000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    args = ap.parse_args()
    bins = args.forkhazard or [os.path.join(args.build, "forkhazard")]
    run.build_progs(argparse.Namespace(build=args.build))
    fd = stats_fd()
    try:
        for name, cmd in workloads(args.build, args.iters):
            for fh in bins:
                runs = [one_run(fh, cmd, args.iters) for _ in range(args.reps)]
                cols = []
                for p in PROGS:
                    hits = statistics.median(r[p][0] for r in runs)
                    if not hits:
                        continue
                    ns = statistics.median(r[p][1] for r in runs)
                    cols.append("%s %.2f/op %.0f ns/hit (%.0f-%.0f)" % (
                        p, hits, ns, min(r[p][1] for r in runs), max(r[p][1] for r in runs)))
                print("%-22s %-40s %s" % (name, fh, "; ".join(cols)), flush=True)
    finally:
        os.close(fd)


if __name__ == "__main__":
    main()
