"""forkhazard's Python demo: a thread named "cache-refresher" holds a
threading.Lock most of the time; the main thread forks a worker, which takes
the same lock and hangs, since the thread that would release it does not
exist in the child. The demo waits 2 s for its worker, then kills it.

    sudo forkhazard -- python3 demo/demo.py
"""

import os
import signal
import threading
import time

cache_lock = threading.Lock()
started = threading.Event()


def refresh_cache():
    while True:
        with cache_lock:  # held most of the time
            started.set()
            time.sleep(0.05)
        time.sleep(0.001)


def child_work():
    with cache_lock:  # hangs: its holder is not in the child
        pass
    os._exit(0)


def spawn_worker():
    pid = os.fork()
    if pid == 0:
        child_work()
    return pid


def main():
    threading.Thread(target=refresh_cache, name="cache-refresher", daemon=True).start()
    started.wait()
    pid = spawn_worker()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            print("demo: the worker finished")
            return 0
        time.sleep(0.05)
    print("demo: worker %d hung for 2 s; killing it" % pid)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
