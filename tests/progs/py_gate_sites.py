"""Python fork call sites for the gate (tests/test_pygate.py): a thread named
"holder" takes a threading.Lock in hold() and keeps it while the main
thread forks from fork_a() twice, fork_b() once, then starts a
multiprocessing Pool (fork) from pool_a() and from pool_b(); every child
exits at once (nothing in them takes the lock). Prints its facts as one
JSON line first: its pid and the lines of each call, marked `# L:NAME`."""

import json
import multiprocessing
import os
import sys
import threading
import time

lock = threading.Lock()
taken = threading.Event()
done = threading.Event()


def lines():
    out = {}
    with open(__file__) as f:
        for i, text in enumerate(f, 1):
            if "# L:" in text and "out[" not in text:
                out[text.split("# L:")[1].strip()] = i
    return out


def hold():
    lock.acquire()  # L:acquire
    taken.set()
    done.wait()
    lock.release()


def fork_a():
    pid = os.fork()  # L:fork_a
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def fork_b():
    pid = os.fork()  # L:fork_b
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def pool_a(ctx):
    p = ctx.Pool(1)  # L:pool_a
    p.terminate()
    p.join()


def pool_b(ctx):
    p = ctx.Pool(1)  # L:pool_b
    p.terminate()
    p.join()


def main():
    print(json.dumps({"pid": os.getpid(), "file": os.path.abspath(__file__),
                      "lines": lines()}), flush=True)
    t = threading.Thread(target=hold, name="holder")
    t.start()
    taken.wait()
    fork_a()
    fork_a()
    fork_b()
    if "--pools" in sys.argv:
        ctx = multiprocessing.get_context("fork")
        pool_a(ctx)
        pool_b(ctx)
    # alive while forkhazard reads the code objects of the last fork's frames
    # (a parent gone by then is read through its child, gone too here)
    time.sleep(0.5)
    done.set()
    t.join()


if __name__ == "__main__":
    main()
