"""A Python service doing lock-heavy work that forks a worker once.

    python3 pyservice.py [--cpu N] [--threads N] [--before S] [--settle S] WINDOW

A concurrent.futures.ThreadPoolExecutor runs THREADS (default 2) tasks that
take one threading.Lock in a loop, update shared state under it and count
their operations. After --before seconds the main thread forks a worker
while they run (the child exits at once): a fork of a multithreaded process,
which is what makes forkhazard's adaptive whole-system mode put lock probes
on the process. The service then runs --settle seconds (the tool attaches
its probes; an overhead governor measures over >= 1 s and acts), and its
throughput is counted over the next WINDOW seconds.

--cpu pins the process to one CPU, as bench/progs/pythreads.py does, for
the same reason: the GIL handed between cores makes throughput vary twofold.

Prints {"ops":N,"elapsed_ns":..} for the window (ops = lock acquire+release
by all tasks), with "ops_before" and "before_ns" for the time before the
fork, and "worker" (the forked PID). Around the window it prints
{"mark":"window_start"} and {"mark":"window_end"}: the runner's counting
runs read the probes' hit counters there (the service does not stop).
"""

import argparse
import concurrent.futures
import json
import os
import threading
import time
import warnings

CHUNK = 64	# operations between two updates of a task's counter


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cpu", type=int)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--before", type=float, default=0.5)
    ap.add_argument("--settle", type=float, default=2.0)
    ap.add_argument("window", type=float)
    args = ap.parse_args()
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    # the point of the benchmark: fork while threads run (3.12+ warns)
    warnings.simplefilter("ignore", DeprecationWarning)

    lock = threading.Lock()
    shared = {"value": 0}
    counts = [0] * args.threads
    stop = threading.Event()

    def task(i):
        while not stop.is_set():
            for _ in range(CHUNK):
                with lock:
                    shared["value"] += 1
            counts[i] += CHUNK

    def total():
        return sum(counts)

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.threads) as pool:
        futures = [pool.submit(task, i) for i in range(args.threads)]
        time.sleep(0.05)	# the tasks are running
        t0, n0 = time.monotonic_ns(), total()
        time.sleep(args.before)
        t1, n1 = time.monotonic_ns(), total()
        worker = os.fork()
        if worker == 0:
            os._exit(0)	# touches no lock: another thread may hold one
        os.waitpid(worker, 0)
        time.sleep(args.settle)
        print(json.dumps({"mark": "window_start"}), flush=True)
        t2, n2 = time.monotonic_ns(), total()
        time.sleep(args.window)
        t3, n3 = time.monotonic_ns(), total()
        print(json.dumps({"mark": "window_end"}), flush=True)
        stop.set()
        for f in futures:
            f.result()
    print(json.dumps({"ops": n3 - n2, "elapsed_ns": t3 - t2, "ops_before": n1 - n0,
                      "before_ns": t1 - t0, "worker": worker, "threads": args.threads}))


if __name__ == "__main__":
    main()
