"""`forkhazard inspect PID`: diagnosis of processes that were started without
any tracer (tests/progs/hung), from /proc, their memory and their stacks."""

import os
import re
import subprocess
import sys
import time

from fh import (Hung, addr, binary, binary_for_nobody, check, check_sanitizers, parse_event, run,
                thread_syscall, wait_until)

CONTRACT = {"type": str, "time": str, "pid": int, "comm": str, "verdict": str,
            "python": (str, type(None)), "threads": list, "explanation": str}
THREAD_CONTRACT = {"tid": int, "comm": str, "state": str, "futex": (str, type(None)),
                   "owner_tid": (int, type(None)), "owner_alive": (bool, type(None)),
                   "py_thread": (str, type(None)), "py_stack": list, "stack": list}
FRAME_CONTRACT = {"addr": str, "symbol": (str, type(None)), "offset": (int, type(None)),
                  "module": (str, type(None))}
HEX = re.compile(r"^0x[0-9a-f]+$")
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def typed(value, types):
    # bool is an int in Python: an int field must not be a bool
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        return False
    return isinstance(value, types)


def check_contract(ev):
    for key, types in CONTRACT.items():
        check(key in ev and typed(ev[key], types), "top-level %r missing or mistyped" % key, ev)
    check(ev["type"] == "inspect", "type", ev["type"])
    check(TIME.match(ev["time"]), "time is RFC 3339 UTC with microseconds", ev["time"])
    check(ev["verdict"] in ("deadlock", "blocked", "ok"), "verdict", ev["verdict"])
    check(ev["explanation"], "an explanation", ev)
    for t in ev["threads"]:
        for key, types in THREAD_CONTRACT.items():
            check(key in t and typed(t[key], types), "thread %r missing or mistyped" % key, t)
        check(t["futex"] is None or HEX.match(t["futex"]), "futex is 0x + lowercase hex", t)
        check((t["owner_tid"] is None) == (t["owner_alive"] is None),
              "owner_alive is null exactly when owner_tid is", t)
        for fr in t["stack"]:
            check(set(fr) >= set(FRAME_CONTRACT), "frame keys", fr)
            for key, types in FRAME_CONTRACT.items():
                check(typed(fr[key], types), "frame %r mistyped" % key, fr)
            check(HEX.match(fr["addr"]), "frame addr is 0x + lowercase hex", fr)
            check((fr["symbol"] is None) == (fr["offset"] is None), "offset with symbol", fr)


def inspect_json(pid, expect_status=0):
    p = run(["inspect", "--json", str(pid)])
    check(p.returncode == expect_status, "inspect --json %d exited %d" % (pid, p.returncode),
          p.stderr, p.stdout)
    lines = p.stdout.splitlines()
    check(len(lines) == 1, "one JSON line", p.stdout)
    ev = parse_event(lines[0])
    check_contract(ev)
    check(ev["pid"] == pid, "pid", ev["pid"], pid)
    return ev, p.stderr


def inspect_text(pid):
    """Text output as raw bytes: nothing may be decoded away before we look."""
    p = subprocess.run([binary(), "inspect", str(pid)], capture_output=True, timeout=30)
    stderr = p.stderr.decode("utf-8", "replace")
    check_sanitizers(stderr)
    check(p.returncode == 0, "inspect %d exited %d" % (pid, p.returncode), stderr)
    for b in p.stdout:
        check(b in (0x0a,) or b >= 0x20 and b != 0x7f, "raw control byte 0x%02x in text" % b,
              p.stdout[:2000])
    return p.stdout.decode("utf-8")


def thread(ev, tid):
    found = [t for t in ev["threads"] if t["tid"] == tid]
    check(len(found) == 1, "thread %d in the report" % tid, ev)
    return found[0]


def symbols(t):
    return [f["symbol"] for f in t["stack"]]


def blocked_on(pid, tid, lock):
    """The thread sits in futex(lock, FUTEX_WAIT_PRIVATE, 2, no timeout)."""
    line = thread_syscall(pid, tid).split()
    return (len(line) >= 5 and line[0] == "202" and addr(line[1]) == addr(lock)
            and line[2:5] == ["0x80", "0x2", "0x0"])


def status_fields(pid, tid=None):
    """/proc/PID/status, or with tid that thread's own (its State is its
    own; the process's is its main thread's)."""
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    with open(path) as f:
        return dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)


def check_left_as_it_was(pid, tid, lock):
    """Still there, not traced, sleeping in the very same futex wait. (Right
    after the detach the wait is being restarted: allow it a moment.)"""
    def same():
        st = status_fields(pid, tid)
        return (blocked_on(pid, tid, lock) and st["TracerPid"].strip() == "0"
                and status_fields(pid)["TracerPid"].strip() == "0"
                and st["State"].strip().startswith("S"))
    wait_until(same, 2.0, "thread %d back in its futex wait, untraced" % tid)
    time.sleep(0.2)     # and it stays there
    check(same(), "thread %d left its wait after inspect" % tid, thread_syscall(pid, tid),
          status_fields(pid, tid))


def test_inspect_inherited_mutex_is_deadlock():
    h = Hung("child")
    try:
        child, lock, holder = h.facts["child"], h.facts["lock"], h.facts["holder_tid"]
        wait_until(lambda: blocked_on(child, child, lock), 5, "child blocked on the lock")
        ev, _ = inspect_json(child)
        check(ev["verdict"] == "deadlock", "verdict", ev)
        check(ev["comm"] == "hung", "comm", ev["comm"])
        check(len(ev["threads"]) == 1, "the child has one thread", ev)
        t = thread(ev, child)
        check(t["futex"] and addr(t["futex"]) == addr(lock), "futex is the mutex", t, lock)
        check(t["owner_tid"] == holder, "owner is the parent's holder thread", t, holder)
        check(t["owner_alive"] is False, "owner not alive in the child", t)
        check(t["state"] == "S", "sleeping", t)
        check("child_take_lock" in symbols(t), "stack names the caller of pthread_mutex_lock",
              symbols(t))
        check(str(holder) in ev["explanation"] and "fork" in ev["explanation"],
              "explanation names the owner and the fork", ev["explanation"])
        check_left_as_it_was(child, child, lock)
        # twice: the first inspect left nothing behind that changes the second
        ev2, _ = inspect_json(child)
        check(ev2["verdict"] == "deadlock" and thread(ev2, child)["owner_tid"] == holder,
              "second inspect agrees", ev2)
        check_left_as_it_was(child, child, lock)
    finally:
        h.close()


def test_inspect_inherited_rwlock_is_deadlock():
    # writers wait on __writers_futex (rwlock+12), readers on __wrphase_futex (+8)
    for mode, off in (("rwchild", 12), ("rdchild", 8)):
        h = Hung(mode)
        try:
            child, holder = h.facts["child"], h.facts["holder_tid"]
            futex = "0x%x" % (int(h.facts["lock"], 16) + off)
            wait_until(lambda: thread_syscall(child, child).split()[:2] == ["202", futex],
                       5, "%s child blocked" % mode)
            ev, _ = inspect_json(child)
            t = thread(ev, child)
            check(ev["verdict"] == "deadlock", mode + " verdict", ev)
            check(addr(t["futex"]) == futex, mode + " futex", t, futex)
            check(t["lock_kind"] == "rwlock", mode + " kind", t)
            check(t["owner_tid"] == holder and t["owner_alive"] is False, mode + " owner", t,
                  holder)
        finally:
            h.close()


def test_inspect_healthy_is_ok():
    h = Hung("healthy")
    try:
        pid = h.facts["pid"]
        wait_until(lambda: len(os.listdir("/proc/%d/task" % pid)) == 3, 5, "3 threads")
        for _ in range(2):  # the second time the sleeps run as restarted syscalls
            ev, _ = inspect_json(pid)
            check(ev["verdict"] == "ok", "verdict", ev)
            check(len(ev["threads"]) == 3, "3 threads", ev)
            for t in ev["threads"]:
                check(t["owner_tid"] is None, "no owner anywhere", t)
            check(any(t["stack"] for t in ev["threads"]), "stacks taken", ev)
        text = inspect_text(pid)
        check(text.startswith("PID %d (hung)" % pid) and "verdict ok" in text.splitlines()[0],
              "header", text)
    finally:
        h.close()


def test_inspect_waiter_on_live_owner_is_blocked():
    h = Hung("waiter")
    try:
        pid, waiter, holder = h.facts["pid"], h.facts["waiter_tid"], h.facts["holder_tid"]
        lock = h.facts["lock"]
        wait_until(lambda: blocked_on(pid, waiter, lock), 5, "waiter blocked")
        ev, _ = inspect_json(pid)
        check(ev["verdict"] == "blocked", "verdict", ev)
        t = thread(ev, waiter)
        check(addr(t["futex"]) == addr(lock), "futex", t)
        check(t["owner_tid"] == holder and t["owner_alive"] is True, "owner alive", t, holder)
        check("waiter_take_lock" in symbols(t), "stack", symbols(t))
        check(thread(ev, holder)["futex"] is None, "the holder waits on nothing", ev)
        check(str(holder) in ev["explanation"], "explanation names the owner",
              ev["explanation"])
        check_left_as_it_was(pid, waiter, lock)
        text = inspect_text(pid)
        check("verdict blocked" in text.splitlines()[0], "text header", text)
        check("child_take_lock" not in text and "waiter_take_lock" in text, "text stack", text)
    finally:
        h.close()


def test_inspect_lock_cycle_is_deadlock():
    h = Hung("abba")
    try:
        pid, (a, b) = h.facts["pid"], h.facts["tids"]
        la, lb = h.facts["locks"]
        wait_until(lambda: blocked_on(pid, a, lb) and blocked_on(pid, b, la), 5, "ABBA")
        ev, _ = inspect_json(pid)
        check(ev["verdict"] == "deadlock", "verdict", ev)
        check(thread(ev, a)["owner_tid"] == b and thread(ev, b)["owner_tid"] == a,
              "each owns the other's lock", ev)
        check(thread(ev, a)["owner_alive"] and thread(ev, b)["owner_alive"], "both alive", ev)
        check("%d" % a in ev["explanation"] and "%d" % b in ev["explanation"] and
              "each other" in ev["explanation"], "explanation", ev["explanation"])
    finally:
        h.close()


def test_inspect_single_thread_private_futex_is_deadlock():
    h = Hung("futex")
    try:
        pid = h.facts["pid"]
        wait_until(lambda: thread_syscall(pid, pid).split()[:3] ==
                   ["202", h.facts["futex"], "0x80"], 5, "futex wait")
        ev, _ = inspect_json(pid)
        t = thread(ev, pid)
        check(ev["verdict"] == "deadlock", "verdict", ev)
        check(t["owner_tid"] is None and t["owner_alive"] is None, "no owner", t)
        check("only thread" in ev["explanation"], "explanation", ev["explanation"])
    finally:
        h.close()


def test_inspect_hostile_comm():
    h = Hung("child", evil_name=True)
    try:
        child, lock = h.facts["child"], h.facts["lock"]
        wait_until(lambda: blocked_on(child, child, lock), 5, "child blocked")
        ev, _ = inspect_json(child)
        check(ev["comm"] == "e\x1b[31mvil\nname", "comm round-trips through JSON", ev["comm"])
        check(ev["verdict"] == "deadlock", "verdict", ev)
        text = inspect_text(child)   # checks: no raw control byte anywhere
        check(text.splitlines()[0].startswith("PID %d (e\\x1b[31mvil\\x0aname)" % child),
              "escaped name in the header", text)
        check("verdict deadlock" in text.splitlines()[0], "verdict in the header", text)
        check(text.rstrip("\n").splitlines()[-1].startswith("deadlock: "),
              "explanation last", text)
    finally:
        h.close()


def test_inspect_no_stacks_when_already_traced():
    h = Hung("child")
    tracer = None
    try:
        child, lock = h.facts["child"], h.facts["lock"]
        wait_until(lambda: blocked_on(child, child, lock), 5, "child blocked")
        # another tracer holds the child (PTRACE_SEIZE: it keeps waiting)
        script = ("import ctypes,sys,time\n"
                  "libc=ctypes.CDLL(None,use_errno=True)\n"
                  "r=libc.ptrace(0x4206,int(sys.argv[1]),None,None)\n"
                  "print(r,ctypes.get_errno(),flush=True)\n"
                  "time.sleep(30)\n")
        tracer = subprocess.Popen([sys.executable, "-c", script, str(child)],
                                  stdout=subprocess.PIPE, text=True)
        check(tracer.stdout.readline().split()[0] == "0", "test tracer attached")
        ev, stderr = inspect_json(child)
        check(ev["verdict"] == "deadlock", "verdict without stacks", ev)
        check(all(t["stack"] == [] for t in ev["threads"]), "stacks empty", ev)
        notes = [l for l in stderr.splitlines() if l]
        check(len(notes) == 1 and "traced by PID %d" % tracer.pid in notes[0],
              "one note naming the tracer", stderr)
    finally:
        if tracer:
            tracer.kill()
            tracer.wait()
        h.close()


def test_inspect_thread_id_means_its_process():
    h = Hung("waiter")
    try:
        pid, waiter = h.facts["pid"], h.facts["waiter_tid"]
        wait_until(lambda: blocked_on(pid, waiter, h.facts["lock"]), 5, "waiter blocked")
        p = run(["inspect", "--json", str(waiter)])
        check(p.returncode == 0, "status", p.stderr)
        ev = parse_event(p.stdout)
        check(ev["pid"] == pid and ev["verdict"] == "blocked", "the whole process", ev)
        check("thread of PID %d" % pid in p.stderr, "a note says so", p.stderr)
    finally:
        h.close()


def free_pid():
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read()) - 1
    while os.path.exists("/proc/%d" % pid):
        pid -= 1
    return pid


def check_one_line_error(args, status, words):
    p = run(args)
    check(p.returncode == status, "%s exited %d" % (args, p.returncode), p.stderr)
    check(p.stdout == "", "nothing on stdout", p.stdout)
    lines = p.stderr.splitlines()
    check(len(lines) == 1 and all(w in lines[0] for w in words), "one line naming it",
          p.stderr)


def test_inspect_errors():
    pid = free_pid()
    check_one_line_error(["inspect", str(pid)], 1, ["no process", str(pid)])
    check_one_line_error(["inspect", "--json", str(pid)], 1, ["no process", str(pid)])
    check_one_line_error(["inspect", "2"], 1, ["kernel thread", "kthreadd"])
    check_one_line_error(["inspect", "--json", "2"], 1, ["kernel thread"])
    check_one_line_error(["inspect", "nope"], 2, ["invalid PID"])


def test_inspect_lock_of_exited_thread_is_deadlock():
    h = Hung("orphan")
    try:
        pid, lock, gone = h.facts["pid"], h.facts["lock"], h.facts["holder_tid"]
        wait_until(lambda: blocked_on(pid, pid, lock), 5, "main thread blocked")
        ev, _ = inspect_json(pid)
        t = thread(ev, pid)
        check(ev["verdict"] == "deadlock", "verdict", ev)
        check(t["owner_tid"] == gone and t["owner_alive"] is False, "owner gone", t, gone)
        check("main_take_lock" in symbols(t), "stack", symbols(t))
        check("does not exist" in ev["explanation"], "explanation", ev["explanation"])
    finally:
        h.close()


def test_inspect_stopped_process_stays_stopped():
    import signal
    h = Hung("healthy")
    try:
        pid = h.facts["pid"]
        wait_until(lambda: len(os.listdir("/proc/%d/task" % pid)) == 3, 5, "3 threads")
        os.kill(pid, signal.SIGSTOP)
        wait_until(lambda: status_fields(pid)["State"].strip().startswith("T"), 5, "stopped")
        ev, _ = inspect_json(pid)
        check(ev["verdict"] == "blocked" and "kill -CONT" in ev["explanation"], "verdict", ev)
        check(all(t["state"] == "T" for t in ev["threads"]), "all threads stopped", ev)
        check(any(t["stack"] for t in ev["threads"]), "stacks of stopped threads", ev)
        time.sleep(0.1)
        for tid in os.listdir("/proc/%d/task" % pid):
            st = status_fields(int(tid)) if os.path.exists("/proc/%s" % tid) else {}
            check(st.get("State", "").strip().startswith("T") and
                  st.get("TracerPid", "").strip() == "0",
                  "thread %s still stopped, untraced" % tid, st)
        os.kill(pid, signal.SIGCONT)
        wait_until(lambda: not status_fields(pid)["State"].strip().startswith("T"), 5,
                   "running again after SIGCONT")
    finally:
        h.close()


def test_inspect_not_permitted():
    h = Hung("waiter")
    try:
        pid = h.facts["pid"]
        # as nobody: /proc/PID/stat is readable, what the threads wait on is not
        p = subprocess.run([binary_for_nobody(), "inspect", str(pid)], capture_output=True,
                           text=True, timeout=30, user=65534, group=65534, extra_groups=[])
        check_sanitizers(p.stderr)
        check(p.returncode == 1, "exit status", p.returncode, p.stderr)
        check(p.stdout == "", "nothing on stdout", p.stdout)
        lines = p.stderr.splitlines()
        check(len(lines) == 1 and "Permission denied" in lines[0], "one line", p.stderr)
    finally:
        h.close()
