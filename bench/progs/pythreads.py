"""Python threads contending on one threading.Lock.

    python3 pythreads.py [--cpu N] THREADS ITERS

Each of THREADS threads takes and releases the lock ITERS times, updating
shared state inside it. CPython 3.11 builds threading.Lock on a semaphore,
but every hand-over of the GIL (a blocked acquire, the switch interval) goes
through pthread_mutex_lock/unlock: the cost a traced Python service pays.

--cpu pins the process to one CPU: with the GIL handed between cores, the
time of a run varies by a factor of two from one run to the next (measured
on 2 cores), which would drown the costs being compared.

Prints {"threads":..,"iters":..,"elapsed_ns":..}, timed from the moment all
threads are ready, so interpreter start-up is not measured.
"""

import argparse
import json
import os
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", type=int)
    ap.add_argument("threads", type=int)
    ap.add_argument("iters", type=int)
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    threads, iters = args.threads, args.iters
    lock = threading.Lock()
    shared = {"count": 0, "last": None}
    start = threading.Barrier(threads + 1)

    def work(name):
        start.wait()
        for i in range(iters):
            with lock:
                shared["count"] += 1
                shared["last"] = name

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.monotonic_ns()
    for w in workers:
        w.join()
    elapsed = time.monotonic_ns() - t0
    if shared["count"] != threads * iters:
        sys.exit("pythreads: lost updates")
    print(json.dumps({"threads": threads, "iters": iters, "elapsed_ns": elapsed}))


if __name__ == "__main__":
    main()
