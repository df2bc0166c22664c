#!/usr/bin/env python3
"""Python programs whose forks inherit a held lock that is no frozen copy
after all, for tests/test_verdicts.py.

    py_verdicts.py MODE

mplock    a thread holds a multiprocessing.Lock (a semaphore in shared memory)
          across 10 os.fork()s; each child takes it once the thread releases
          it, and exits 0
logging   a logging thread is inside a handler's emit(), its lock held, at
          os.fork(); the child logs through that handler (logging re-creates
          its handler locks in every child) and exits 0

Prints one JSON line of facts: pids, TIDs, the lock's address (a sem_t).
"""

import ctypes
import json
import logging
import multiprocessing
import os
import sys
import threading
import time

MODE = sys.argv[1]


def sem_of(lock):
    """The sem_t* inside a _thread.lock / _thread.RLock (PyThread_type_lock,
    right after PyObject_HEAD)."""
    return "0x%x" % ctypes.c_void_p.from_address(id(lock) + 2 * ctypes.sizeof(ctypes.c_void_p)).value


def wait_all(pids, timeout=10.0):
    """Exit statuses of the children (killed after timeout: None)."""
    out, deadline = {}, time.time() + timeout
    for pid in pids:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                out[pid] = os.waitstatus_to_exitcode(status)
                break
            if time.time() > deadline:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                out[pid] = None
                break
            time.sleep(0.01)
    return [out[p] for p in pids]


def mode_mplock():
    lock = multiprocessing.Lock()
    held, release = threading.Event(), threading.Event()
    # takes the lock, says so, keeps it until released
    t = threading.Thread(name="mp-holder", target=lambda: (
        lock.acquire(), held.set(), release.wait(30), lock.release()))
    t.start()
    held.wait(10)
    time.sleep(0.05)
    children = []
    for _ in range(10):
        pid = os.fork()
        if pid == 0:
            with lock:	# waits for the parent's thread: the same semaphore
                pass
            os._exit(0)
        children.append(pid)
        time.sleep(0.01)
    time.sleep(0.1)
    release.set()
    statuses = wait_all(children)
    t.join()
    return {"children": children, "statuses": statuses, "lock": "0x%x" % lock._semlock.handle,
            "holder_tid": t.native_id}


class SlowHandler(logging.StreamHandler):
    """A handler whose emit() waits: its lock is held meanwhile."""

    def __init__(self, stream):
        super().__init__(stream)
        self.inside, self.go_on = threading.Event(), threading.Event()

    def emit(self, record):
        if threading.current_thread().name == "log-writer":
            self.inside.set()
            self.go_on.wait(30)
        super().emit(record)


def mode_logging():
    handler = SlowHandler(open(os.devnull, "w"))
    log = logging.getLogger("fh")
    log.addHandler(handler)
    t = threading.Thread(target=log.error, args=("from a logging thread",), name="log-writer")
    t.start()
    handler.inside.wait(10)
    time.sleep(0.05)
    pid = os.fork()
    if pid == 0:
        log.error("the child logs through the inherited handler")
        os._exit(0)
    statuses = wait_all([pid])
    handler.go_on.set()
    t.join()
    return {"children": [pid], "statuses": statuses, "lock": sem_of(handler.lock),
            "holder_tid": t.native_id}


facts = {"mplock": mode_mplock, "logging": mode_logging}[MODE]()
facts["pid"] = os.getpid()
facts["python"] = "%d.%d.%d" % sys.version_info[:3]
print(json.dumps(facts), flush=True)
