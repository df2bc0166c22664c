"""Reading CPython from outside (src/pyrt.c), for every installed version:
`forkhazard inspect` on Python processes (thread names, Python stacks, the
Python line a deadlocked child waits at), the layout a BPF frame walker will
use checked against the interpreter's own thread states (tests/progs/
pyrt_check), the offsets table against the headers, and processes that are not
Python, not readable, or exit while being read."""

import json
import os
import re
import subprocess
import sys

from fh import (ROOT, Skip, binary, check, check_sanitizers, kill_child_of, prog, run,
                thread_syscall, wait_until)

HANG = os.path.join(ROOT, "tests", "progs", "py_fork_hang.py")
PYENV = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")

# label -> interpreter; a missing one is skipped
PYTHONS = {
    "310": os.path.join(PYENV, "versions", "3.10.13", "bin", "python3.10"),
    "311": os.path.join(PYENV, "versions", "3.11.7", "bin", "python3.11"),
    "312": os.path.join(PYENV, "versions", "3.12.1", "bin", "python3.12"),
    "313": os.path.join(PYENV, "versions", "3.13.0", "bin", "python3.13"),
    "debian": "/usr/bin/python3",   # 3.11, libpython linked into the executable
}


def interpreter(label):
    path = PYTHONS[label]
    if not os.access(path, os.X_OK):
        raise Skip("%s is not installed" % path)
    return path


class HangingPython:
    """py_fork_hang.py under one interpreter: its facts, and close() kills the
    parent and its hung child (by PID, checked to be its child)."""

    def __init__(self, python, kind="lock"):
        self.proc = subprocess.Popen([python, HANG, kind], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        if not line.startswith("{"):
            self.close()
            raise AssertionError("py_fork_hang.py did not start: %r" % line)
        self.facts = json.loads(line)
        self.lines = self.facts["lines"]

    def child_blocked(self):
        """The child sleeps in a futex wait without a timeout."""
        sc = thread_syscall(self.facts["child"], self.facts["child"]).split()
        return len(sc) >= 5 and sc[0] == "202" and sc[4] == "0x0"

    def close(self):
        kill_child_of(self.proc.pid, getattr(self, "facts", {}).get("child"))
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


def inspect_json(pid, args=()):
    p = run(["inspect", "--json"] + list(args) + [str(pid)])
    check(p.returncode == 0, "inspect --json %d exited %d" % (pid, p.returncode), p.stderr)
    ev = json.loads(p.stdout)
    return ev, p.stderr


def inspect_text(pid):
    p = subprocess.run([binary(), "inspect", str(pid)], capture_output=True, timeout=60)
    check_sanitizers(p.stderr.decode("utf-8", "replace"))
    check(p.returncode == 0, "inspect %d exited %d" % (pid, p.returncode), p.stderr)
    return p.stdout.decode("utf-8")


def thread(ev, tid):
    found = [t for t in ev["threads"] if t["tid"] == tid]
    check(len(found) == 1, "thread %d in the report" % tid, ev)
    return found[0]


def frame(fn, line, f):
    return {"file": f, "line": line, "function": fn}


def check_py_contract(ev):
    check("python" in ev and (ev["python"] is None or isinstance(ev["python"], str)),
          "top-level python", ev)
    for t in ev["threads"]:
        check("py_thread" in t and (t["py_thread"] is None or isinstance(t["py_thread"], str)),
              "py_thread", t)
        check(isinstance(t.get("py_stack"), list), "py_stack", t)
        for fr in t["py_stack"]:
            check(set(fr) == {"file", "line", "function"}, "pyframe keys", fr)
            check(isinstance(fr["file"], str) and isinstance(fr["function"], str), "types", fr)
            check(fr["line"] is None or (isinstance(fr["line"], int) and
                                         not isinstance(fr["line"], bool) and fr["line"] > 0),
                  "line is a positive int or null", fr)


def check_child(h, kind):
    f, lines = h.facts, h.lines
    wait_until(h.child_blocked, 10, "the child blocked on the lock")
    ev, _ = inspect_json(f["child"])
    check_py_contract(ev)
    check(ev["verdict"] == "deadlock", "verdict", ev)
    check(ev["python"] and f["python"].startswith(ev["python"]), "python version", ev, f)
    t = thread(ev, f["child"])
    check(t["py_thread"] == "MainThread", "the child's thread is the forking MainThread", t)
    want = [frame("child_take", lines["child"], f["file"]),
            frame("do_fork", lines["call"], f["file"])]
    check(t["py_stack"][:2] == want, "the child waits in child_take, called from do_fork",
          t["py_stack"], want)
    check(t["py_stack"][-1]["function"] == "<module>", "outermost: the module", t["py_stack"])
    where = "in Python child_take (%s:%d)" % (f["file"], lines["child"])
    check(where in ev["explanation"], "the verdict names the Python line", ev["explanation"])
    text = inspect_text(f["child"])
    check("py: child_take (%s:%d)" % (f["file"], lines["child"]) in text,
          "text: the Python frame", text)
    # Python frames first, the native ones after them
    check(text.index("py: child_take") < text.index("    #0 "), "Python before native", text)
    check(text.splitlines()[1].startswith("CPython 3."), "the version under the header", text)


def check_parent(h):
    f, lines = h.facts, h.lines
    ev, _ = inspect_json(f["pid"])
    check_py_contract(ev)
    main, holder = thread(ev, f["main_tid"]), thread(ev, f["holder_tid"])
    check(main["py_thread"] == "MainThread", "main thread's name", main)
    check(holder["py_thread"] == "chatter-0", "the holder's name", holder)
    check(main["py_stack"][0] == frame("main_wait", lines["main"], f["file"]),
          "the main thread sleeps in main_wait", main["py_stack"])
    check(frame("chatter", lines["hold"], f["file"]) in holder["py_stack"],
          "the holder waits in chatter, holding the lock", holder["py_stack"])
    # its innermost frames are the standard library's (Event.wait)
    check(holder["py_stack"][0]["file"].endswith("threading.py"), "Event.wait in threading.py",
          holder["py_stack"])
    check(all(t["py_thread"] is None for t in ev["threads"]
              if t["tid"] not in (f["main_tid"], f["holder_tid"])), "no other names", ev)
    text = inspect_text(f["pid"])
    check('"chatter-0"' in text and "py: chatter (%s:%d)" % (f["file"], lines["hold"]) in text,
          "text: name and frame", text)


def check_layout(pid):
    """The kernel's way to each thread state (fs base + TSD slot) finds the
    interpreter's own, and the walk over struct fh_py_layout alone gives the
    frames pyrt reads."""
    p = subprocess.run([prog("pyrt_check"), str(pid)], capture_output=True, text=True,
                       timeout=60)
    check_sanitizers(p.stderr)
    check(p.returncode == 0, "pyrt_check %d exited %d" % (pid, p.returncode), p.stdout, p.stderr)
    lines = [json.loads(l) for l in p.stdout.splitlines()]
    check(len(lines) >= 2, "a layout and threads", p.stdout)
    for t in lines[1:]:
        check(t["tstate_tsd"] != "0x0", "the TSD slot holds a thread state", t)
        check(t["tstate_tsd"] == t["tstate_list"], "the same as the interpreter's list", t)
        check(t["thread_id_is_fs"], "tstate->thread_id is the thread pointer", t)
        if "native_thread_id" in t:
            check(t["native_thread_id"] == t["tid"], "native_thread_id", t)
        check(t["walk"] and t["walk"] == t["stack"], "the layout walk gives pyrt's stack", t)
    return lines


NAMES = r"""
import threading, time
class Worker(threading.Thread):
    def run(self):
        time.sleep(60)
a = Worker(name="materialized-\u00fc\u4e2d", daemon=True)
vars(a)                     # the instance dict made a real dict
a.start()
b = threading.Thread(target=time.sleep, args=(60,), name="x" * 300, daemon=True)
for i in range(40):         # more attributes than the class's shared keys
    setattr(b, "attr%d" % i, i)
b.start()
c = threading.Thread(target=time.sleep, args=(60,), daemon=True)
c.start()                   # a default name: "Thread-N (sleep)"
print(a.native_id, b.native_id, c.native_id, c.name, flush=True)
time.sleep(60)
"""


def make_version_tests(label):
    def test_inspect_lock_child_and_parent():
        h = HangingPython(interpreter(label))
        try:
            check_child(h, "lock")
            check_parent(h)
        finally:
            h.close()

    def test_inspect_rlock_child():
        h = HangingPython(interpreter(label), "rlock")
        try:
            check_child(h, "rlock")
            check_parent(h)
        finally:
            h.close()

    def test_layout_finds_each_thread_state():
        h = HangingPython(interpreter(label))
        try:
            wait_until(h.child_blocked, 10, "the child blocked on the lock")
            threads = check_layout(h.facts["pid"])[1:]
            check(sorted(t["tid"] for t in threads) == sorted([h.facts["pid"],
                                                               h.facts["holder_tid"]]),
                  "both threads read", threads, h.facts)
            holder = [t for t in threads if t["tid"] == h.facts["holder_tid"]][0]
            check(holder["name"] == "chatter-0", "the name by TID", holder)
            check_layout(h.facts["child"])
        finally:
            h.close()

    def test_thread_names_from_every_kind_of_instance_dict():
        proc = subprocess.Popen([interpreter(label), "-c", NAMES], stdout=subprocess.PIPE,
                                text=True)
        try:
            a, b, c, c_name = proc.stdout.readline().split(" ", 3)
            ev, _ = inspect_json(proc.pid)
            check(thread(ev, int(a))["py_thread"] == "materialized-\u00fc\u4e2d",
                  "a name in a real dict, not ASCII", thread(ev, int(a)))
            long_name = thread(ev, int(b))["py_thread"]
            check(long_name and set(long_name) == {"x"} and len(long_name) < 300,
                  "a name cut to its bound", long_name)
            check(thread(ev, int(c))["py_thread"] == c_name.strip(), "a default name",
                  thread(ev, int(c)), c_name)
        finally:
            proc.kill()
            proc.wait()

    for fn in (test_inspect_lock_child_and_parent, test_inspect_rlock_child,
               test_layout_finds_each_thread_state,
               test_thread_names_from_every_kind_of_instance_dict):
        name = "test_py%s_%s" % (label, fn.__name__[len("test_"):])
        fn.__name__ = name
        globals()[name] = fn


for _label in PYTHONS:
    make_version_tests(_label)


def test_offsets_table_matches_the_headers():
    """src/pyrt_layouts.c is what scripts/gen-pyoffsets.py measures from every
    installed CPython's headers (Debian's 3.11 too: the same layout as 3.11.7)."""
    if not os.path.isdir(os.path.join(PYENV, "versions")):
        raise Skip("no pyenv versions")
    p = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "gen-pyoffsets.py"),
                        "--check"], capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "the table differs from the headers", p.stdout, p.stderr)
    for minor in (10, 11, 12, 13):
        if os.path.isdir(os.path.join(PYENV, "versions")) and any(
                v.startswith("3.%d." % minor) for v in os.listdir(os.path.join(PYENV, "versions"))):
            check(re.search(r"^3\.%d\.\d+: matches the committed table$" % minor, p.stdout, re.M),
                  "3.%d checked" % minor, p.stdout)


def test_inspect_not_python_unchanged():
    """A C program: no Python fields filled, nothing said about Python."""
    from fh import Hung
    h = Hung("child")
    try:
        ev, err = inspect_json(h.facts["pid"], ["-v"])
        check(ev["python"] is None, "not Python", ev)
        check(all(t["py_thread"] is None and t["py_stack"] == [] for t in ev["threads"]),
              "no Python fields", ev)
        check("python" not in err.lower(), "nothing said about Python", err)
        text = inspect_text(h.facts["pid"])
        check("py: " not in text and "CPython" not in text, "no Python in the text", text)
    finally:
        h.close()


def test_inspect_python_it_cannot_read_is_said_once():
    """CPython 3.9 has no layout here: said once at -v, its native frames shown."""
    py = os.path.join(PYENV, "versions", "3.9.18", "bin", "python3.9")
    if not os.access(py, os.X_OK):
        raise Skip("%s is not installed" % py)
    code = ("import threading,time\n"
            "for i in range(3): threading.Thread(target=time.sleep, args=(60,), daemon=True)"
            ".start()\n"
            "print('ready', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([py, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        check(proc.stdout.readline().strip() == "ready", "started")
        ev, err = inspect_json(proc.pid, ["-v"])
        notes = [l for l in err.splitlines() if "3.9" in l and "not readable" in l]
        check(len(notes) == 1, "one line says why", err)
        check(ev["python"] is None and all(t["py_stack"] == [] for t in ev["threads"]),
              "no Python fields", ev)
        check(all(t["stack"] for t in ev["threads"]), "native stacks all the same", ev)
        p = run(["inspect", str(proc.pid)])
        check(p.returncode == 0 and "not readable" not in p.stderr, "quiet without -v", p.stderr)
    finally:
        proc.kill()
        proc.wait()


def test_inspect_python_exiting_while_read():
    """Processes whose threads come and go and that exit under the reader: every
    inspect ends (a report, or the one-line error for a process gone), never a
    crash or a hang."""
    py = None
    for label in ("313", "311", "310", "312", "debian"):
        if os.access(PYTHONS[label], os.X_OK):
            py = PYTHONS[label]
            break
    if not py:
        raise Skip("no CPython installed")
    code = ("import threading,time,sys\n"
            "def churn():\n"
            "    for i in range(2000):\n"
            "        t = threading.Thread(target=time.sleep, args=(0.001,), name='c%d' % i)\n"
            "        t.start()\n"
            "print('ready', flush=True)\n"
            "for i in range(4): threading.Thread(target=churn, daemon=True).start()\n"
            "time.sleep(float(sys.argv[1]))\n")
    ends = {0: 0, 1: 0}
    for i in range(12):
        proc = subprocess.Popen([py, "-c", code, str((0, 0.01, 0.05, 0.1, 0.2, 0.4)[i % 6])],
                                stdout=subprocess.PIPE, text=True)
        try:
            proc.stdout.readline()
            p = run(["inspect", "--json", str(proc.pid)], timeout=60)
            check(p.returncode in (0, 1), "inspect ended with a report or an error",
                  p.returncode, p.stderr)
            if p.returncode == 0:
                check_py_contract(json.loads(p.stdout))
            ends[p.returncode] += 1
        finally:
            proc.kill()
            proc.wait()
    check(sum(ends.values()) == 12, "every run ended", ends)
