"""Python threads contending on one threading.Lock.

    python3 pythreads.py [--cpu N] THREADS ITERS

Each of THREADS threads takes and releases the lock ITERS times, updating
shared state inside it. CPython up to 3.13 builds threading.Lock on a
semaphore (sem_trywait, sem_post), and every hand-over of the GIL (a blocked
acquire, the switch interval) goes through pthread_mutex_lock/unlock and a
condition variable: the cost a traced Python service pays.

--cpu pins the process to one CPU: with the GIL handed between cores, the
time of a run varies by a factor of two from one run to the next (measured
on 2 cores), which would drown the costs being compared. Pinned, the threads
take turns, so elapsed / (THREADS * ITERS) is what one acquire+release costs.

Prints {"threads":..,"iters":..,"ops":THREADS*ITERS,"elapsed_ns":..}, timed
from the moment all threads are ready, so interpreter start-up is not
measured. With FH_BENCH_PAUSE in the environment (the runner's counting
runs) it stops before starting its threads and after joining them, printing
{"pause":..}, until SIGUSR1 (see common.h).
"""

import argparse
import json
import os
import signal
import sys
import threading
import time


def pause_at(edge):
    if os.environ.get("FH_BENCH_PAUSE"):
        print(json.dumps({"pause": edge, "loop": 0}), flush=True)
        signal.sigwait({signal.SIGUSR1})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", type=int)
    ap.add_argument("threads", type=int)
    ap.add_argument("iters", type=int)
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    # before any thread: they inherit it, and only sigwait() takes the signal
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
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

    pause_at("before")
    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.monotonic_ns()
    for w in workers:
        w.join()
    elapsed = time.monotonic_ns() - t0
    pause_at("after")
    if shared["count"] != threads * iters:
        sys.exit("pythreads: lost updates")
    print(json.dumps({"threads": threads, "iters": iters, "ops": threads * iters,
                      "elapsed_ns": elapsed}))


if __name__ == "__main__":
    main()
