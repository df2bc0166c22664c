"""A Python program whose child deadlocks on a threading.Lock that another
thread held at os.fork() (the classic: bugs.python.org issue 6721).
Prints one JSON line of facts; kills its own hung child after HANG seconds."""

import json
import os
import signal
import sys
import threading
import time

HANG = float(sys.argv[1]) if len(sys.argv) > 1 else 2.0
lock = threading.Lock()
held = threading.Event()
done = threading.Event()


def holder():
    with lock:
        held.set()
        done.wait(10)


t = threading.Thread(target=holder, name="lock-holder")
t.start()
held.wait(5)
pid = os.fork()
if pid == 0:
    lock.acquire()  # inherited locked: nobody left to release it
    os._exit(0)
killed = False
deadline = time.time() + HANG
while time.time() < deadline:
    if os.waitpid(pid, os.WNOHANG) != (0, 0):
        break
    time.sleep(0.02)
else:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    killed = True
done.set()
t.join()
print(json.dumps({"pid": os.getpid(), "child": pid, "child_killed": killed,
                  "holder_tid": t.native_id}))
