"""A thread named chatter-0 holds a threading.Lock (or RLock: argument
"rlock") taken in chatter(); the main thread forks in do_fork(); the child
hangs acquiring the lock in child_take(). Prints one JSON line of facts (its
PID, the child's, the holder's TID, the lines marked "# LINE name" below) and
sleeps in main_wait() until killed; the test kills the child too.
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
        child_take()  # LINE call
    return pid


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


t = threading.Thread(target=chatter, name="chatter-0", daemon=True)
t.start()
held.wait(10)
child = do_fork()
print(json.dumps({"pid": os.getpid(), "child": child, "holder_tid": holder_tid[0],
                  "main_tid": threading.get_native_id(), "lines": marked_lines(),
                  "file": os.path.abspath(__file__),
                  "python": "%d.%d.%d" % sys.version_info[:3]}), flush=True)
main_wait()
