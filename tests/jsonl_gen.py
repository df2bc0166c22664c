"""Made-up recordings for `forkhazard report` (tests/test_report.py, the
`report` row of bench/run.py): JSON Lines shaped as forkhazard -j -o and the
service write them (docs/json.md), every record valid against
docs/json.schema.json, with the stacks, locks and sizes of real ones."""

import datetime
import json
import random

T0 = datetime.datetime(2026, 11, 25, 18, 0, 0, tzinfo=datetime.timezone.utc)
LIBC = "/usr/lib/x86_64-linux-gnu/libc.so.6"
ADVICE = ("Another thread held this lock, and the child's copy stays locked. Exec right after fork, "
          "or use posix_spawn.")


def ts(seconds):
    return (T0 + datetime.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def frame(sym, module, file, line, off=19, fp=False):
    f = {"addr": "0x%x" % (0x55a2a3969000 + off * 7 + line), "symbol": sym, "offset": off,
         "module": module, "file": file, "line": line,
         "build_id": "706788f3d2b8b2d5d4443e752d931fe99c83a19f"}
    if fp:
        f["fp"] = True
    return f


def pyframe(function, file, line):
    return {"file": file, "line": line, "function": function}


def site_id(i):
    return "%016x" % (0x8cbb290be647d000 + i)


class Site:
    """One hazard site: a program, where it forks, where its lock is taken;
    python: a Python program's (Python frames above the native ones: a Pool
    that forks below the user's call, a lock taken in the user's code)."""

    def __init__(self, i, python=False):
        self.i = i
        self.python = python
        app = "/srv/app%d/app.py" % i
        pool = "/usr/lib/python3.11/multiprocessing/"
        self.py_fork = [pyframe("Popen._launch", pool + "popen_fork.py", 66),
                        pyframe("Popen.__init__", pool + "popen_fork.py", 19),
                        pyframe("start_pool_%d" % i, app, 12 + i),
                        pyframe("<module>", app, 40)] if python else []
        self.py_lock = [pyframe("Cache.refresh_%d" % i, app, 30 + i),
                        pyframe("refresher", app, 36)] if python else []
        self.py_wait = [pyframe("Cache.get", app, 25)] if python else []
        self.id = site_id(i)
        self.exe = "app%d" % i
        self.module = "/srv/app%d/bin/app%d" % (i, i)
        self.src = "/srv/app%d/src/worker.c" % i
        self.fork = [frame("_Fork", LIBC, "../sysdeps/nptl/_Fork.c", 25),
                     frame("__fork", LIBC, "./posix/fork.c", 74),
                     frame("spawn_worker_%d" % i, self.module, self.src, 58 + i),
                     frame("main", self.module, self.src, 75),
                     frame("__libc_start_main", LIBC, "../csu/libc-start.c", 360)]
        self.lock = [frame("cache_refresh_%d" % i, self.module, self.src, 32 + i),
                     frame("refresher_main", self.module, self.src, 43, fp=True),
                     frame("start_thread", LIBC, "./nptl/pthread_create.c", 442, fp=True)]
        self.wait = [frame("__GI___lll_lock_wait", LIBC, "./nptl/lowlevellock.c", 49),
                     frame("write_report", self.module, self.src, 51)]

    def lock_record(self, tid):
        return {"addr": "0x55a2a396c0a0", "kind": "mutex", "holder_tid": tid,
                "holder_comm": "refresher", "py_thread": "refresher" if self.python else None,
                "held_ns": 100458988, "confirmed": True, "py_stack": self.py_lock,
                "stack": self.lock}

    def fork_event(self, t, pid, child, hazard=True):
        return {"type": "fork", "time": ts(t), "pid": pid, "tid": pid, "comm": self.exe,
                "py_thread": "MainThread" if self.python else None,
                "child_pid": child, "threads": 2, "severity": "hazard" if hazard else "info",
                "locks": [self.lock_record(pid + 1)] if hazard else [], "own_locks": [],
                "shared_locks": [], "internal_locks": [], "other_threads": None,
                **({"advice": ADVICE} if hazard else {}), "py_stack": self.py_fork, "stack": self.fork,
                **({"site": self.id} if hazard else {}),
                "cgroup": "/system.slice/app.service", "container_id": None,
                "exe_name": self.exe, "ns_pid": pid, "child_ns_pid": child}

    def child_event(self, t, child, parent, outcome):
        ev = {"type": "child", "time": ts(t), "pid": child, "parent_pid": parent,
              "outcome": outcome, "after_ns": 41000, "reinitialized": [], "cgroup": "/system.slice/app.service",
              "container_id": None}
        if outcome == "exit":
            ev["exit_status"] = 0
        return ev

    def deadlock_event(self, t, child, parent):
        return {"type": "deadlock", "time": ts(t), "pid": child, "tid": child,
                "comm": self.exe, "parent_pid": parent, "futex": "0x55a2a396c0a0",
                "owner_tid": parent + 1, "lock": self.lock_record(parent + 1),
                "py_stack": self.py_wait, "stack": self.wait, "site": self.id, "cgroup": "/system.slice/app.service",
                "container_id": None, "exe_name": self.exe, "ns_pid": child}


def recording(n_events, n_sites=5, seed=1, deadlock_every=500, python=False):
    """About n_events records of a -j recording: hazard forks of n_sites sites
    (the lower sites more often), each followed by its child's fate, a
    deadlock every deadlock_every forks, an info fork now and then, a lost
    record, the summary; python: of Python programs. Returns (lines, facts):
    facts counts by site."""
    rnd = random.Random(seed)
    sites = [Site(i, python) for i in range(n_sites)]
    lines, facts = [], {s.id: {"hazards": 0, "deadlocks": 0, "pids": set(),
                               "children": {"exec": 0, "exit": 0, "deadlock": 0}}
                        for s in sites}
    t, pid, forks = 0.0, 1000, 0
    while len(lines) < n_events - 2:
        s = sites[min(int(rnd.expovariate(1.0)), n_sites - 1)]
        pid = 1000 + 10 * (forks % 7) + s.i
        child = 100000 + forks
        t += 0.01
        forks += 1
        if forks % 97 == 0:
            lines.append(json.dumps(s.fork_event(t, pid, child, hazard=False)))
            continue
        f = facts[s.id]
        lines.append(json.dumps(s.fork_event(t, pid, child)))
        f["hazards"] += 1
        f["pids"].add(pid)
        if forks % deadlock_every == 0:
            lines.append(json.dumps(s.child_event(t + 0.001, child, pid, "deadlock")))
            lines.append(json.dumps(s.deadlock_event(t + 0.001, child, pid)))
            f["deadlocks"] += 1
            f["children"]["deadlock"] += 1
        else:
            outcome = "exec" if forks % 3 else "exit"
            lines.append(json.dumps(s.child_event(t + 0.0005, child, pid, outcome)))
            f["children"][outcome] += 1
    lines.append(json.dumps({"type": "lost", "time": ts(t), "events": 3}))
    lines.append(json.dumps({"type": "summary", "time": ts(t), "forks": forks,
                             "mt_forks": forks, "hazards": forks, "mitigated": 0, "deadlocks": 0,
                             "suppressed_by_rule": 0, "lost": 3, "lost_forks": 0,
                             "dropped": {k: 0 for k in (
                                 "untracked_locks", "untraced_procs", "unfollowed_children",
                                 "stacks", "correlation_evicted", "unwinds",
                                 "unprobed_procs", "unread_words",
                                 "unsymbolized_forks")}}))
    return lines, facts


def site_record(s, t, reason, hazards, new_hazards, deadlocks=0, new_deadlocks=0,
                children=None, processes=1):
    """The service's aggregate of site s (docs/json.md, "site")."""
    return {"type": "site", "time": ts(t), "site": s.id, "reason": reason, "kind": "hazard",
            "exe": "/srv/app%d/bin/app%d" % (s.i, s.i), "comm": s.exe, "container_id": None,
            "fork_site": "spawn_worker_%d+0xd [app%d]" % (s.i, s.i),
            "lock_sites": ["cache_refresh_%d+0x13 [app%d]" % (s.i, s.i)],
            "hazards": hazards, "deadlocks": deadlocks, "new_hazards": new_hazards,
            "new_deadlocks": new_deadlocks,
            "children": children or {"exec": 0, "exit": 0, "deadlock": 0, "alive": 0},
            "processes": processes, "first_seen": ts(0), "last_seen": ts(t), "suppressed": 0}
