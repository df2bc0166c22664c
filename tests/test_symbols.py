"""Stacks a person can read: symbols, source lines, inlined calls, C++ names,
stripped and MiniDebugInfo binaries, separate debug files, and processes gone,
deleted or in another mount namespace by the time their stacks are printed.
All through the real tool: forkhazard -j -- build/tests/symprog*."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

from fh import Skip, Tracer, addr, check, prog, wait_until


def build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    m = re.search(r"Build ID: ([0-9a-f]+)", out)
    return m.group(1) if m else None


def traced(cmd, extra=(), json_out=True):
    """Run cmd under forkhazard; cmd writes its JSON facts to $FH_FACTS.
    Returns (result, facts)."""
    fd, facts_file = tempfile.mkstemp(prefix="fh-facts-")
    os.close(fd)
    env = dict(os.environ, FH_FACTS=facts_file)
    try:
        t = Tracer(list(extra) + ["--"] + cmd, json_out=json_out, env=env)
        r = t.wait(timeout=60)
        with open(facts_file) as f:
            facts = [json.loads(l) for l in f if l.startswith("{")]
    finally:
        os.unlink(facts_file)
    check(r.status == 0, "forkhazard -- %s exited %s" % (cmd, r.status), r.stderr)
    check(facts, "the program printed no facts", r.stderr)
    return r, facts[-1]


def run_prog(name, *args, extra=(), json_out=True):
    return traced(["sh", "-c", 'exec "$0" "$@" > "$FH_FACTS"', prog(name)] + list(args),
                  extra, json_out)


def lock_stack(r, facts, lock_key="lock"):
    ev = r.one("fork", pid=facts["pid"], child_pid=facts["child"])
    locks = [l for l in ev["locks"] if addr(l["addr"]) == addr(facts[lock_key])]
    check(len(locks) == 1, "the %s held at the fork is reported" % lock_key, ev, facts)
    check(locks[0]["stack"], "it has a stack", locks[0])
    return locks[0]["stack"]


def check_hold_frame(f, facts, binary, dwarf=True):
    """Frame #0 of the lock stack: hold_the_lock, where it calls the inlined
    take_lock, which calls pthread_mutex_lock."""
    check(f["symbol"] == "hold_the_lock", "frame #0 names the lock's caller", f)
    check(isinstance(f["offset"], int) and f["offset"] > 0, "with its offset", f)
    check(f["module"] == binary, "module: the binary's full path", f, binary)
    check(f.get("build_id") == build_id(binary), "build-id of the binary", f)
    check("fp" not in f, "frame #0 is exact, not from a frame-pointer walk", f)
    if not dwarf:
        check("file" not in f and "line" not in f and "inline" not in f,
              "no source lines without DWARF", f)
        return
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "tests", "progs", "symprog.c")
    check(f.get("file") == src and f.get("line") == facts["call_line"],
          "file:line of the call to take_lock in hold_the_lock", f, facts)
    check(f.get("inline") == [{"symbol": "take_lock", "file": src, "line": facts["lock_line"]}],
          "take_lock inlined there, at its pthread_mutex_lock line", f, facts)


def test_symbols_lines_and_inline_frames():
    r, facts = run_prog("symprog", "hold")
    stack = lock_stack(r, facts)
    check_hold_frame(stack[0], facts, prog("symprog"))
    # -O0 keeps frame pointers: the walk goes on, through the thread's start
    check(len(stack) >= 3 and stack[1]["symbol"] == "run_hold" and stack[1].get("fp"),
          "frame #1: run_hold, from the frame-pointer walk", stack)
    check(stack[1].get("line", 0) > 0, "with its line", stack[1])


def test_libc_symbols_from_separate_debug_file():
    libc = "/usr/lib/x86_64-linux-gnu/libc.so.6"
    bid = build_id(libc) if os.path.exists(libc) else None
    if not bid or not os.path.exists("/usr/lib/debug/.build-id/%s/%s.debug" % (bid[:2], bid[2:])):
        raise Skip("no separate debug file for libc (Debian's libc6-dbg)")
    r, facts = run_prog("symprog", "hold")
    stack = lock_stack(r, facts)
    libc_frames = [f for f in stack if f["module"] and "libc.so" in f["module"]]
    check(libc_frames, "the walk reaches libc", stack)
    f = libc_frames[0]
    # start_thread is local to libc: only the debug file's .symtab has it,
    # and only its DWARF the line
    check(f["symbol"] == "start_thread", "a local libc symbol, from the debug file", f)
    check(f.get("file", "").endswith("pthread_create.c") and f.get("line", 0) > 0,
          "libc's source line, from the debug file's DWARF", f)
    check(f.get("build_id") == bid, "libc's build-id", f, bid)


def test_o2_without_frame_pointers():
    r, facts = run_prog("symprog-o2", "hold")
    stack = lock_stack(r, facts)
    check_hold_frame(stack[0], facts, prog("symprog-o2"))
    check(all(f.get("fp") for f in stack[1:]), "later frames are marked fp", stack)


def test_cxx_names_demangled():
    r, facts = run_prog("symprog_cc")
    ev = r.one("fork", pid=facts["pid"], child_pid=facts["child"])
    check(len(ev["locks"]) == 1, "the worker's lock", ev)
    stack = ev["locks"][0]["stack"]
    f = stack[0]
    check(f["symbol"] == "fhtest::Registry::hold_the_lock()", "the namespaced method", f)
    check(f.get("file", "").endswith("tests/progs/symprog_cc.cc") and
          f.get("line") == facts["call_line"], "its line", f, facts)
    check(f.get("inline") and f["inline"][0]["symbol"] == "fhtest::Registry::take()" and
          f["inline"][0]["line"] == facts["lock_line"], "the inlined method, demangled", f)
    names = [g["symbol"] for g in stack if g["symbol"]]
    check(not [n for n in names if n.startswith("_Z")], "nothing left mangled", names)
    check(any("lambda" in n for n in names), "the thread's lambda in the walk", names)


def text_section(path):
    """(start, end) of .text in the file's addresses."""
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True).stdout
    m = re.search(r"\.text\s+PROGBITS\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)", out)
    check(m, "readelf finds .text", out)
    return int(m.group(1), 16), int(m.group(1), 16) + int(m.group(2), 16)


def test_stripped_binary_dynsym_or_nothing():
    binary = prog("symprog-stripped")
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True).stdout
    check(".symtab" not in out and ".debug_info" not in out, "the premise: stripped", out)
    r, facts = run_prog("symprog-stripped", "exported")
    exported = lock_stack(r, facts, "lock")[0]
    check(exported["symbol"] == "fh_exported_hold" and exported["offset"] > 0,
          "the exported function is named from .dynsym", exported)
    check("file" not in exported, "no line without DWARF", exported)
    local = lock_stack(r, facts, "lock_b")[0]
    # static_hold has no name anywhere: its neighbour's must not be given
    check(local["symbol"] is None and local["offset"] is None,
          "the local function stays unnamed", local)
    check(local["module"] == binary, "the module is still given", local)
    lo, hi = text_section(binary)
    check(lo <= local["module_offset"] < hi, "module_offset inside .text", local, (lo, hi))


def test_minidebuginfo_names_local_functions():
    binary = prog("symprog-minidebug")
    out = subprocess.run(["readelf", "-SW", binary], capture_output=True, text=True).stdout
    check(".gnu_debugdata" in out and ".symtab" not in out, "the premise: MiniDebugInfo only",
          out)
    dyn = subprocess.run(["nm", "-D", binary], capture_output=True, text=True).stdout
    check("hold_the_lock" not in dyn, "the premise: not in .dynsym", dyn)
    r, facts = run_prog("symprog-minidebug", "hold")
    check_hold_frame(lock_stack(r, facts)[0], facts, binary, dwarf=False)


def test_parent_exits_right_after_fork():
    r, facts = run_prog("symprog", "exit-early")
    stack = lock_stack(r, facts)
    check(not os.path.exists("/proc/%d" % facts["pid"]), "the parent is gone", facts)
    check_hold_frame(stack[0], facts, prog("symprog"))


def command_of(tracer):
    """The PID of the COMMAND a `forkhazard -- COMMAND` started, once it runs
    tests/progs/scenario and waits for SIGUSR1 (blocked: it is safe to send)."""
    found = []

    def waiting():
        if not found:
            for task in os.listdir("/proc/%d/task" % tracer.proc.pid):
                with open("/proc/%d/task/%s/children" % (tracer.proc.pid, task)) as f:
                    found.extend(int(c) for c in f.read().split())
        for pid in found:
            try:
                with open("/proc/%d/status" % pid) as f:
                    st = dict(l.split(":", 1) for l in f if ":" in l)
                with open("/proc/%d/wchan" % pid) as f:
                    wchan = f.read()
            except OSError:
                continue
            # blocked, or in sigwait (which unblocks what it waits for)
            if st["Name"].strip() == "scenario" and (int(st["SigBlk"], 16) & (1 << 9) or
                                                     "sigtimedwait" in wchan):
                found[:] = [pid]
                return True
        return False

    wait_until(waiting, 20, "the command waiting for SIGUSR1")
    return found[0]


def proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def test_tree_gone_before_its_event_is_read():
    """A process tree that ends before forkhazard reads its fork event (here
    forkhazard is stopped meanwhile, as a busy machine can hold it back for a
    millisecond) leaves no memory map to symbolize with: the stacks are
    addresses, the text report says why, and the summary counts the fork in
    dropped.unsymbolized_forks. The same program read in time: named frames,
    nothing said, nothing counted."""
    why = "addresses only: the process and its child had exited"
    for late, json_out in ((False, True), (True, True), (False, False), (True, False)):
        t = Tracer(["--", prog("scenario"), "--wait-signal", "hold"], json_out=json_out)
        pid = None
        try:
            pid = command_of(t)
            if late:
                os.kill(t.proc.pid, signal.SIGSTOP)
            os.kill(pid, signal.SIGUSR1)
            # a zombie (forkhazard, its parent, is stopped) or reaped
            wait_until(lambda: proc_state(pid) in ("Z", None), 20, "the command's end")
        except BaseException:
            if pid and proc_state(pid) not in ("Z", None):
                os.kill(pid, signal.SIGKILL)
            t.kill()
            raise
        finally:
            if t.proc.poll() is None:
                os.kill(t.proc.pid, signal.SIGCONT)
        r = t.wait()
        check(r.status == 0, "status", r.stderr)
        if not json_out:
            check("HAZARD: 1 foreign lock" in r.text, "the hazard is reported either way", r.text)
            check((why in r.text) == late, "the reason said when read late, only then", r.text)
            check(("hold_a+" in r.text) != late, "frames named when read in time", r.text)
            continue
        ev = r.one("fork", pid=pid)
        check(ev["locks"] and len(ev["locks"]) == 1, "the hazard is reported either way", ev)
        frames = ev["stack"] + ev["locks"][0]["stack"]
        check(frames, "with its stacks", ev)
        named = [f["symbol"] for f in frames if f["symbol"]]
        gone = r.summary()["dropped"]["unsymbolized_forks"]
        if late:
            check(not named, "read late: addresses only", frames)
            check(all(f["addr"] for f in frames), "each frame keeps its address", frames)
            check(gone == 1, "read late: counted", r.summary())
        else:
            check("hold_a" in named and "fork_while_held" in named,
                  "read in time: the lock's and the fork's callers named", named)
            check(gone == 0, "read in time: nothing counted", r.summary())


def test_binary_deleted_after_start():
    d = tempfile.mkdtemp(prefix="fh-deleted-")
    try:
        copy = os.path.join(d, "symprog")
        shutil.copy2(prog("symprog"), copy)
        bid = build_id(copy)
        r, facts = traced(["sh", "-c", 'exec "$0" "$@" > "$FH_FACTS"', copy, "deleted"])
        check(not os.path.exists(copy), "the program deleted itself", os.listdir(d))
        f = lock_stack(r, facts)[0]
        check(f["symbol"] == "hold_the_lock" and f.get("line") == facts["call_line"],
              "symbols and lines from the deleted file", f, facts)
        check(f["module"] == copy + " (deleted)", "the module says it was deleted", f)
        check(f.get("build_id") == bid, "its build-id", f)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_other_mount_namespace():
    """The process sees its binary bind-mounted over a path that, in our
    namespace, is another program: only /proc/PID/map_files tells."""
    if not shutil.which("unshare"):
        raise Skip("no unshare(1)")
    d = tempfile.mkdtemp(prefix="fh-mntns-")
    try:
        app = os.path.join(d, "app")
        shutil.copy2("/bin/true", app)
        script = 'mount --bind "$0" "$1" && exec "$1" hold > "$FH_FACTS"'
        probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"],
                               capture_output=True, text=True)
        if probe.returncode != 0:
            raise Skip("unshare -m not permitted here: %s" % probe.stderr.strip())
        r, facts = traced(["unshare", "-m", "--propagation", "private", "sh", "-c", script,
                           prog("symprog"), app])
        f = lock_stack(r, facts)[0]
        check(f["module"] == app, "the path as the process sees it", f)
        check(f.get("build_id") == build_id(prog("symprog")) != build_id(app),
              "the file the process maps, not ours at that path", f)
        check(f["symbol"] == "hold_the_lock", "its symbols", f)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_text_frames_readable():
    r, facts = run_prog("symprog", "hold", json_out=False)
    text = r.text
    m = re.search(r"#0 hold_the_lock\+0x[0-9a-f]+ \(symprog\.c:(\d+)\) \[symprog\]\n", text)
    check(m and int(m.group(1)) == facts["call_line"], "frame #0 with file:line and module",
          text, facts)
    m = re.search(r"\n +inlined: take_lock \(symprog\.c:(\d+)\)\n", text)
    check(m and int(m.group(1)) == facts["lock_line"], "the inlined call on its own line", text)
    check(re.search(r"#1 run_hold\+0x[0-9a-f]+ \(symprog\.c:\d+\) \[symprog\] \(fp\)", text),
          "a frame-pointer frame says so", text)
