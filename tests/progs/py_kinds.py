#!/usr/bin/env python3
"""Python programs that fork with threads around, for tests/test_python.py.

    py_kinds.py MODE [HANG_SECONDS]

lock      a thread named "lock-holder" holds a threading.Lock at os.fork(); the
          child takes it (deadlocks: killed after HANG)
logging   a thread holds a logging handler's lock at os.fork(); the child logs
          through that handler (logging re-creates its locks after fork)
pool      a thread holds a threading.Lock while a fork-context
          multiprocessing.Pool starts; its worker's task takes the lock
handoff   thread A takes a threading.Lock, thread B releases it and takes it
          again: B holds it at the fork, A does not
gil       eight threads compute in pure Python (GIL contention); main forks 10
          times, each child exits at once; no lock is held by anyone
executor  a ThreadPoolExecutor's four workers ran tasks and sit idle in
          queue.get(); main forks 5 times, each child exits at once
condtimeout  a thread's Condition.wait(timeout) times out 20 times (each
          waiter lock is freed while taken), then it sleeps; main forks 3 times

Prints one JSON line of facts (pids, TIDs, and the address of each lock's
semaphore as CPython 3.11-3.12 keep it: the PyThread_type_lock pointer that
follows PyObject_HEAD in a _thread.lock or _thread.RLock object).
"""

import ctypes
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MODE = sys.argv[1]
HANG = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
libc = ctypes.CDLL(None, use_errno=True)


def sem_of(lock):
    """The sem_t* inside a _thread.lock / _thread.RLock (CPython < 3.13)."""
    return "0x%x" % ctypes.c_void_p.from_address(id(lock) + 2 * ctypes.sizeof(ctypes.c_void_p)).value


def set_os_name(name):
    """What CPython 3.14 does for every Thread: the OS thread name."""
    libc.prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME


def reap(pid):
    """Wait for a child up to HANG seconds; kill it if it hangs. True if killed."""
    deadline = time.time() + HANG
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return False, status
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return True, status


def holder_thread(lock, name, before_fork=None):
    """Start a thread that takes `lock` (acquire()) and keeps it until the
    returned event is set. Returns (thread, release_event)."""
    held, release = threading.Event(), threading.Event()

    def run():
        set_os_name(name)
        lock.acquire()
        held.set()
        release.wait(30)
        lock.release()

    t = threading.Thread(target=run, name=name)
    t.start()
    held.wait(10)
    time.sleep(0.1)  # the thread waits in release.wait() now, not in between
    return t, release


def mode_lock():
    lock = threading.Lock()
    t, release = holder_thread(lock, "lock-holder")
    pid = os.fork()
    if pid == 0:
        lock.acquire()
        os._exit(0)
    killed, _ = reap(pid)
    release.set()
    t.join()
    return {"child": pid, "child_killed": killed, "lock": sem_of(lock),
            "holder_tid": t.native_id, "holder_name": "lock-holder"}


def mode_logging():
    handler = logging.StreamHandler(open(os.devnull, "w"))
    log = logging.getLogger("fh")
    log.addHandler(handler)
    t, release = holder_thread(handler.lock, "log-holder")
    pid = os.fork()
    if pid == 0:
        log.error("the child logs through the inherited handler")
        os._exit(0)
    killed, status = reap(pid)
    release.set()
    t.join()
    return {"child": pid, "child_killed": killed, "child_status": status,
            "lock": sem_of(handler.lock), "holder_tid": t.native_id}


def take(lock_addr):
    # runs in the pool worker: the lock is the module-level one, inherited
    LOCK.acquire()
    return os.getpid()


LOCK = threading.Lock()


def mode_pool():
    t, release = holder_thread(LOCK, "pool-holder")
    ctx = multiprocessing.get_context("fork")
    pool = ctx.Pool(1)
    workers = [p.pid for p in pool._pool]
    res = pool.map_async(take, [0])
    res.wait(HANG)
    hung = not res.ready()
    pool.terminate()
    pool.join()
    release.set()
    t.join()
    return {"workers": workers, "worker_hung": hung, "lock": sem_of(LOCK),
            "holder_tid": t.native_id}


def mode_handoff():
    lock = threading.Lock()
    a_took, b_took, done = threading.Event(), threading.Event(), threading.Event()
    tids = {}

    def a():
        tids["a"] = threading.get_native_id()
        lock.acquire()
        a_took.set()
        done.wait(30)

    def b():
        tids["b"] = threading.get_native_id()
        a_took.wait(10)
        lock.release()  # a threading.Lock may be released by any thread
        lock.acquire()
        b_took.set()
        done.wait(30)
        lock.release()

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start()
    tb.start()
    b_took.wait(10)
    time.sleep(0.1)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    reap(pid)
    done.set()
    ta.join()
    tb.join()
    return {"child": pid, "lock": sem_of(lock), "a_tid": tids["a"], "b_tid": tids["b"]}


def fork_children(n, pause):
    """Fork n children that exit at once, `pause` seconds apart; their PIDs."""
    children = []
    for _ in range(n):
        time.sleep(pause)
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        children.append(pid)
        reap(pid)
    return children


def mode_gil():
    stop = False

    def spin():
        n = 0
        while not stop:
            n += 1

    threads = [threading.Thread(target=spin) for _ in range(8)]
    for t in threads:
        t.start()
    children = fork_children(10, 0.05)
    stop = True
    for t in threads:
        t.join()
    return {"children": children}


def mode_executor():
    ex = ThreadPoolExecutor(max_workers=4)
    list(ex.map(lambda x: x * x, range(100)))
    # make every worker take a task, so that all four have been through get()
    gate = threading.Barrier(4)
    list(ex.map(lambda _: gate.wait(5), range(4)))
    time.sleep(0.15)  # all idle in work_queue.get(block=True)
    children = fork_children(5, 0.05)
    workers = [t.native_id for t in ex._threads]
    ex.shutdown()
    return {"children": children, "workers": workers}


def mode_condtimeout():
    cond = threading.Condition()
    done, release = threading.Event(), threading.Event()

    def waiter():
        with cond:
            for _ in range(20):
                cond.wait(0.01)
        done.set()
        while not release.is_set():
            time.sleep(0.01)

    t = threading.Thread(target=waiter)
    t.start()
    done.wait(10)
    children = fork_children(3, 0.1)
    release.set()
    t.join()
    return {"children": children}


facts = {"lock": mode_lock, "logging": mode_logging, "pool": mode_pool,
         "handoff": mode_handoff, "gil": mode_gil, "executor": mode_executor,
         "condtimeout": mode_condtimeout}[MODE]()
facts["pid"] = os.getpid()
facts["python"] = "%d.%d" % sys.version_info[:2]
print(json.dumps(facts), flush=True)
