"""A thread named chatter-0 holds a threading.Lock (or RLock: argument
"rlock") taken in chatter(); the main thread forks in do_fork(); the child
hangs acquiring the lock in child_take(). Prints one JSON line of facts (its
PID, the child's, the holder's TID, the lines marked "# LINE name" below) and
sleeps in main_wait() until killed; the test kills the child too.

"pool": the same thread holds the Lock while the main thread starts a
multiprocessing.Pool (fork): its worker hangs taking the lock in pool_take();
the facts name the worker ("workers") and the lock's line ("pool").
"cthread LIB": no Python thread holds anything; a thread of C code
(libfhcthread.so, through ctypes) holds a pthread mutex at do_fork(); the
child exits at once.
Runs under any CPython from 3.10 on."""

import json
import os
import re
import sys
import threading
import time

KIND = sys.argv[1] if len(sys.argv) > 1 else "lock"
lock = threading.RLock() if KIND == "rlock" else threading.Lock()
held = threading.Event()
never = threading.Event()
holder_tid = []


def chatter():
    holder_tid.append(threading.get_native_id())
    with lock:  # LINE take
        held.set()
        never.wait()  # LINE hold


def child_take():
    lock.acquire()  # LINE child
    os._exit(0)


def do_fork():
    pid = os.fork()  # LINE fork
    if pid == 0:
        if KIND == "cthread":
            os._exit(0)
        child_take()  # LINE call
    return pid


def pool_take(_):
    lock.acquire()  # LINE pool
    return os.getpid()


def main_wait():
    time.sleep(3600)  # LINE main


def marked_lines():
    lines = {}
    with open(__file__) as f:
        for n, text in enumerate(f, 1):
            m = re.search(r"# LINE (\w+)$", text.rstrip())
            if m:
                lines[m.group(1)] = n
    return lines


facts = {"pid": os.getpid(), "main_tid": threading.get_native_id(), "lines": marked_lines(),
         "file": os.path.abspath(__file__), "python": "%d.%d.%d" % sys.version_info[:3]}
if KIND == "cthread":
    import ctypes
    lib = ctypes.CDLL(sys.argv[2])
    lib.fh_cthread_mutex.restype = ctypes.c_void_p
    lib.fh_cthread_start()
    facts.update(holder_tid=lib.fh_cthread_tid(), lock="0x%x" % lib.fh_cthread_mutex())
    t = threading.Thread(target=never.wait, name="idle", daemon=True)
    t.start()
    facts["child"] = do_fork()
    os.waitpid(facts["child"], 0)
    print(json.dumps(facts), flush=True)
    # alive while forkhazard reads the fork (a slow, sanitized build under
    # load): the holders' names, the sentinels, the symbols are read from here
    time.sleep(0.5)
    sys.exit(0)
t = threading.Thread(target=chatter, name="chatter-0", daemon=True)
t.start()
held.wait(10)
if KIND == "pool":
    import multiprocessing
    pool = multiprocessing.get_context("fork").Pool(1)
    result = pool.map_async(pool_take, [0])
    facts["workers"] = [p.pid for p in pool._pool]
else:
    facts["child"] = do_fork()
facts["holder_tid"] = holder_tid[0]
print(json.dumps(facts), flush=True)
main_wait()
