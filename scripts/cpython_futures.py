#!/usr/bin/env python3
"""CPython's own test_concurrent_futures (pyenv's 3.10) under system-wide
forkhazard (the default mode), as issue 14 asks: every hazard it reports must
name the Python thread and the Python line that took the lock, and the suite's
result must be the same as untraced. About 3 minutes untraced, more traced:
a make target outside CI (make check-cpython-futures).

Prints the suite's result both ways and one line per distinct hazard (holder
thread, the line that took the lock, the line that forked, how many times);
exits 0 when the results match and every hazard names its thread and line,
1 otherwise, 2 when no CPython 3.10 is installed."""

import argparse
import collections
import glob
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python310():
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    found = sorted(glob.glob(os.path.join(root, "versions", "3.10.*", "bin", "python3.10")))
    return found[-1] if found else None


def run_suite(python):
    """The suite's summary line and its wall time."""
    t0 = time.monotonic()
    p = subprocess.run([python, "-m", "test", "test_concurrent_futures"],
                       capture_output=True, text=True, timeout=1800)
    took = time.monotonic() - t0
    result = [l for l in p.stdout.splitlines() if l.startswith("Tests result:")]
    return (result[-1] if result else "no result (status %d)" % p.returncode), took


def where(frames, depth=3):
    """The innermost Python frames as people read them (the innermost
    first, "<" before each caller), or None."""
    if not frames:
        return None
    return " < ".join("%s (%s:%s)" % (f["function"], os.path.basename(f["file"]), f["line"])
                      for f in frames[:depth])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--no-baseline", action="store_true", help="skip the untraced run")
    args = ap.parse_args()
    python = python310()
    if not python:
        print("cpython_futures: no pyenv CPython 3.10 installed", file=sys.stderr)
        return 2
    tool = os.path.join(ROOT, args.build, "forkhazard")

    base = None if args.no_baseline else run_suite(python)
    out = tempfile.NamedTemporaryFile(prefix="fh-futures-", suffix=".jsonl", delete=False)
    out.close()
    tracer = subprocess.Popen([tool, "-j", "-o", out.name], stderr=subprocess.PIPE, text=True)
    try:
        line = tracer.stderr.readline()  # "Tracing ..." once attached
        if "Tracing" not in line:
            print("cpython_futures: forkhazard did not start: %s" % line.strip(), file=sys.stderr)
            return 1
        traced = run_suite(python)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.wait(timeout=60)
    with open(out.name) as f:
        events = [json.loads(l) for l in f if l.strip()]
    os.unlink(out.name)

    exe = os.path.basename(python)
    hazards = [e for e in events if e["type"] == "fork" and e["severity"] == "hazard" and
               e.get("exe_name") == exe]
    seen = collections.Counter()
    unnamed = 0
    for ev in hazards:
        for lock in ev["locks"] or []:
            key = (lock.get("py_thread"), where(lock.get("py_stack")), where(ev.get("py_stack")))
            seen[key] += 1
            unnamed += key[0] is None or key[1] is None
    deadlocks = [e for e in events if e["type"] == "deadlock" and e.get("exe_name") == exe]
    summary = [e for e in events if e["type"] == "summary"]

    print("CPython: %s" % python)
    if base:
        print("untraced: %s, %.0f s" % base)
    print("traced:   %s, %.0f s (forkhazard whole-system, default mode)" % traced)
    print("hazard forks of %s: %d, deadlocks: %d; forkhazard's summary: %s" %
          (exe, len(hazards), len(deadlocks),
           json.dumps({k: summary[-1][k] for k in ("forks", "mt_forks", "hazards", "mitigated",
                                                  "deadlocks", "lost")}) if summary else "none"))
    for (thread, lock_at, fork_at), n in seen.most_common():
        print("  %4dx lock held by %s, taken at %s; fork at %s" %
              (n, json.dumps(thread), lock_at or "(no Python frame)", fork_at or "(no Python frame)"))
    same = base is None or re.sub(r"\s+", " ", base[0]) == re.sub(r"\s+", " ", traced[0])
    if not same:
        print("FAIL: the suite's result changed under tracing")
    if unnamed:
        print("FAIL: %d hazard lock(s) without a Python thread name or line" % unnamed)
    return 0 if same and not unnamed else 1


if __name__ == "__main__":
    sys.exit(main())
