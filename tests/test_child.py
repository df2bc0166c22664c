"""Issue 3: the child's fate (exec, exit, deadlock, alive), confirmed
deadlocks from futex waits, --light, and deadlocks of locks taken before
forkhazard attached."""

import os
import time

from fh import Background, Tracer, addr, check, prog
from test_tracer import fork_of, scenario_under_tracer

HANG = "--hang-ms=1500"


def test_child_execs():
    r, facts = scenario_under_tracer(["--child=exec", "hold"])
    f = facts[-1]
    c = r.one("child", pid=f["child"])
    check(c["outcome"] == "exec" and c["parent_pid"] == f["pid"], "exec verdict", c)
    check(0 < c["after_ns"] < 2e9, "after_ns", c)
    check(r.of("deadlock") == [], "no deadlock", r.events)


def test_child_exits():
    r, facts = scenario_under_tracer(["--child=exit", "hold"])
    f = facts[-1]
    c = r.one("child", pid=f["child"])
    check(c["outcome"] == "exit" and c.get("exit_status") == 0, "exit verdict", c)


def check_deadlock(r, f, light=False):
    check(f["child_killed"], "the child hung and was killed by the scenario", f)
    d = r.one("deadlock", pid=f["child"])
    check(addr(d["futex"]) == addr(f["lock"]), "deadlock on the inherited mutex", d, f)
    check(d["owner_tid"] == f["holder_tid"], "owner_tid names the parent's holder", d, f)
    check(d["parent_pid"] == f["pid"] and d["tid"] == f["child"], "pids", d, f)
    c = r.one("child", pid=f["child"])
    check(c["outcome"] == "deadlock", "child verdict deadlock", c)
    if light:
        check(d["lock"] is None, "--light: no lock records to match", d)
    else:
        check(d["lock"] is not None and addr(d["lock"]["addr"]) == addr(f["lock"]) and
              d["lock"]["holder_tid"] == f["holder_tid"], "lock matched from the fork event", d)
    check(r.summary()["deadlocks"] == 1, "summary counts it", r.summary())
    return d


def test_child_deadlocks_on_inherited_mutex():
    r, facts = scenario_under_tracer([HANG, "--child=lock", "hold"])
    d = check_deadlock(r, facts[-1])
    check(d["stack"], "the wait has a stack", d)


def test_light_mode_deadlock():
    r, facts = scenario_under_tracer([HANG, "--child=lock", "hold"], extra=["--light"])
    f = facts[-1]
    check_deadlock(r, f, light=True)
    ev = fork_of(r, facts)
    check(ev["locks"] is None and ev["own_locks"] is None, "--light: locks are null", ev)
    out = os.popen("bpftool link show").read()
    check("uprobe" not in out, "--light places no uprobes (checked after exit)", out)


def test_deadlock_of_lock_taken_before_attach():
    bg = Background([prog("scenario"), HANG, "--child=lock", "prehold"])
    try:
        t = Tracer(["-p", str(bg.pid)])
        facts = bg.go()
        time.sleep(0.3)
        r = t.stop()
    finally:
        bg.close()
    f = facts[-1]
    d = r.one("deadlock", pid=f["child"])
    check(d["owner_tid"] == f["holder_tid"], "owner from the lock word, never traced", d, f)
    ev = r.one("fork", pid=f["pid"])
    check(ev["locks"] == [], "the acquisition was not seen (taken before attach)", ev)


def test_timed_wait_is_not_a_deadlock():
    r, facts = scenario_under_tracer([HANG, "--child=timedlock", "hold"])
    f = facts[-1]
    check(not f["child_killed"], "the timed wait timed out by itself", f)
    check(r.of("deadlock") == [], "a wait with a timeout is no certain deadlock", r.events)
    check(r.one("child", pid=f["child"])["outcome"] == "exit", "child exited", r.events)


def test_multithreaded_child_is_not_a_deadlock():
    r, facts = scenario_under_tracer([HANG, "--child=mtlock", "hold"])
    f = facts[-1]
    check(f["child_killed"], "the child hung", f)
    check(r.of("deadlock") == [], "another thread could still wake it: not certain", r.events)


def test_child_alive_when_tracing_stops():
    bg = Background([prog("scenario"), "--wait-signal", "--child=sleep", "hold"])
    try:
        t = Tracer(["-p", str(bg.pid)])
        os.kill(bg.pid, 10)  # SIGUSR1: fork now; the child sleeps 2 s
        time.sleep(0.5)
        r = t.stop()
    finally:
        bg.close()
    forks = r.of("fork", pid=bg.pid)
    check(len(forks) == 1, "one fork", r.events)
    c = r.one("child", pid=forks[0]["child_pid"])
    check(c["outcome"] == "alive" and c["after_ns"] > 1e8, "alive at the end", c)


def test_python_child_deadlocks_on_threading_lock():
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "progs", "py_fork_lock.py")
    facts_file = "/tmp/fh-pyfacts-%d" % os.getpid()
    env = dict(os.environ, FH_FACTS=facts_file)
    t = Tracer(["--", "sh", "-c", 'exec python3 "$0" 1.5 > "$FH_FACTS"', script], env=env)
    r = t.wait(timeout=60)
    import json
    with open(facts_file) as fp:
        f = json.loads(fp.read().strip().splitlines()[-1])
    os.unlink(facts_file)
    check(r.status == 0, "status", r.stderr)
    check(f["child_killed"], "the Python child hung", f)
    d = r.one("deadlock", pid=f["child"])
    check(d["parent_pid"] == f["pid"], "deadlock of the Python child", d)
    check(r.one("child", pid=f["child"])["outcome"] == "deadlock", "verdict", r.events)


def test_text_mode_shows_verdicts():
    t = Tracer(["--", prog("scenario"), HANG, "--child=lock", "hold"], json_out=False)
    r = t.wait()
    check("-> child" in r.text and "DEADLOCKED" in r.text, "deadlock verdict under the hazard",
          r.text)
    check("DEADLOCK: child of" in r.text and "waiting in:" in r.text, "deadlock record", r.text)
    t = Tracer(["--", prog("scenario"), "--child=exec", "hold"], json_out=False)
    r = t.wait()
    check("exec'd after" in r.text and "(benign)" in r.text, "exec verdict", r.text)


def test_fork_and_wait_stacks_unwound_without_frame_pointers():
    # glibc has no frame pointers: these frames exist only through the
    # kernel's stack copy unwound with CFI in userspace.
    r, facts = scenario_under_tracer([HANG, "--child=lock", "hold"])
    f = facts[-1]
    ev = fork_of(r, facts)
    names = [fr["symbol"] for fr in ev["stack"]]
    check("fork_child" in names and "sc_hold" in names and "main" in names,
          "the fork stack reaches the program through libc", names)
    check(not any(fr.get("fp") for fr in ev["stack"]), "CFI frames, not frame-pointer guesses",
          ev["stack"])
    d = r.one("deadlock", pid=f["child"])
    names = [fr["symbol"] for fr in d["stack"]]
    check("child_body" in names and "fork_child" in names,
          "the wait's stack names the child's caller of pthread_mutex_lock", names)
