"""A WSGI app for `gunicorn --preload` (tests/test_pyreport.py): at import,
in the master, it starts a thread named "metrics" that takes a
threading.Lock every millisecond and holds it most of the time; each worker,
as it is forked, resets the counters under that lock (an at-fork hook), and
hangs there when the fork copied the lock held. Lines marked "# LINE name"
are what the test expects the report to name."""

import os
import threading
import time

metrics_lock = threading.Lock()
counters = {"requests": 0, "ticks": 0}


def collect():
    while True:
        with metrics_lock:  # LINE collect
            counters["ticks"] += 1
            time.sleep(0.001)


def reset_in_worker():
    with metrics_lock:  # LINE reset
        counters["requests"] = 0


threading.Thread(target=collect, name="metrics", daemon=True).start()
os.register_at_fork(after_in_child=reset_in_worker)


def app(environ, start_response):
    with metrics_lock:
        counters["requests"] += 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
