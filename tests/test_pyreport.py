"""Issue 14: reports that speak Python, for every installed CPython (3.10,
3.11 from pyenv and Debian's, 3.12, 3.13; a missing one is skipped), run as
a user runs them (forkhazard -j -- python3 PROGRAM): the thread that held the
lock by its threading name, the file:line:function that took it, where the
fork was called and where the child hangs, in Python; the interpreter's own
locks (a thread's sentinel, Condition waiters) never hazards; a C thread's
lock in a Python process with its native frames only."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time

from fh import ROOT, Skip, Tracer, check, kill_child_of, prog, wait_until
from test_pyrt import HANG, PYTHONS, interpreter

SENTINEL_FUNCTIONS = ("Thread._set_tstate_lock", "_set_tstate_lock")


def frame(fn, line, f):
    return {"file": f, "line": line, "function": fn}


def minor(facts):
    return int(facts["python"].split(".")[1])


class Run:
    """forkhazard -j -- PYTHON py_fork_hang.py KIND: its facts, and (stop())
    its events once the hang it waits for is reported."""

    def __init__(self, python, kind, extra=()):
        self.t = Tracer(["--", python, HANG, kind] + list(extra))
        line = self.t.proc.stdout.readline()
        if not line.startswith("{"):
            self.t.kill()
            raise AssertionError("py_fork_hang.py %s did not start: %r" % (kind, line))
        self.facts = json.loads(line)
        self.lines = self.facts["lines"]

    def wait_for(self, text, timeout=20):
        """Until forkhazard's output has text (it writes each event as it goes)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(self.t.tmp.name, "rb") as f:
                if text.encode() in f.read():
                    return
            time.sleep(0.05)
        raise AssertionError("no %s in forkhazard's output within %ss" % (text, timeout))

    def stop(self):
        """Kill the hung children, then the program: forkhazard ends with it."""
        f = self.facts
        for child in f.get("workers", []) + [f.get("child")]:
            kill_child_of(f["pid"], child)
        try:
            os.kill(f["pid"], signal.SIGKILL)
        except OSError:
            pass
        r = self.t.wait(timeout=60)
        self.t.proc.stdout.close()
        return r


def check_no_internal_hazard(ev):
    """The interpreter's own locks are set aside, each with its reason."""
    for l in ev["locks"] + ev["own_locks"]:
        check(not l["py_stack"] or l["py_stack"][0]["function"] not in SENTINEL_FUNCTIONS,
              "a sentinel among the hazards or own locks", l)
        check("internal" not in l, "an internal lock among the hazards", l)
    for l in ev["internal_locks"]:
        check(l["internal"] in ("sentinel", "condition-waiter"), "internal, and why", l)


def check_lock_report(python, kind):
    run = Run(python, kind)
    try:
        run.wait_for('"type":"deadlock"')
    finally:
        r = run.stop()
    f, lines, src = run.facts, run.lines, run.facts["file"]
    ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
    check(ev["severity"] == "hazard", "a hazard", ev)
    check(len(ev["locks"]) == 1, "one foreign lock: the user's (no sentinel, no waiter)",
          ev["locks"], ev["internal_locks"])
    lock = ev["locks"][0]
    check(lock["holder_tid"] == f["holder_tid"], "held by chatter-0's thread", lock, f)
    check(lock["py_thread"] == "chatter-0", "the holder by its Python name", lock)
    check(lock["py_stack"][:1] == [frame("chatter", lines["take"], src)],
          "taken in chatter() at its `with lock:` line", lock["py_stack"], lines)
    check(lock["py_stack"][1]["function"] in ("Thread.run", "run"), "called by Thread.run",
          lock["py_stack"])
    check(lock["stack"] and "python" in os.path.basename(lock["stack"][0]["module"] or ""),
          "the native frames stay, below (the interpreter's)", lock["stack"])
    check(ev["py_thread"] == "MainThread", "forked by the main thread", ev)
    check(ev["py_stack"][:2] == [frame("do_fork", lines["fork"], src),
                                 frame("<module>", ev["py_stack"][1]["line"], src)],
          "fork called in do_fork() from the module", ev["py_stack"], lines)
    check_no_internal_hazard(ev)
    if minor(f) <= 12:
        # 3.10-3.12: every threading.Thread holds its sentinel for its life
        sentinels = [l for l in ev["internal_locks"] if l["internal"] == "sentinel" and
                     l["holder_tid"] == f["holder_tid"]]
        check(len(sentinels) == 1, "chatter-0's sentinel, set aside", ev["internal_locks"])
        check(sentinels[0]["py_stack"][:1] and
              sentinels[0]["py_stack"][0]["function"] in SENTINEL_FUNCTIONS,
              "recognized by the frame that took it", sentinels[0])
    d = r.one("deadlock", pid=f["child"])
    check(d["py_stack"][:2] == [frame("child_take", lines["child"], src),
                                frame("do_fork", lines["call"], src)],
          "the child waits in child_take(), called from do_fork()", d["py_stack"], lines)
    check(d["lock"] and d["lock"]["py_stack"][:1] == lock["py_stack"][:1] and
          d["lock"]["py_thread"] == "chatter-0", "the inherited lock, with its frames", d)
    check(d["stack"] and all(fr["module"] for fr in d["stack"]),
          "the native stack ends where unwinding stops (no frame outside every module)",
          d["stack"])
    check(r.summary()["hazards"] == 1, "one hazard counted", r.summary())


def check_pool_report(python):
    run = Run(python, "pool")
    try:
        run.wait_for('"type":"deadlock"')
    finally:
        r = run.stop()
    f, lines, src = run.facts, run.lines, run.facts["file"]
    check(len(f["workers"]) == 1, "one worker", f)
    worker = f["workers"][0]
    ev = r.one("fork", pid=f["pid"], child_pid=worker)
    check(ev["severity"] == "hazard", "the worker's fork is a hazard", ev)
    check([(l["py_thread"], l["py_stack"][:1]) for l in ev["locks"]] ==
          [("chatter-0", [frame("chatter", lines["take"], src)])],
          "the lock chatter-0 took in chatter()", ev["locks"])
    check(ev["py_thread"] == "MainThread" and ev["py_stack"] and
          ev["py_stack"][0]["function"] in ("Popen._launch", "_launch") and
          ev["py_stack"][0]["file"].endswith("multiprocessing/popen_fork.py"),
          "forked in multiprocessing's Popen._launch", ev["py_stack"])
    check_no_internal_hazard(ev)
    d = r.one("deadlock", pid=worker)
    check(d["py_stack"][:1] == [frame("pool_take", lines["pool"], src)],
          "the worker hangs in its task, pool_take()", d["py_stack"], lines)
    check(any(fr["file"].endswith("multiprocessing/pool.py") for fr in d["py_stack"]),
          "called by the pool's worker loop", d["py_stack"])


def make_version_tests(label):
    def test_lock_held_at_fork_in_python():
        check_lock_report(interpreter(label), "lock")

    def test_rlock_held_at_fork_in_python():
        check_lock_report(interpreter(label), "rlock")

    def test_pool_worker_hangs_in_python():
        check_pool_report(interpreter(label))

    def test_c_thread_lock_keeps_native_frames():
        run = Run(interpreter(label), "cthread", [prog("libfhcthread.so")])
        r = run.t.wait(timeout=60)
        run.t.proc.stdout.close()
        f = run.facts
        ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
        check(ev["severity"] == "hazard" and len(ev["locks"]) == 1, "the C thread's mutex",
              ev["locks"])
        lock = ev["locks"][0]
        check(lock["kind"] == "mutex" and lock["confirmed"] and
              lock["holder_tid"] == f["holder_tid"], "its mutex, confirmed", lock, f)
        check(lock["py_thread"] is None and lock["py_stack"] == [],
              "no Python name, no Python frame", lock)
        check(lock["stack"] and lock["stack"][0]["symbol"] == "hold" and
              lock["stack"][0]["module"].endswith("libfhcthread.so"),
              "its native frames", lock["stack"])
        check(ev["py_stack"][:1] == [frame("do_fork", f["lines"]["fork"], f["file"])],
              "the fork's Python frame still", ev["py_stack"])

    for fn in (test_lock_held_at_fork_in_python, test_rlock_held_at_fork_in_python,
               test_pool_worker_hangs_in_python, test_c_thread_lock_keeps_native_frames):
        name = "test_py%s_%s" % (label, fn.__name__[len("test_"):])
        fn.__name__ = name
        globals()[name] = fn


for _label in PYTHONS:
    make_version_tests(_label)


GUNICORN_APP = os.path.join(ROOT, "tests", "progs", "gunicorn")


def marked_lines(path):
    lines = {}
    with open(path) as f:
        for n, text in enumerate(f, 1):
            m = re.search(r"# LINE (\w+)$", text.rstrip())
            if m:
                lines[m.group(1)] = n
    return lines


def test_gunicorn_preload_metrics_thread_whole_system():
    """Debian's gunicorn --preload -w 4 serving an app whose metrics thread,
    started at import in the master, takes a threading.Lock every
    millisecond; forkhazard in its default mode (whole system, adaptive).
    The master's first multithreaded fork arms its lock probes ("locks":
    null); every later fork of that round is a hazard naming the metrics
    thread and the line of the app that took the lock; each worker hangs in
    the app's at-fork hook, in Python."""
    if not os.access("/usr/bin/gunicorn", os.X_OK):
        raise Skip("gunicorn is not installed (Debian: gunicorn; make deps)")
    app = os.path.join(GUNICORN_APP, "metrics_app.py")
    lines = marked_lines(app)
    sock = tempfile.mktemp(prefix="fh-gunicorn-", suffix=".sock")
    t = Tracer([])
    g = subprocess.Popen(["/usr/bin/gunicorn", "--preload", "-w", "4", "-b", "unix:" + sock,
                          "--chdir", GUNICORN_APP, "metrics_app:app"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        def four_hung():
            with open(t.tmp.name) as f:
                return sum('"type":"deadlock"' in l and '"parent_pid":%d,' % g.pid in l
                           for l in f) >= 4
        wait_until(four_hung, 30, "four workers hung")
    finally:
        os.killpg(g.pid, signal.SIGKILL)
        g.wait()
        g.stderr.close()
        r = t.stop()
        if os.path.exists(sock):
            os.unlink(sock)
    forks = sorted(r.of("fork", pid=g.pid), key=lambda e: e["time"])[:4]
    check(len(forks) == 4, "the first round: four workers forked", forks)
    check(forks[0]["locks"] is None and forks[0]["severity"] == "info",
          "the master's first multithreaded fork arms its probes", forks[0])
    for ev in forks[1:]:
        check(ev["severity"] == "hazard", "every later fork of the round is a hazard", ev,
              [e["time"] for e in forks], r.stderr[-3000:])
        named = [l for l in ev["locks"] if l["py_thread"] == "metrics"]
        check(len(named) == 1, "the metrics thread's lock", ev["locks"])
        check(named[0]["py_stack"][:1] == [{"file": app, "line": lines["collect"],
                                            "function": "collect"}],
              "taken by the app's collect() at its `with metrics_lock:`", named[0])
        check(ev["py_stack"][:1] and ev["py_stack"][0]["function"] == "Arbiter.spawn_worker",
              "forked in gunicorn's Arbiter.spawn_worker", ev["py_stack"])
    for ev in forks:
        d = r.one("deadlock", pid=ev["child_pid"])
        check(d["py_stack"][:1] == [{"file": app, "line": lines["reset"],
                                     "function": "reset_in_worker"}],
              "the worker hangs in the app's at-fork hook", d["py_stack"])


def test_bundled_python_demo_reports_in_python():
    """The README's Python demo (demo/demo.py) under forkhazard -- python3, as
    a user runs it: the hazard names the thread and the Python lines of the
    lock, the fork and the child's wait; the demo's own status (1: its worker
    hung) is forkhazard's."""
    demo = os.path.join(ROOT, "demo", "demo.py")
    with open(demo) as f:
        lines = {m: i for i, l in enumerate(f, 1)
                 for m in ("held most of the time", "pid = os.fork()", "hangs: its holder")
                 if m in l}
    t = Tracer(["--", "/usr/bin/python3", demo])
    r = t.wait(timeout=60)
    check(r.status == 1, "the demo's status: its worker hung", r.status, r.stderr)
    fork = [e for e in r.of("fork") if e["severity"] == "hazard"]
    check(len(fork) == 1, "one hazard", r.of("fork"))
    lock = fork[0]["locks"][0]
    check(lock["py_thread"] == "cache-refresher", "the holder's thread name", lock)
    check(lock["py_stack"][0] == frame("refresh_cache", lines["held most of the time"], demo),
          "where the lock was taken", lock["py_stack"])
    check(fork[0]["py_stack"][0] == frame("spawn_worker", lines["pid = os.fork()"], demo),
          "where fork was called", fork[0]["py_stack"])
    dl = r.one("deadlock", pid=fork[0]["child_pid"])
    check(dl["py_stack"][0] == frame("child_work", lines["hangs: its holder"], demo),
          "where the child hangs", dl["py_stack"])
