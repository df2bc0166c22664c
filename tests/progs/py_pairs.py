#!/usr/bin/env python3
"""N threading.Lock acquire+release between handshakes, for tests/test_cost.py
(the protocol of tests/progs/pairs.c: "ready", a byte on stdin, the N pairs,
"done", a byte on stdin, one JSON line). Runs on every CPython 3."""

import json
import os
import sys
import threading

n = int(sys.argv[1])
stop = threading.Event()
idle = threading.Thread(target=stop.wait)
idle.start()
lock = threading.Lock()


def handshake(say):
    sys.stdout.write(say + "\n")
    sys.stdout.flush()
    os.read(0, 1)


handshake("ready")
for _ in range(n):
    lock.acquire()
    lock.release()
handshake("done")
stop.set()
idle.join()
print(json.dumps({"pid": os.getpid(), "n": n, "python": "%d.%d" % sys.version_info[:2]}))
