"""Issue 6: Python programs. CPython (3.11 to 3.13) builds threading.Lock and
RLock on sem_t: locks are reported as kind "sem" with "runtime": "python", and
the semaphores CPython uses as signals (Condition waiters, every idle worker
in queue.get(), each thread's _tstate_lock sentinel) are not hazards."""

import os
import sys

from fh import Skip, addr, check
from test_kinds import traced

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "progs", "py_kinds.py")


def py(mode, extra=(), hang="1.5"):
    """forkhazard -- python3 py_kinds.py MODE: (result, facts)."""
    r, f = traced([sys.executable, SCRIPT, mode, hang], extra=extra, timeout=120)
    if tuple(int(x) for x in f["python"].split(".")) >= (3, 13):
        # 3.13 moved threading.Lock to PyMutex (no libc call): see README
        raise Skip("CPython %s locks are not sem_t" % f["python"])
    return r, f


def foreign(ev):
    return [l for l in ev["locks"] or []]


def test_threading_lock_held_at_fork():
    r, f = py("lock")
    ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
    check(ev["severity"] == "hazard", "a hazard", ev)
    locks = foreign(ev)
    check(len(locks) == 1, "only the user's lock (no sentinel, no waiter)", locks)
    lock = locks[0]
    check(addr(lock["addr"]) == addr(f["lock"]), "the lock's semaphore", lock, f)
    check(lock["kind"] == "sem" and lock.get("runtime") == "python", "a Python lock", lock)
    check(lock["holder_tid"] == f["holder_tid"], "the holder thread", lock, f)
    check(lock["holder_comm"] == f["holder_name"], "the holder's thread name", lock, f)
    check(all(l.get("runtime") == "python" for l in ev["own_locks"]),
          "the forking thread's own locks are Python's too", ev["own_locks"])
    check(f["child_killed"], "the child hung on it", f)
    d = r.one("deadlock", pid=f["child"])
    check(addr(d["futex"]) == addr(f["lock"]), "deadlock on the lock's semaphore", d, f)
    check(d["lock"] is not None and d["lock"].get("runtime") == "python", "matched", d)


def test_logging_handler_lock_child_survives():
    r, f = py("logging")
    ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
    locks = foreign(ev)
    check([addr(l["addr"]) for l in locks] == [addr(f["lock"])], "the handler's lock", locks, f)
    check(locks[0]["holder_tid"] == f["holder_tid"] and locks[0].get("runtime") == "python",
          "held by the logging thread", locks[0], f)
    check(not f["child_killed"] and f["child_status"] == 0,
          "logging re-creates its handler locks in the child: it logs and exits", f)
    check(r.of("deadlock", pid=f["child"]) == [], "no deadlock", r.events)
    check(r.one("child", pid=f["child"])["outcome"] == "exit", "exited", r.events)


def test_multiprocessing_pool_worker_deadlocks():
    r, f = py("pool")
    check(f["worker_hung"], "the pool's task never finished", f)
    worker = f["workers"][0]
    ev = r.one("fork", pid=f["pid"], child_pid=worker)
    check([addr(l["addr"]) for l in foreign(ev)] == [addr(f["lock"])],
          "the worker's fork inherited the held lock", ev)
    d = r.one("deadlock", pid=worker)
    check(addr(d["futex"]) == addr(f["lock"]) and d["owner_tid"] == f["holder_tid"],
          "the worker deadlocks on it", d, f)


def test_lock_released_by_another_thread():
    # A took the lock, B released it (sem_post from another thread) and took
    # it again: B holds it, A holds nothing.
    r, f = py("handoff")
    ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
    locks = foreign(ev)
    check([(addr(l["addr"]), l["holder_tid"]) for l in locks] == [(addr(f["lock"]), f["b_tid"])],
          "held by B only", locks, f)


def no_hazard(r, f, what):
    forks = r.of("fork", pid=f["pid"])
    check(len(forks) == len(f["children"]), "%s: every fork reported" % what, forks)
    for ev in forks:
        check(ev["locks"] == [] and ev["severity"] == "info", "%s: no foreign lock" % what, ev)
    check(r.summary()["hazards"] == 0, "%s: no hazard counted" % what, r.summary())


def test_gil_heavy_threads_hold_nothing():
    """Seven of the eight threads wait for the GIL in pthread_cond_timedwait at
    any fork: the GIL's mutex is released there and none of them may show. The
    one thread that just dropped or took the GIL may hold the GIL's own mutex
    for the microseconds around its wake-up (a real hold: CPython recreates
    the GIL in the child); nothing else may be reported."""
    r, f = py("gil")
    forks = r.of("fork", pid=f["pid"])
    check(len(forks) == len(f["children"]), "every fork reported", forks)
    transient = 0
    for ev in forks:
        locks = ev["locks"]
        for l in locks:
            frame = l["stack"][0] if l["stack"] else {}
            check(l["kind"] == "mutex" and frame.get("symbol") in ("drop_gil", "take_gil"),
                  "only the GIL's own mutex, by a thread around its wake-up", l)
        check(len(locks) <= 1, "never the waiting threads", locks)
        transient += len(locks)
    check(transient <= len(forks) // 2, "the GIL's mutex held in a fork's instant only rarely",
          transient, len(forks))


def test_idle_executor_workers_hold_nothing():
    r, f = py("executor")
    no_hazard(r, f, "idle ThreadPoolExecutor workers in queue.get()")


def test_timed_out_condition_waiters_hold_nothing():
    """Each timed-out Condition.wait frees its waiter lock while it is taken
    (sem_destroy makes it nobody's): the thread holds nothing afterwards."""
    r, f = py("condtimeout")
    no_hazard(r, f, "a thread whose Condition waits timed out")
