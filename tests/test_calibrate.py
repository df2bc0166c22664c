"""`forkhazard calibrate`: what a trap costs on this machine, measured with
real uprobes on forkhazard's own code. Values are checked for sense (each
positive, a single-stepped hit dearer than an emulated one, every timed call
trapped), never for speed."""

import json
import os
import subprocess

from fh import Tracer, binary, binary_for_nobody, check, check_sanitizers, run

KINDS = ("syscall", "uprobe_emulated", "uprobe_single_step", "uprobe_nop5",
         "uprobe_uretprobe_pair")


def calibrate_json():
    p = run(["calibrate", "--json"], timeout=60)
    check(p.returncode == 0, "exit 0", p.returncode, p.stderr)
    lines = p.stdout.splitlines()
    check(len(lines) == 1, "one JSON line", p.stdout)
    return json.loads(lines[0]), p


def test_calibrate_json():
    cal, p = calibrate_json()
    check(cal["type"] == "calibration" and cal["kernel"] == os.uname().release, "header", cal)
    costs = cal["costs_ns"]
    check(sorted(costs) == sorted(KINDS), "every kind measured", costs)
    check(all(isinstance(v, (int, float)) and v > 0 for v in costs.values()),
          "each cost > 0", costs)
    check(costs["uprobe_single_step"] > costs["uprobe_emulated"],
          "a single-stepped hit costs more than an emulated one", costs)
    # pair - emulated: two medians apart, so no sign is promised on a busy machine
    check(isinstance(cal["uretprobe_ns"], (int, float)), "uretprobe_ns", cal)
    check(isinstance(cal["nop5_optimized"], bool), "nop5_optimized", cal)
    b = cal["batches"]
    for k in KINDS:
        check(b[k]["n"] >= 3 and b[k]["calls"] >= b[k]["n"], "%s: batches timed" % k, b[k])
        check(0 < b[k]["min_ns"] <= costs[k] <= b[k]["max_ns"], "%s: median inside its batches"
              % k, b[k], costs[k])
    # what placement.c would say of the probed instructions
    check(b["uprobe_emulated"]["kernel_emulates"] is True and
          b["uprobe_nop5"]["kernel_emulates"] is True and
          b["uprobe_uretprobe_pair"]["kernel_emulates"] is True and
          b["uprobe_single_step"]["kernel_emulates"] is False and
          b["syscall"]["kernel_emulates"] is None, "placement kinds", b)
    check(0 < cal["elapsed_ms"] < 5000, "bounded time", cal["elapsed_ms"])


def test_calibrate_text():
    p = run(["calibrate"], timeout=60)
    check(p.returncode == 0, "exit 0", p.returncode, p.stderr)
    for label in ("system call (getppid)", "emulated (push %rbp)", "single-stepped",
                  "5-byte nop", "uprobe + uretprobe", "measured in"):
        check(label in p.stdout, "names %r" % label, p.stdout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("  ") and " ns " in l]
    check(len(lines) == 5, "one line per kind", p.stdout)
    for l in lines:
        value = int(l.split(" ns ")[0].split()[-1])
        check(value > 0, "a positive cost", l)
    check(all(len(l) <= 80 for l in p.stdout.splitlines() if "Kernel" not in l), "80 columns",
          p.stdout)


def test_calibrate_bad_usage():
    for args, words in ((["calibrate", "--bogus"], ["calibrate", "--bogus"]),
                        (["calibrate", "--json", "extra"], ["extra"]),
                        (["calibrate", "-p", "1"], ["-p"]),
                        (["calibrate", "\x1b[2J"], ["\\x1b[2J"])):
        p = run(args)
        check(p.returncode == 2, "%s: exit 2" % args, p.returncode, p.stderr)
        check(p.stdout == "", "%s: nothing on stdout" % args, p.stdout)
        lines = p.stderr.splitlines()
        check(len(lines) == 1 and all(w in lines[0] for w in words),
              "%s: one line naming it" % args, p.stderr)
    p = run(["calibrate", "--help"])
    check(p.returncode == 0 and "forkhazard calibrate [--json]" in p.stdout, "--help", p.stdout)


def test_calibrate_not_permitted():
    p = subprocess.run([binary_for_nobody(), "calibrate"], capture_output=True, text=True,
                       timeout=30, user=65534, group=65534, extra_groups=[])
    check_sanitizers(p.stderr)
    check(p.returncode == 1, "exit 1", p.returncode, p.stderr)
    check(p.stdout == "", "nothing on stdout", p.stdout)
    lines = p.stderr.splitlines()
    check(len(lines) == 1 and "missing CAP_" in lines[0], "one line", p.stderr)


def prog_names(pid):
    """Names of the BPF programs process pid holds (its fds' prog_id, then bpftool)."""
    ids = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                ids |= {l.split()[1] for l in f if l.startswith("prog_id:")}
        except OSError:
            pass
    names = set()
    for i in ids:
        out = subprocess.run(["bpftool", "prog", "show", "id", i, "--json"],
                             capture_output=True, text=True, timeout=10).stdout
        if out.strip():
            names.add(json.loads(out).get("name"))
    return names


def test_tracing_loads_no_calibration():
    """A tracing run loads the calibration's program only when it calibrates:
    never today."""
    sleeper = subprocess.Popen(["sleep", "30"])
    t = Tracer(["-p", str(sleeper.pid)])
    try:
        names = prog_names(t.proc.pid)
        check("lock_acquire" in names, "the lock programs are loaded", names)
        check("calib_hit" not in names, "calib_hit is not", names)
    finally:
        t.stop()
        sleeper.kill()
        sleeper.wait()
