"""Issue 7: faults, load and privileges. Tests that try to break forkhazard:
kill -9, PID reuse, a binary deleted under it, a full ring buffer, full maps,
10,000 threads, forks from signal handlers, a fork storm, capabilities."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from fh import (BUILD, Background, TestFailure, Tracer, addr, binary, check, parse_event, prog,
                run, wait_until)

# What tracing needs at start, and what it keeps once attached (src/caps.h).
NEEDED = ["bpf", "perfmon", "sys_ptrace", "checkpoint_restore", "dac_read_search"]
KEPT = {"sys_ptrace": 19, "checkpoint_restore": 40, "dac_read_search": 2}


def hostile(*args):
    return [prog("hostile")] + [str(a) for a in args]


def traced(args, extra=(), timeout=120):
    """forkhazard -j [extra] -- hostile ARGS; returns (result, facts)."""
    facts_file = tempfile.NamedTemporaryFile(prefix="fh-facts-", delete=False)
    facts_file.close()
    env = dict(os.environ, FH_FACTS=facts_file.name)
    t = Tracer(list(extra) + ["--", "sh", "-c", 'exec "$0" "$@" > "$FH_FACTS"'] + hostile(*args),
               env=env)
    try:
        r = t.wait(timeout=timeout)
        with open(facts_file.name) as f:
            facts = [json.loads(l) for l in f if l.startswith("{")]
    finally:
        os.unlink(facts_file.name)
    check(r.status == 0, "forkhazard -- hostile %s exited %s" % (args, r.status), r.stderr)
    check(facts, "hostile %s printed its facts" % (args,), r.stderr)
    return r, facts[-1]


def bpf_ids(pid):
    """The BPF programs, maps and links whose fds process pid holds."""
    ids = {"prog_id": set(), "map_id": set(), "link_id": set()}
    fddir = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(fddir):
        try:
            with open(os.path.join(fddir, fd)) as f:
                info = f.read()
        except OSError:
            continue
        for key in ids:
            m = re.search(r"^%s:\s*(\d+)" % key, info, re.M)
            if m:
                ids[key].add(int(m.group(1)))
    return ids


def kernel_ids():
    """Every BPF program, map and link ID the kernel has now (bpftool)."""
    out = {}
    for kind, key in (("prog", "prog_id"), ("map", "map_id"), ("link", "link_id")):
        p = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True,
                           timeout=30)
        check(p.returncode == 0, "bpftool %s show" % kind, p.stderr)
        out[key] = {o["id"] for o in json.loads(p.stdout or "[]")}
    return out


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


def rss_kb(pid):
    v = proc_status(pid, "VmRSS")
    return int(v.split()[0]) if v else 0


# ---- faults --------------------------------------------------------------------------


def test_kill9_leaves_nothing_behind():
    bg = Background([prog("scenario"), "--wait-signal", "hold"])
    try:
        bpffs_before = subprocess.run(["findmnt", "-t", "bpf", "-n"], capture_output=True,
                                      text=True).stdout
        t = Tracer(["-p", str(bg.pid)])
        ours = bpf_ids(t.proc.pid)
        check(ours["prog_id"] and ours["map_id"] and ours["link_id"],
              "forkhazard holds programs, maps and links while tracing", ours)
        have = kernel_ids()
        check(all(ours[k] <= have[k] for k in ours), "bpftool sees them", ours, have)
        t.proc.send_signal(signal.SIGKILL)
        t.proc.wait(timeout=10)
        t.result()

        def gone():
            now = kernel_ids()
            return all(not (ours[k] & now[k]) for k in ours)
        # The kernel frees them after an RCU grace period: moments, not more.
        wait_until(gone, timeout=10, what="every program, map and link of the killed tracer freed")
        bpffs_after = subprocess.run(["findmnt", "-t", "bpf", "-n"], capture_output=True,
                                     text=True).stdout
        check(bpffs_after == bpffs_before, "no BPF filesystem mounted (nothing pinned)",
              bpffs_before, bpffs_after)
        # The traced process goes on as if nothing happened: no probe left.
        facts = bg.go()
        check(facts and facts[-1].get("pid") == bg.pid, "the traced process finished", facts)
    finally:
        bg.close()


def set_next_pid(pid):
    with open("/proc/sys/kernel/ns_last_pid", "w") as f:
        f.write(str(pid - 1))


def spawn_with_pid(args, pid, tries=200):
    """Start args as process `pid` (a recycled PID): set the kernel's last PID
    just below it and start the process; other processes of the machine may
    take it first, so try again."""
    for _ in range(tries):
        set_next_pid(pid)
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    raise TestFailure("could not recycle PID %d" % pid)


def read_ready(p, timeout=20):
    import select
    ready, _, _ = select.select([p.stdout], [], [], timeout)
    line = p.stdout.readline() if ready else ""
    check(line.startswith("{"), "program did not start", line, p.stderr.read() if not ready
          else "")
    return json.loads(line)


def test_pid_reuse_not_blamed():
    """A traced process killed while its worker holds a lock; a new process
    gets its PID at once (and its worker likely the old worker's TID): the
    new one's forks report its own lock, never the old one's, and it gets lock
    probes of its own although the dead one's were not reaped yet."""
    t = Tracer([])  # whole system, adaptive: probes follow processes
    old = new = None
    try:
        old = subprocess.Popen(hostile("holdforever", 3), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        a = read_ready(old)
        old.kill()
        old.wait()
        new = spawn_with_pid(hostile("holdforever", 6), a["ready"])
        b = read_ready(new)
        new.kill()
        new.wait()
        time.sleep(0.3)
    finally:
        for p in (old, new):
            if p and p.poll() is None:
                p.kill()
                p.wait()
        r = t.stop()
    pid = a["ready"]
    forks = r.of("fork", pid=pid)
    check(len(forks) == 9, "3 forks of the old process, 6 of the new one", len(forks),
          r.stderr)
    a_forks, b_forks = forks[:3], forks[3:]
    check(addr(a["lock_a"]) != addr(b["lock_a"]), "the two processes' locks differ (ASLR)",
          a, b)
    for ev in b_forks:
        for l in (ev["locks"] or []) + (ev["own_locks"] or []):
            check(addr(l["addr"]) == addr(b["lock_a"]) and l["holder_tid"] == b["holder_a"],
                  "the new process is never blamed for the old one's lock", l, a, b)
    check(b_forks[0]["locks"] is None, "its first multithreaded fork: locks not tracked yet",
          b_forks[0])
    # Probes take a moment to attach (every process mapping the C library
    # is visited): a fork or two may still say "not tracked", never "none".
    check(any(ev["severity"] == "hazard" for ev in b_forks[1:]),
          "the new process's own lock is reported: it got probes of its own",
          b_forks, b, r.stderr)
    check(any(ev["severity"] == "hazard" for ev in a_forks[1:]),
          "the old process's hazard was reported too", a_forks)


def tracer_maps(pid):
    """name -> map id, for the BPF maps forkhazard process pid holds."""
    out = {}
    for mid in bpf_ids(pid)["map_id"]:
        p = subprocess.run(["bpftool", "-j", "map", "show", "id", str(mid)], capture_output=True,
                           text=True, timeout=30)
        if p.returncode == 0:
            out[json.loads(p.stdout).get("name")] = mid
    return out


def map_keys(mid):
    p = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(mid)], capture_output=True,
                       text=True, timeout=30)
    check(p.returncode == 0, "bpftool map dump", p.stderr)
    keys = []
    for e in json.loads(p.stdout or "[]"):
        k = e.get("formatted", e).get("key")
        keys.append(k if isinstance(k, int) else int.from_bytes(bytes(int(b, 16) for b in k),
                                                                "little"))
    return keys


def test_killed_mid_fork_leaves_no_stale_state():
    """A traced process killed by SIGKILL in the middle of a fork storm (its
    children come and go): once it and they are gone, the kernel's tables hold
    nothing of them, and the tracer goes on tracing its other processes."""
    victim = subprocess.Popen(hostile("storm", 30), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    bg = Background([prog("scenario"), "--wait-signal", "hold"])
    try:
        t = Tracer(["-p", str(victim.pid), "-p", str(bg.pid)])
        time.sleep(1.0)
        victim.kill()
        victim.wait()
        time.sleep(0.5)
        maps = tracer_maps(t.proc.pid)
        check("procs" in maps and "children" in maps, "the tracer's tables", maps)

        def settled():
            procs = set(map_keys(maps["procs"]))
            return procs == {bg.pid} and not map_keys(maps["children"])
        wait_until(settled, timeout=5, what="no entry left for the killed process or its children")
        facts = bg.go()
        time.sleep(0.3)
        r = t.stop()
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait()
        bg.close()
    s = r.summary()
    check(s["mt_forks"] > 100, "the victim was forking when killed", s)
    check(len(r.of("fork")) + s["lost_forks"] == s["mt_forks"], "every fork accounted for", s)
    ev = r.one("fork", pid=bg.pid)
    check(ev["severity"] == "hazard" and ev["locks"][0]["holder_tid"] == facts[-1]["holder_tid"],
          "tracing goes on", ev)


def test_traced_binary_deleted_and_replaced():
    work = tempfile.mkdtemp(prefix="fh-replaced-")
    path = os.path.join(work, "scenario")
    shutil.copy(prog("scenario"), path)
    bg = Background([path, "--wait-signal", "hold"])
    try:
        t = Tracer(["-p", str(bg.pid)])
        os.unlink(path)
        shutil.copy("/bin/true", path)   # another file under the same name
        facts = bg.go()
        time.sleep(0.3)
        r = t.stop()
    finally:
        bg.close()
        shutil.rmtree(work, ignore_errors=True)
    f = facts[-1]
    ev = r.one("fork", pid=bg.pid)
    check(ev["severity"] == "hazard" and ev["locks"][0]["holder_tid"] == f["holder_tid"],
          "the hazard is reported", ev, f)
    stack = ev["locks"][0]["stack"]
    check(stack and stack[0]["symbol"] == "hold_a",
          "symbols come from the deleted file itself, not from what replaced it", stack)
    check(r.status == 0, "clean exit", r.stderr)


def test_ring_buffer_full_counted_and_recovers():
    """A 4 KiB ring buffer, the reader stopped while 1000 hazards fork: events
    are lost, counted and reported; every fork is either reported or counted
    as lost; once the reader runs again, nothing more is lost."""
    bg = Background([prog("scenario"), "--wait-signal", "storm", "1000"])
    bg2 = Background([prog("scenario"), "--wait-signal", "periodic", "5"])
    try:
        t = Tracer(["-p", str(bg.pid), "-p", str(bg2.pid), "--ring-buffer-kb", "4"])
        t.proc.send_signal(signal.SIGSTOP)
        try:
            facts = bg.go()
        finally:
            t.proc.send_signal(signal.SIGCONT)
        time.sleep(0.5)
        facts2 = bg2.go()          # after recovery: 5 forks, 100 ms apart
        time.sleep(0.3)
        r = t.stop()
    finally:
        bg.close()
        bg2.close()
    s = r.summary()
    forks = r.of("fork", pid=bg.pid)
    lost_events = r.of("lost")
    check(s["lost"] > 0 and lost_events, "a 4 KiB buffer overflowed while nobody read it", s)
    check(sum(e["events"] for e in lost_events) == s["lost"], "every loss reported in-band",
          lost_events, s)
    check(s["mt_forks"] == 1000 + 5 and facts[-1]["forks"] == 1000, "the kernel saw every fork",
          s, facts)
    all_forks = r.of("fork")
    check(len(all_forks) + s["lost_forks"] == s["mt_forks"],
          "reported + lost = forks seen by the kernel", len(all_forks), s)
    check(len(forks) < 1000, "some forks were lost", len(forks))
    later = r.of("fork", pid=bg2.pid)
    check(len(later) == 5 and facts2[-1]["forks"] == 5, "recovered: the later forks all reported",
          later)
    check(r.status == 0, "clean exit", r.stderr)


def test_exit_backlog_counted_not_dropped():
    """The reader stopped through a fork storm: at exit the backlog takes
    longer than the final drain may take (3 s; 20 ms here, through the
    tests' FORKHAZARD_TEST_DRAIN_MS); what is left is counted and reported
    as lost, so every fork is still accounted for."""
    t = Tracer(["--"] + hostile("storm", 4),
               env=dict(os.environ, FORKHAZARD_TEST_DRAIN_MS="20"))
    t.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(5)
        # stopped with a full buffer: it wakes to the signal, not to read
        t.proc.send_signal(signal.SIGINT)
    finally:
        t.proc.send_signal(signal.SIGCONT)
    r = t.wait(timeout=60)
    s = r.summary()
    check(r.status in (0, 130), "status", r.status, r.stderr)
    check("after the drain at exit (20 ms)" in r.stderr, "the backlog outlasted the drain (warned)",
          r.stderr, s)
    check(len(r.of("fork")) + s["lost_forks"] == s["mt_forks"],
          "reported + lost = forks seen by the kernel", len(r.of("fork")), s)
    check(s["lost"] == sum(e["events"] for e in r.of("lost")), "losses reported in-band", s)


def test_maps_full_counted_reported_once():
    """Tables of 8 children and 4 processes, 30 children alive at once, twice:
    what does not fit is counted, warned about once, and tracing goes on."""
    r, f = traced(["brood", 30, 2], extra=["--max-children", "8", "--max-traced", "4"])
    s = r.summary()
    check(f["forks"] == 60 and s["mt_forks"] == 60, "every fork seen", f, s)
    forks = r.of("fork", pid=f["pid"])
    check(len(forks) + s["lost_forks"] == 60, "every fork reported", len(forks), s)
    check(all(e["severity"] == "hazard" for e in forks), "every fork a hazard")
    d = s["dropped"]
    check(d["unfollowed_children"] >= 2 * (30 - 8), "children not followed are counted", d)
    check(d["untraced_procs"] >= 2 * (30 - 4), "processes not traced are counted", d)
    for what in ("children table is full", "process table is full"):
        n = r.stderr.count(what)
        check(n == 1, "'%s' warned exactly once (%d)" % (what, n), r.stderr)
    check(len(r.of("child")) >= 8, "the children that fit are followed", r.of("child"))


def test_10000_threads():
    r, f = traced(["threads", 10000], timeout=180)
    ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
    check(ev["threads"] == f["threads"] == 10001, "thread count", ev["threads"], f)
    check("threads_truncated" not in ev, "every thread walked", ev.get("threads_truncated"))
    check([l["holder_tid"] for l in ev["locks"]] == [f["holder_a"]] and
          addr(ev["locks"][0]["addr"]) == addr(f["lock_a"]),
          "the one lock held among 10,000 threads", ev["locks"], f)


def test_fork_from_signal_handler():
    r, f = traced(["sigfork"])
    ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
    check(ev["tid"] == f["main_tid"], "forked by main, in its signal handler", ev, f)
    check([(addr(l["addr"]), l["holder_tid"]) for l in ev["locks"]] ==
          [(addr(f["lock_a"]), f["holder_a"])], "the worker's lock", ev["locks"], f)
    check(ev["own_locks"] == [], "main holds nothing", ev["own_locks"])


def test_fork_while_inside_mutex_lock():
    """Main waits inside pthread_mutex_lock(lock_b) (another worker holds it)
    when its signal handler forks: lock_b is the worker's, not main's own."""
    r, f = traced(["sigfork-inlock"])
    ev = r.one("fork", pid=f["pid"], child_pid=f["child"])
    got = sorted((addr(l["addr"]), l["holder_tid"]) for l in ev["locks"])
    want = sorted([(addr(f["lock_a"]), f["holder_a"]), (addr(f["lock_b"]), f["holder_b"])])
    check(got == want, "both workers' locks, with their real holders", got, want)
    check(ev["own_locks"] == [], "a lock main only waits for is not its own", ev["own_locks"])
    check(all(l["confirmed"] for l in ev["locks"]), "the lock words confirm both", ev["locks"])


# ---- load ----------------------------------------------------------------------------


def test_fork_storm_accounted_rss_bounded():
    """Forks as fast as the machine forks, each a hazard, for a few seconds
    (make soak runs it for half an hour): every fork reported or counted lost,
    forkhazard's RSS bounded once warm."""
    seconds = float(os.environ.get("FH_STORM_SECONDS", "6"))
    facts_file = tempfile.NamedTemporaryFile(prefix="fh-facts-", delete=False)
    facts_file.close()
    env = dict(os.environ, FH_FACTS=facts_file.name)
    t = Tracer(["--", "sh", "-c", 'exec "$0" "$@" > "$FH_FACTS"'] + hostile("storm", seconds),
               env=env)
    samples = []
    try:
        while t.proc.poll() is None:
            samples.append(rss_kb(t.proc.pid))
            time.sleep(0.25)
    except (OSError, ValueError):
        pass
    r = t.wait(timeout=seconds + 60)
    with open(facts_file.name) as f:
        facts = [json.loads(l) for l in f if l.startswith("{")]
    os.unlink(facts_file.name)
    check(r.status == 0 and facts, "storm ran", r.status, r.stderr)
    n = facts[-1]["forks"]
    s = r.summary()
    forks = r.of("fork", pid=facts[-1]["pid"])
    check(s["mt_forks"] == n, "the kernel saw every fork", s, n)
    check(len(forks) + s["lost_forks"] == n, "reported + lost = every fork", len(forks), s)
    check(s["lost"] == sum(e["events"] for e in r.of("lost")), "losses reported in-band", s)
    samples = [x for x in samples if x]
    check(len(samples) >= 8, "RSS sampled", samples)
    if "asan" in BUILD:
        return  # ASan's quarantine holds freed memory back: RSS means nothing there
    warm = max(samples[:len(samples) // 4])
    check(max(samples) - warm < 16 * 1024,
          "RSS bounded: %d KiB warm, %d KiB at most (%d forks, %.0f/s)" %
          (warm, max(samples), n, n / seconds), samples)


# ---- privileges ----------------------------------------------------------------------


def caps_of(pid):
    return {k: int(proc_status(pid, k), 16) for k in ("CapEff", "CapPrm", "CapInh", "CapBnd",
                                                      "CapAmb")}


def as_nobody(caps, args, timeout=60):
    """forkhazard as UID 65534 with exactly `caps` (ambient capabilities)."""
    c = ",".join(["-all"] + ["+" + x for x in caps])
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "--inh-caps=" + c, "--ambient-caps=" + c, binary()] + args,
                          capture_output=True, text=True, timeout=timeout, cwd="/tmp")


def test_exact_capabilities_suffice():
    p = as_nobody(NEEDED, ["-j", "--", prog("hostile"), "sigfork"])
    check(p.returncode == 0, "works as nobody with exactly %s" % NEEDED, p.returncode, p.stderr)
    events = [parse_event(l) for l in p.stdout.splitlines() if l.startswith('{"type"')]
    facts = [json.loads(l) for l in p.stdout.splitlines() if l.startswith('{"pid"')][-1]
    hz = [e for e in events if e["type"] == "fork" and e["pid"] == facts["pid"]]
    check(len(hz) == 1 and hz[0]["severity"] == "hazard" and
          hz[0]["locks"][0]["holder_tid"] == facts["holder_a"], "and finds the hazard", events)


def test_each_capability_needed():
    for cap in NEEDED:
        p = as_nobody([c for c in NEEDED if c != cap], ["-j", "-d", "1"])
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        check(p.returncode == 1, "without %s: exit 1" % cap, p.returncode, p.stderr)
        check(len(lines) == 1 and ("missing CAP_" + cap.upper()) in lines[0],
              "without %s: one line naming it" % cap, p.stderr)
        check(p.stdout == "", "nothing on stdout", p.stdout)


def test_capabilities_dropped_after_attach():
    """Once attached, forkhazard keeps CAP_SYS_PTRACE, CAP_CHECKPOINT_RESTORE and
    CAP_DAC_READ_SEARCH only (no CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, nothing to
    regain them by exec), and lock probes it attaches later still work."""
    kept = sum(1 << b for b in KEPT.values())
    t = Tracer([])  # adaptive: probes are attached at run time, after the drop
    try:
        caps = caps_of(t.proc.pid)
        check(caps["CapEff"] == kept and caps["CapPrm"] == kept, "kept only %s" % sorted(KEPT),
              {k: hex(v) for k, v in caps.items()})
        check(caps["CapInh"] == 0 and caps["CapAmb"] == 0 and caps["CapBnd"] == kept,
              "nothing inheritable, nothing in the bounding set beyond them",
              {k: hex(v) for k, v in caps.items()})
        check(proc_status(t.proc.pid, "NoNewPrivs") == "1", "no_new_privs set")
        p = subprocess.run([prog("scenario"), "periodic", "4"], capture_output=True, text=True,
                           timeout=60)
        f = json.loads(p.stdout.splitlines()[-1])
        time.sleep(0.3)
    finally:
        r = t.stop()
    forks = r.of("fork", pid=f["pid"])
    check(any(e["severity"] == "hazard" for e in forks[1:]),
          "probes attached after the drop report the lock", forks)


def test_command_as_user():
    t = Tracer(["-u", "nobody", "--", "sh", "-c",
                'echo "{\\"uid\\":$(id -u),\\"caps\\":\\"$(grep CapEff /proc/self/status | '
                'cut -f2)\\"}" > /tmp/fh-user-$PPID'])
    r = t.wait()
    check(r.status == 0, "status", r.stderr)
    path = "/tmp/fh-user-%d" % t.proc.pid
    try:
        with open(path) as f:
            got = json.loads(f.read())
    finally:
        if os.path.exists(path):
            os.unlink(path)
    check(got["uid"] == 65534 and int(got["caps"], 16) == 0,
          "-u nobody: the command runs as nobody, without capabilities", got)
    p = run(["-u", "no-such-user-fh", "--", "true"])
    check(p.returncode == 1 and "no such user" in p.stderr and
          len(p.stderr.strip().splitlines()) == 1, "unknown user: one line, exit 1", p.stderr)
    p = run(["-u", "nobody", "-d", "1"])
    check(p.returncode == 2 and "COMMAND" in p.stderr, "-u without a command: usage error",
          p.stderr)
