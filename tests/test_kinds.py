"""Issue 6: every kind of lock users hold, wherever its code is: glibc (dynamic
and static), musl (dynamic and static), C++ std::mutex and std::shared_mutex,
a copy of the C library in another mount namespace, and --lock-fn locks.
Each case runs a real program under forkhazard: a worker holds the lock while
main forks, and (where asked) the child takes it."""

import json
import os
import shutil
import subprocess
import tempfile

from fh import Tracer, addr, check, prog, run

HANG = "--hang-ms=800"


def traced(cmd, extra=(), timeout=90):
    """forkhazard -j [extra] -- CMD: (result, facts of CMD's last JSON line).
    The command's stdout is forkhazard's (its own JSON goes to -o)."""
    t = Tracer(list(extra) + ["--"] + list(cmd))
    r = t.wait(timeout=timeout)
    out = t.proc.stdout.read()
    t.proc.stdout.close()
    check(r.status == 0, "forkhazard -- %s exited %s" % (cmd, r.status), r.stderr, out)
    facts = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    check(facts, "%s printed no facts" % cmd, out, r.stderr)
    return r, facts[-1]


def the_fork(r, f):
    return r.one("fork", pid=f["pid"], child_pid=f["child"])


def check_held(r, f, kind, confirmed=None):
    """The fork is a hazard naming exactly the worker's lock, of this kind."""
    ev = the_fork(r, f)
    check(ev["severity"] == "hazard", "%s: a hazard" % f["kind"], ev)
    check(len(ev["locks"]) == 1, "%s: one foreign lock" % f["kind"], ev["locks"])
    lock = ev["locks"][0]
    check(addr(lock["addr"]) == addr(f["lock"]), "%s: the lock's address" % f["kind"], lock, f)
    check(lock["kind"] == kind, "%s: reported as %s" % (f["kind"], kind), lock)
    check(lock["holder_tid"] == f["holder_tid"], "%s: the holder" % f["kind"], lock, f)
    if confirmed is not None:
        check(lock["confirmed"] == confirmed, "%s: confirmed=%s" % (f["kind"], confirmed), lock)
    return lock


def check_deadlock(r, f):
    """The child that took the inherited lock is reported deadlocked on it:
    its futex word lies in the lock, matched to the fork's lock record."""
    check(f["child_killed"], "%s: the child hung (killed by the program)" % f["kind"], f)
    d = r.one("deadlock", pid=f["child"])
    lock = int(f["lock"], 16)
    check(lock <= int(d["futex"], 16) < lock + 32, "%s: futex inside the lock" % f["kind"], d, f)
    check(d["lock"] is not None and addr(d["lock"]["addr"]) == addr(f["lock"]),
          "%s: matched to the fork's lock" % f["kind"], d)
    check(d["owner_tid"] == f["holder_tid"], "%s: owner_tid" % f["kind"], d, f)
    check(r.one("child", pid=f["child"])["outcome"] == "deadlock", "verdict", r.events[-5:])
    return d


def kind_case(binary, kind, reported, confirmed=None, deadlock=True):
    r, f = traced([prog(binary), "--child=lock", HANG, kind])
    lock = check_held(r, f, reported, confirmed)
    if deadlock:
        check_deadlock(r, f)
    return r, f, lock


# ---- glibc, one test per kind --------------------------------------------

def test_kind_mutex():
    kind_case("kinds", "mutex", "mutex", confirmed=True)


def test_kind_errorcheck_mutex():
    kind_case("kinds", "errorcheck", "mutex", confirmed=True)


def test_kind_recursive_mutex():
    kind_case("kinds", "recursive", "mutex", confirmed=True)


def test_kind_robust_mutex():
    # glibc waits on robust mutexes without FUTEX_PRIVATE_FLAG: the deadlock
    # is still certain, the futex being in this process's private memory
    kind_case("kinds", "robust", "mutex", confirmed=True)


def test_kind_c11_mtx():
    r, f, lock = kind_case("kinds", "mtx", "mutex", confirmed=True)
    check(lock["stack"][0]["symbol"] == "holder",
          "frame #0 is the caller of mtx_lock, not mtx_lock inside libc", lock["stack"][:2])


def test_kind_rwlock_read():
    kind_case("kinds", "rwlock-read", "rwlock-read", confirmed=False)


def test_kind_rwlock_write():
    kind_case("kinds", "rwlock-write", "rwlock-write", confirmed=True)


def test_kind_rwlock_try_functions():
    # probed at their success points: a taken try is a held lock
    kind_case("kinds", "rwlock-tryread", "rwlock-read", confirmed=False)
    kind_case("kinds", "rwlock-trywrite", "rwlock-write", confirmed=True)


def test_kind_sem():
    kind_case("kinds", "sem", "sem", confirmed=False)


def test_kind_spin():
    # A child spinning on an inherited spinlock never enters the kernel: no
    # futex wait to catch, so no deadlock event; the hazard is reported.
    r, f, _ = kind_case("kinds", "spin", "spin", confirmed=False, deadlock=False)
    check(f["child_killed"], "the child spun until killed", f)
    check(r.of("deadlock", pid=f["child"]) == [], "no deadlock event for a spinning child",
          r.events)


# ---- recursion and semaphores as signals ---------------------------------

def test_recursive_mutex_twice_released_once_is_held():
    r, f = traced([prog("kinds"), "recursive-2-1"])
    lock = check_held(r, f, "mutex", confirmed=True)
    check("depth" not in lock, "one level left: not reported as recursive", lock)


def test_recursive_mutex_twice_released_twice_is_free():
    r, f = traced([prog("kinds"), "recursive-2-2"])
    ev = the_fork(r, f)
    check(ev["locks"] == [] and ev["severity"] == "info", "released as often as taken", ev)


def test_sem_posted_by_another_thread_is_released():
    # The worker took the semaphore, another thread posted it and took it
    # back before exiting: the count is 0, but the worker holds nothing.
    r, f = traced([prog("kinds"), "sem-posted"])
    ev = the_fork(r, f)
    check(ev["locks"] == [], "the worker's acquisition was released by the post", ev)


def test_sem_taken_again_after_post_is_held():
    r, f = traced([prog("kinds"), "sem-handoff"])
    check_held(r, f, "sem", confirmed=False)


def test_sem_with_count_left_is_not_held():
    r, f = traced([prog("kinds"), "sem-count"])
    check(the_fork(r, f)["locks"] == [], "count 1 at the fork: nobody holds it", r.events)


def test_sem_condition_waiter_is_not_held():
    # taken once, then waited on again (trywait fails, timedwait blocks):
    # what CPython's Condition.wait does with its waiter lock
    r, f = traced([prog("kinds"), "sem-signal"])
    check(the_fork(r, f)["locks"] == [], "a wake-up signal, not a held lock", r.events)


# ---- C++ ------------------------------------------------------------------

def cc_case(kind, reported):
    r, f = traced([prog("kinds_cc"), "--child=lock", HANG, kind])
    f["kind"] = kind
    lock = check_held(r, f, reported)
    check(lock["stack"] and "std::" in (lock["stack"][0]["symbol"] or "") or
          any("std::" in (fr["symbol"] or "") for fr in lock["stack"][:3]),
          "the C++ frames are named", lock["stack"][:3])
    check_deadlock(r, f)


def test_cpp_std_mutex():
    cc_case("mutex", "mutex")


def test_cpp_shared_mutex_exclusive():
    cc_case("shared-write", "rwlock-write")


def test_cpp_shared_mutex_shared():
    cc_case("shared-read", "rwlock-read")


# ---- where the lock functions are ----------------------------------------

def test_static_glibc_binary():
    for kind, reported in (("mutex", "mutex"), ("rwlock-write", "rwlock-write"),
                           ("sem", "sem")):
        r, f = traced([prog("kinds-static"), "--child=lock", HANG, kind])
        lock = check_held(r, f, reported)
        check(lock["stack"][0]["module"].endswith("/kinds-static"), "static: frames in the exe",
              lock["stack"][:2])
        check_deadlock(r, f)


def test_musl_binary():
    cases = (("mutex", "mutex", False), ("recursive", "mutex", True), ("mtx", "mutex", False),
             ("rwlock-read", "rwlock-read", False), ("rwlock-write", "rwlock-write", False),
             ("sem", "sem", False), ("spin", "spin", False))
    for kind, reported, confirmed in cases:
        r, f = traced([prog("kinds-musl"), "--child=lock", HANG, kind])
        lock = check_held(r, f, reported, confirmed)
        check(lock["stack"][0]["symbol"] == "holder", "%s: the exact caller" % kind,
              lock["stack"][:2])
        if kind != "spin":
            check_deadlock(r, f)


def test_musl_static_binary():
    for kind, reported in (("mutex", "mutex"), ("rwlock-read", "rwlock-read"), ("sem", "sem")):
        r, f = traced([prog("kinds-musl-static"), "--child=lock", HANG, kind])
        check_held(r, f, reported)
        check_deadlock(r, f)


def test_recursive_depth_with_musl():
    # musl's pthread_mutex_lock calls its timedlock which calls its trylock:
    # one acquisition all the same (released once: free)
    r, f = traced([prog("kinds-musl"), "recursive-2-2"])
    check(the_fork(r, f)["locks"] == [], "musl: taken twice, released twice", r.events)
    r, f = traced([prog("kinds-musl"), "recursive-2-1"])
    lock = check_held(r, f, "mutex", confirmed=True)
    check("depth" not in lock, "musl: one level left", lock)


def test_deadlock_owner_per_layout():
    # --light: no lock records, the owner comes from the lock word alone
    cases = (("kinds", "mutex", True), ("kinds", "rwlock-write", True),
             ("kinds", "rwlock-read", False), ("kinds", "sem", False),
             ("kinds-musl", "recursive", True), ("kinds-musl", "mutex", False),
             ("kinds-musl", "sem", False))
    for binary, kind, known in cases:
        r, f = traced([prog(binary), "--child=lock", HANG, kind], extra=["--light"])
        d = r.one("deadlock", pid=f["child"])
        want = f["holder_tid"] if known else None
        check(d["owner_tid"] == want, "%s %s: owner_tid %s" % (binary, kind, want), d, f)


def test_no_lock_functions_said_once_per_binary():
    exe = prog("nolocks-musl-static")
    out = tempfile.NamedTemporaryFile(prefix="fh-", suffix=".out", delete=False)
    out.close()
    try:
        p = run(["-v", "-j", "-o", out.name, "--", "sh", "-c", '"$0"; "$0"', exe], timeout=60)
    finally:
        os.unlink(out.name)
    check(p.returncode == 0, "status", p.stderr)
    said = [l for l in p.stderr.splitlines() if "no lock functions recognized" in l]
    check(len(said) == 1 and exe in said[0], "said once for two processes of it", p.stderr)
    check("maps no C library" not in p.stderr, "not once per process at -v", p.stderr)


def test_mount_namespace_copy_of_libc():
    """A process in its own mount namespace runs on a copy of libc.so.6 (another
    inode at the same path): its lock functions are probed through
    /proc/PID/map_files, and its locks are reported."""
    libc = subprocess.run(["sh", "-c", "ldd %s | awk '/libc.so.6/ {print $3}'" % prog("kinds")],
                          capture_output=True, text=True).stdout.strip()
    check(libc.startswith("/"), "found the C library kinds uses", libc)
    tmp = tempfile.mkdtemp(prefix="fh-ns-")
    try:
        copy = os.path.join(tmp, "libc.so.6")
        shutil.copy2(libc, copy)
        inner = 'mount --bind "$0" "$1" && shift && exec "$@"'
        cmd = ["unshare", "-m", "--propagation", "private", "sh", "-c", inner, copy, libc,
               prog("kinds"), "--settle-ms=300", "--child=lock", HANG, "mutex"]
        r, f = traced(cmd, extra=["-v"])
        check_held(r, f, "mutex", confirmed=True)
        check_deadlock(r, f)
        # the process mapped the copy, not the file the tool itself runs on
        ino = os.stat(copy).st_ino
        check(ino != os.stat(libc).st_ino, "a distinct inode")
        probed = [l for l in r.stderr.splitlines() if "lock probes on" in l]
        check(len(probed) >= 2, "probes on the host's libc (start) and on the copy (after exec)",
              r.stderr)
    finally:
        shutil.rmtree(tmp)


# ---- --lock-fn ------------------------------------------------------------

def lockfn_spec(try_fn=False):
    lib = prog("libfhlock.so")
    return (lib + ":fh_lock_try:fh_lock_release:TRY") if try_fn else \
        (lib + ":fh_lock_acquire:fh_lock_release")


def test_lock_fn_custom_lock():
    r, f = traced([prog("lockfn"), "--child=lock", HANG], extra=["--lock-fn", lockfn_spec()])
    f["kind"] = "custom"
    check_held(r, f, "custom")
    check_deadlock(r, f)


def test_lock_fn_try_counts_only_success():
    r, f = traced([prog("lockfn"), "--try"], extra=["--lock-fn", lockfn_spec(try_fn=True)])
    f["kind"] = "custom"
    check(f["failed_try"] == 1, "the worker's first try failed (main held it)", f)
    lock = check_held(r, f, "custom")
    check(lock["holder_tid"] != f["main_tid"], "main released it: not reported", lock)


def test_lock_fn_needed_for_custom_locks():
    r, f = traced([prog("lockfn")])
    ev = the_fork(r, f)
    check(ev["locks"] == [], "without --lock-fn the library's lock is unknown", ev)
