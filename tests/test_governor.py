"""Issue 13: the overhead governor, end to end: real BPF, a real program taking
real locks (tests/progs/govern). A lock-heavy process is downgraded (the event,
its forks' "locks_untracked", the daemon's log line and metrics), re-armed
after its back-off, and a hazard staged in the re-armed window is caught; with
--max-overhead=0, in -p mode without the flag, and for a process taking a lock
a hundred times a second, nothing is ever detached. No timing is asserted:
the tests wait for events, and where nothing must happen, for a few of the
governor's windows (GOV_WINDOW_NS, 1 s)."""

import json
import os
import subprocess
import time

from fh import Tracer, addr, check, parse_event, prog
from test_daemon import Daemon, free_port, http_get, metric, parse_prom, probed_for, wait_for

# Longer than the first window after arming (1 s), the decision's tick and
# the detaching: where a downgrade would come, it has come by then.
QUIET_WINDOWS = 3.5
# Arming, the first window, then the back-off (10 s) and the re-armed window.
REARM_TIMEOUT = 40


class Govern:
    """tests/progs/govern MODE, driven one command at a time."""

    def __init__(self, mode):
        self.proc = subprocess.Popen([prog("govern"), mode], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.pid = json.loads(self.proc.stdout.readline())["ready"]

    def cmd(self, c):
        self.proc.stdin.write(c)
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        check(line.startswith("{"), "govern answered %r" % c, line)
        return json.loads(line)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.cmd("x")
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait()


def events_of(path):
    """The whole lines written so far (the tracer flushes each loop turn)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return []
    lines = raw.split(b"\n")[:-1]
    return [parse_event(l, "%s line %d" % (path, i + 1)) for i, l in enumerate(lines)]


def wait_event(path, timeout, what, **match):
    def found():
        for e in events_of(path):
            if all(e.get(k) == v for k, v in match.items()):
                return e
        return None
    return wait_for(found, timeout, what)


def governor_events(path, pid):
    return [e for e in events_of(path) if e["type"] == "governor" and e["pid"] == pid]


def check_downgrade(ev, budget=1):
    check(ev["hits"] > 0 and ev["cost_ns"] > 0 and ev["budget_pct"] == budget,
          "a downgrade says what was measured", ev)
    check(ev["overhead_pct"] is None or ev["overhead_pct"] > budget,
          "over its budget", ev)
    check(ev["window_ns"] >= 1000000000, "measured over a second at least", ev)
    check(ev["backoff_ns"] == 10 * 1000000000 and ev["downgrades"] == 1,
          "the first back-off", ev)


def test_lock_heavy_process_downgraded_then_rearmed_and_a_hazard_caught():
    port = free_port()
    d = Daemon(["--metrics-listen", "127.0.0.1:%d" % port])
    g = None
    try:
        g = Govern("heavy")
        g.cmd("f")   # a fork while multithreaded: adaptive mode arms it
        down = wait_event(d.events_path, 30, "the downgrade", type="governor", pid=g.pid,
                          action="downgrade")
        check_downgrade(down)
        m = parse_prom(http_get(port)[2])
        check(metric(m, "forkhazard_governor_downgrades_total") >= 1 and
              metric(m, "forkhazard_governed_processes") >= 1, "the metrics say so",
              {k: v for k, v in m.items() if "govern" in k[0]})
        check("governor: govern (PID %d): lock probes cost" % g.pid in d.stderr(),
              "a line in the daemon's log", d.stderr()[-2000:])

        g.cmd("q")   # from now on it takes no lock: its re-armed window is cheap
        rearm = wait_event(d.events_path, REARM_TIMEOUT, "the re-arm", type="governor",
                           pid=g.pid, action="rearm")
        check(rearm["window_ns"] == 500000000 and rearm["hits"] is None and
              rearm["downgrades"] == 1, "a re-arm opens a short window", rearm)
        facts = g.cmd("h")   # a lock held by another thread at a fork, in the window
        ev = wait_event(d.events_path, 20, "the hazard in the re-armed window", type="fork",
                        pid=g.pid, child_pid=facts["child"])
        check(ev["severity"] == "hazard" and len(ev["locks"]) == 1 and
              ev["locks"][0]["holder_tid"] == facts["holder_tid"] and
              addr(ev["locks"][0]["addr"]) == addr(facts["lock"]) and
              ev["locks"][0]["confirmed"], "the hazard is caught", ev, facts)
        restore = wait_event(d.events_path, 20, "the restore", type="governor", pid=g.pid,
                             action="restore")
        check(restore["overhead_pct"] is None or restore["cost_ns"] < 1000000,
              "restored: its window was cheap", restore)
        m = parse_prom(http_get(port)[2])
        check(metric(m, "forkhazard_governor_rearms_total") >= 1, "re-arms counted")
    finally:
        if g:
            g.close()
        d.stop()
        d.close()


def test_downgraded_forks_say_why_their_locks_are_untracked():
    t = Tracer([])
    g = None
    try:
        g = Govern("heavy")
        first = g.cmd("f")["forked"]
        wait_event(t.tmp.name, 30, "the downgrade", type="governor", pid=g.pid,
                   action="downgrade")
        later = g.cmd("f")["forked"]
        ev = wait_event(t.tmp.name, 20, "the fork after it", type="fork", pid=g.pid,
                        child_pid=later)
    finally:
        if g:
            g.close()
        r = t.stop()
    # It took `busy` while probed: its forks read that word (the word watch)
    # instead of saying nothing; a process that learned no lock would have
    # locks null and "locks_untracked":"overhead" (test_pipeline.c).
    check(ev.get("locks_watched") is True and "locks_untracked" not in ev and
          ev["own_locks"] == [] and all(l.get("watched") for l in ev["locks"]),
          "a downgraded process's fork: its locks are the word watch's", ev)
    f0 = r.one("fork", pid=g.pid, child_pid=first)
    check(f0["locks"] is None and f0["locks_untracked"] == "unprobed",
          "its first fork: no probes yet", f0)


def no_downgrade(args, mode, what):
    """Under forkhazard ARGS, a `govern MODE` process's forks are tracked for
    a few windows; returns (result, its fork events)."""
    t = Tracer(args)
    g = None
    try:
        g = Govern(mode)
        pid = g.pid
        g.cmd("f")
        time.sleep(QUIET_WINDOWS)
        later = g.cmd("f")["forked"]
        wait_event(t.tmp.name, 20, "the later fork", type="fork", pid=pid, child_pid=later)
    finally:
        if g:
            g.close()
        r = t.stop()
    check(not [e for e in r.of("governor") if e["pid"] == pid], "%s: never downgraded" % what,
          r.of("governor"))
    last = r.one("fork", pid=pid, child_pid=later)
    check(last["locks"] is not None and "locks_untracked" not in last,
          "%s: its locks still tracked" % what, last)
    return r


def test_max_overhead_0_never_downgrades():
    no_downgrade(["--max-overhead=0"], "heavy", "--max-overhead=0")


def test_light_locking_process_never_downgraded():
    # about 100 lock operations a second: under 1 ms of probe time a second,
    # whatever its own (tiny) CPU time
    no_downgrade([], "light", "a process taking a lock 100 times a second")


def test_pid_mode_keeps_full_tracking_unless_asked():
    g = Govern("heavy")
    try:
        t = Tracer(["-p", str(g.pid)])
        try:
            time.sleep(QUIET_WINDOWS)
            child = g.cmd("f")["forked"]
            wait_event(t.tmp.name, 20, "the fork", type="fork", child_pid=child)
        finally:
            r = t.stop()
        check(not r.of("governor"), "-p: no governor without --max-overhead", r.of("governor"))
        check(r.one("fork", child_pid=child)["locks"] is not None, "-p: locks tracked")

        t = Tracer(["-p", str(g.pid), "--max-overhead=1"])
        try:
            down = wait_event(t.tmp.name, 30, "-p --max-overhead: the downgrade",
                              type="governor", pid=g.pid, action="downgrade")
        finally:
            t.stop()
        check_downgrade(down)
    finally:
        g.close()


def test_records_from_before_a_gap_never_name_the_wrong_holder():
    """A semaphore and a read lock taken by thread A while probed; in the gap
    (probes detached) A releases them and B takes them, unseen. After the
    re-arm, a fork must not report A as their holder (A's records are older
    than the re-arm, and neither word can name its holder): B's acquisitions
    were missed, so they are not reported at all."""
    t = Tracer([])
    g = None
    try:
        g = Govern("light")   # never downgraded while light: A's acquisitions are seen
        g.cmd("f")
        wait_for(lambda: probed_for(t.proc.pid, g.pid), 20, "its lock probes")
        a = g.cmd("a")
        seen = g.cmd("f")["forked"]
        before = wait_event(t.tmp.name, 20, "the fork while A holds them", type="fork",
                            pid=g.pid, child_pid=seen)
        g.cmd("H")
        wait_event(t.tmp.name, 30, "the downgrade", type="governor", pid=g.pid,
                   action="downgrade")
        b = g.cmd("b")        # in the gap
        g.cmd("q")
        wait_event(t.tmp.name, REARM_TIMEOUT, "the re-arm", type="governor", pid=g.pid,
                   action="rearm")
        after = g.cmd("f")["forked"]
        ev = wait_event(t.tmp.name, 20, "the fork after the re-arm", type="fork", pid=g.pid,
                        child_pid=after)
        g.cmd("c")            # A takes the read lock again, seen: not a recursion
        again = g.cmd("f")["forked"]
        ev2 = wait_event(t.tmp.name, 20, "the fork after A's new read lock", type="fork",
                         pid=g.pid, child_pid=again)
    finally:
        if g:
            g.close()
        t.stop()
    gap_locks = (addr(a["sem"]), addr(a["rwlock"]))
    held = {addr(l["addr"]): l["holder_tid"] for l in before["locks"]}
    check(held.get(gap_locks[0]) == a["a_tid"] and held.get(gap_locks[1]) == a["a_tid"],
          "while probed, A's semaphore and read lock are reported", before, a)
    check(ev["locks"] is not None, "the fork after the re-arm is tracked", ev)
    wrong = [l for l in ev["locks"] if addr(l["addr"]) in gap_locks]
    check(not wrong, "no record from before the gap names A (B holds them now, unseen)",
          wrong, a, b)
    # A's stale record of the read lock makes its new acquisition neither a
    # recursion (with the old time, dropped) nor anything but A's, now
    rd = [l for l in ev2["locks"] or [] if addr(l["addr"]) == gap_locks[1]]
    check(len(rd) == 1 and rd[0]["holder_tid"] == a["a_tid"] and "depth" not in rd[0],
          "A's read lock taken after the re-arm is reported", ev2, a)


def test_word_watch_reports_learned_locks_while_downgraded():
    """Downgraded, a process's forks still report the glibc mutexes it was
    seen taking while probed, read from their words (no probe): `held`,
    taken in a hazard while probed, is reported again in a hazard after the
    downgrade, "watched"; `other`, never taken while probed, is not seen."""
    t = Tracer([])
    g = None
    try:
        g = Govern("light")   # never downgraded while light: its first hazard is probed
        g.cmd("f")
        wait_for(lambda: probed_for(t.proc.pid, g.pid), 20, "its lock probes")
        probed = g.cmd("h")
        g.cmd("H")
        wait_event(t.tmp.name, 30, "the downgrade", type="governor", pid=g.pid,
                   action="downgrade")
        watched = g.cmd("h")
        unseen = g.cmd("n")
        ev = wait_event(t.tmp.name, 20, "the watched fork", type="fork", pid=g.pid,
                        child_pid=watched["child"])
        ev2 = wait_event(t.tmp.name, 20, "the fork on a lock never learned", type="fork",
                         pid=g.pid, child_pid=unseen["child"])
    finally:
        if g:
            g.close()
        r = t.stop()
    first = r.one("fork", pid=g.pid, child_pid=probed["child"])
    check(first["severity"] == "hazard" and "locks_watched" not in first and
          first["locks"][0]["holder_tid"] == probed["holder_tid"], "probed: the usual hazard",
          first)
    mine = [l for l in ev["locks"] if addr(l["addr"]) == addr(watched["lock"])]
    check(ev.get("locks_watched") is True and ev["severity"] == "hazard" and len(mine) == 1 and
          mine[0]["holder_tid"] == watched["holder_tid"] and mine[0].get("watched") is True and
          mine[0]["confirmed"] and mine[0]["held_ns"] == 0 and
          mine[0]["stack"][0]["symbol"] == "holder",
          "downgraded: the learned mutex is reported from its word, with the site it was "
          "learned at", ev, watched)
    check(ev2.get("locks_watched") is True and
          not [l for l in ev2["locks"] if addr(l["addr"]) == addr(unseen["lock"])],
          "a mutex never taken while probed is not seen", ev2, unseen)
