"""Issue 7: hostile input. Names and paths made to break terminals and JSON,
malformed options, PIDs that are not processes, an -o path set up to redirect
root's writes, a process that unmaps memory while it is read, and the /proc
parsers under libFuzzer."""

import glob
import os
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time

from fh import BUILD, ROOT, Tracer, addr, check, parse_event, prog, run
from test_hardening import hostile, read_ready, traced

# A file name no terminal should see raw: ESC sequences (clear the screen,
# set the title), a newline, quotes, a backslash, bytes that are not UTF-8,
# a C1 control in UTF-8 (U+009B, CSI).
EVIL_NAME = b"\x1b[2J\x1b]0;pwned\x07\n\"'\\\xff\xfe\xc2\x9b-evil"


def terminal_safe(raw):
    """Problems with bytes meant for a terminal: control bytes (but newline),
    DEL, C1 controls, invalid UTF-8."""
    bad = []
    for i, b in enumerate(raw):
        if (b < 0x20 and b != 0x0a) or b == 0x7f:
            bad.append("control 0x%02x at %d: %r" % (b, i, raw[max(0, i - 40):i + 10]))
    try:
        text = raw.decode("utf-8")
        for m in re.finditer("[\u0080-\u009f]", text):
            bad.append("C1 control at %d" % m.start())
    except UnicodeDecodeError as e:
        bad.append("invalid UTF-8: %s" % e)
    return bad[:5]


def evil_copy():
    work = tempfile.mkdtemp(prefix="fh-evil-")
    path = os.path.join(work.encode(), EVIL_NAME)
    shutil.copy(prog("hostile").encode(), path)
    return work, path


def test_hostile_names_json_stays_valid():
    work, path = evil_copy()
    try:
        t = Tracer(["--", path, "evil"])
        r = t.wait()      # Result parses every line: one that is not JSON fails
    finally:
        shutil.rmtree(work, ignore_errors=True)
    check(r.status == 0, "status", r.stderr)
    forks = r.of("fork")
    check(len(forks) == 1 and forks[0]["severity"] == "hazard", "the hazard", r.events)
    ev = forks[0]
    check(ev["comm"].startswith("\x1b[31m\"\\\n") and "\ufffd" in ev["comm"],
          "comm: control characters escaped by JSON, invalid bytes as U+FFFD", ev["comm"])
    lock = ev["locks"][0]
    check(lock["holder_comm"].startswith("\x1b]0;t\x07\t\r\x7f"), "the thread's name",
          lock["holder_comm"])
    modules = [f["module"] for f in lock["stack"] if f.get("module")]
    check(any("evil" in m for m in modules), "the hostile path is in the stack", modules)
    check(lock["stack"][0]["symbol"] == "hold_a", "and symbolized", lock["stack"])
    for line in r.raw.splitlines():
        check(all(b >= 0x20 for b in line), "no raw control byte inside a JSON line", line)
    check(not terminal_safe(r.stderr.encode()), "stderr is terminal-safe",
          terminal_safe(r.stderr.encode()))


def test_hostile_names_terminal_output_safe():
    work, path = evil_copy()
    try:
        t = Tracer(["-v", "--", path, "evil"], json_out=False)
        r = t.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    check(r.status == 0, "status", r.stderr)
    check("HAZARD: 1 foreign lock" in r.text, "the hazard", r.text)
    check("\\x1b[31m" in r.text, "the name shown escaped", r.text)
    check("hold_a" in r.text, "symbolized", r.text)
    bad = terminal_safe(r.raw) + terminal_safe(r.stderr.encode())
    check(not bad, "no raw control byte, no invalid UTF-8 on the terminal", bad)


def test_malformed_lock_fn():
    esc = "/x\x1b[31m\x9b:a:b"
    cases = [
        ("", 2), (":", 2), ("::", 2), ("a:b", 2), ("/bin/true:a:b:TRY:x", 2),
        ("/bin/true:a:b:NOPE", 2), ("/bin/true::b", 2),
        ("/nonexistent:a:b", 1), ("/dev/null:a:b", 1), ("/tmp:a:b", 1),
        ("/etc/passwd:a:b", 1),                      # not an ELF file
        ("/bin/true:pthread_mutex_lock:nope", 1),    # no such functions in it
        (esc, 1), ("/" + "a" * 5000 + ":b:c", 1), ("/bin/true:a\nb:c", 1),
    ]
    for spec, status in cases:
        p = subprocess.run([os.path.join(ROOT, BUILD, "forkhazard"), "--lock-fn", spec, "-d",
                            "0.2"], capture_output=True, timeout=30)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        check(p.returncode == status, "--lock-fn %r: status %d, wanted %d" %
              (spec[:60], p.returncode, status), p.stderr[:500])
        check(len(lines) == 1 and b"--lock-fn" in lines[0] and len(lines[0]) < 400,
              "--lock-fn %r: one short line" % spec[:60], p.stderr[:500])
        check(not terminal_safe(p.stderr), "--lock-fn %r: escaped" % spec[:60],
              terminal_safe(p.stderr))
        check(p.stdout == b"", "nothing on stdout", p.stdout[:200])


def test_malformed_numbers_and_names():
    for args in (["--ring-buffer-kb", "3"], ["--ring-buffer-kb", "0"], ["--ring-buffer-kb", "x"],
                 ["--max-children", "-1"], ["--max-traced", "99999999999999999999"],
                 ["--comm", "a" * 16], ["--comm", ""], ["-p", "1\x1b[2J"], ["-u", ""],
                 ["--hold-ms", "1e3"], ["-d", "nan"], ["-d", "inf"], ["--stack-depth", "0x10"]):
        p = subprocess.run([os.path.join(ROOT, BUILD, "forkhazard")] + args, capture_output=True,
                           timeout=30)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        check(p.returncode == 2 and len(lines) == 1, "%r: usage error, one line" % args,
              p.returncode, p.stderr)
        check(not terminal_safe(p.stderr), "%r: escaped" % args, p.stderr)


def test_malformed_config_file():
    """--config FILE that is not a configuration: a FIFO (must not block), a
    directory, binary bytes, a line without end, NUL bytes, a key with an
    escape sequence, a symlink to /etc/shadow: one escaped line, exit 2."""
    work = tempfile.mkdtemp(prefix="fh-conf-")
    try:
        def put(name, data):
            path = os.path.join(work, name)
            with open(path, "wb") as f:
                f.write(data)
            return path
        os.mkfifo(os.path.join(work, "fifo"))
        os.symlink("/etc/shadow", os.path.join(work, "shadow"))
        with open(os.path.join(ROOT, BUILD, "forkhazard"), "rb") as f:
            elf = f.read(3000)
        cases = [
            (os.path.join(work, "fifo"), "not a regular file"),
            (work, "not a regular file"),
            (put("binary", elf), "forkhazard"),
            (put("long", b"comm = " + b"a" * 100000 + b"\n"), "line too long"),
            (put("nul", b"daemon = yes\n\0\0junk\n"), ":2: "),
            (put("esc", b"b\x1b[2Jogus = 1\n"), ":1: "),
            (put("esckey", b"bogus\x1b = 1\n"), ":1: "),
            (put("value", b"stack-depth = \x1b[31m99\n"), "stack depth"),
            (os.path.join(work, "shadow"), ":1: "),
        ]
        for path, msg in cases:
            p = subprocess.run([os.path.join(ROOT, BUILD, "forkhazard"), "--config=" + path, "-d",
                                "0.2"], capture_output=True, timeout=20)
            lines = [l for l in p.stderr.splitlines() if l.strip()]
            check(p.returncode == 2 and len(lines) == 1 and msg.encode() in lines[0],
                  "%s: one line with %r, exit 2" % (os.path.basename(path), msg), p.returncode,
                  p.stderr[:400])
            check(not terminal_safe(p.stderr), "%s: escaped" % os.path.basename(path),
                  terminal_safe(p.stderr))
            check(b"root:" not in p.stderr, "no line of the file shown", p.stderr[:400])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def kernel_thread_pids(n=3):
    found = []
    for d in sorted(glob.glob("/proc/[0-9]*"), key=lambda d: int(d[6:])):
        try:
            with open(d + "/stat") as f:
                flags = int(f.read().rsplit(")", 1)[1].split()[6])
        except (OSError, ValueError, IndexError):
            continue
        if flags & 0x00200000:
            found.append(int(d[6:]))
        if len(found) == n:
            break
    return found


def test_kernel_thread_and_thread_pids():
    kthreads = kernel_thread_pids()
    check(kthreads, "kernel threads found")
    for pid in kthreads:
        p = run(["-p", str(pid), "-d", "0.2"])
        check(p.returncode == 1 and "kernel thread" in p.stderr and
              len(p.stderr.strip().splitlines()) == 1, "-p %d: a kernel thread, one line" % pid,
              p.stderr)
        p = run(["inspect", str(pid)])
        check(p.returncode == 1 and "kernel thread" in p.stderr, "inspect %d" % pid, p.stderr)
    proc = subprocess.Popen(hostile("holdforever", 1), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        f = read_ready(proc)
        p = run(["-p", str(f["holder_a"]), "-d", "0.2"])
    finally:
        proc.kill()
        proc.wait()
    check(p.returncode == 1 and ("thread of process %d" % f["ready"]) in p.stderr,
          "-p TID: names the process it belongs to", p.stderr)


def out_run(path, timeout=30):
    # ourselves only (single-threaded): no event but the summary
    return run(["-j", "--light", "-p", str(os.getpid()), "-d", "0.2", "-o", path],
               timeout=timeout)


def test_output_path_policy():
    """-o as root: never through a symlink, never into a FIFO or device, never
    over another user's file or a file with other hard links, never into a
    directory another user controls; an own file is overwritten, a new one
    created."""
    work = tempfile.mkdtemp(prefix="fh-out-")
    try:
        os.chmod(work, 0o755)
        precious = os.path.join(work, "precious")
        with open(precious, "w") as f:
            f.write("precious\n")

        def untouched():
            with open(precious) as f:
                return f.read() == "precious\n"

        # a FIFO: opening it for writing would block forever
        fifo = os.path.join(work, "fifo")
        os.mkfifo(fifo)
        t0 = time.time()
        p = out_run(fifo, timeout=20)
        check(p.returncode == 1 and "not a regular file" in p.stderr and time.time() - t0 < 15,
              "FIFO refused at once", p.returncode, p.stderr)
        # a hard link to a file elsewhere
        hard = os.path.join(work, "hard")
        os.link(precious, hard)
        p = out_run(hard)
        check(p.returncode == 1 and "hard links" in p.stderr and untouched(),
              "hard link refused", p.stderr)
        # a symlink, even to our own file
        link = os.path.join(work, "link")
        os.symlink(precious, link)
        p = out_run(link)
        check(p.returncode == 1 and "symbolic link" in p.stderr and untouched(),
              "symlink refused", p.stderr)
        # another user's file
        theirs = os.path.join(work, "theirs")
        with open(theirs, "w") as f:
            f.write("theirs\n")
        os.chown(theirs, 65534, 65534)
        p = out_run(theirs)
        check(p.returncode == 1 and "another user" in p.stderr, "another user's file", p.stderr)
        with open(theirs) as f:
            check(f.read() == "theirs\n", "left alone")
        # a directory another user owns, or anyone may write to (not sticky)
        for mode, owner in ((0o755, 65534), (0o777, 0), (0o775, 0)):
            d = os.path.join(work, "d-%o-%d" % (mode, owner))
            os.mkdir(d)
            os.chown(d, owner, 65534)
            os.chmod(d, mode)
            p = out_run(os.path.join(d, "out"))
            check(p.returncode == 1 and "directory" in p.stderr and
                  not os.path.exists(os.path.join(d, "out")),
                  "directory %o of %d refused" % (mode, owner), p.stderr)
        # a sticky world-writable directory (/tmp) is fine, and so is a new file
        sticky = os.path.join(work, "sticky")
        os.mkdir(sticky)
        os.chmod(sticky, 0o1777)
        new = os.path.join(sticky, "new")
        p = out_run(new)
        check(p.returncode == 0, "new file in a sticky directory", p.stderr)
        st = os.stat(new)
        check(stat.S_ISREG(st.st_mode) and st.st_uid == 0, "created", st)
        with open(new) as f:
            check(parse_event(f.read().splitlines()[-1])["type"] == "summary", "written")
        # our own existing file: truncated and rewritten
        with open(new, "a") as f:
            f.write("x" * 100000)
        p = out_run(new)
        check(p.returncode == 0 and os.path.getsize(new) < 5000, "own file overwritten",
              p.stderr, os.path.getsize(new))
        # a directory named through a symlink the user made: followed
        os.symlink(sticky, os.path.join(work, "dirlink"))
        p = out_run(os.path.join(work, "dirlink", "via"))
        check(p.returncode == 0 and os.path.exists(os.path.join(sticky, "via")),
              "a symlinked directory the user named is followed", p.stderr)
        check(untouched(), "the precious file survived it all")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_memory_unmapped_while_read():
    """The held mutex's page is unmapped before the forks, another thread maps
    and unmaps code and renames the process all the time: reads fail cleanly,
    the lock is still reported (unconfirmed), every fork is accounted for."""
    r, f = traced(["remap", 300])
    s = r.summary()
    forks = r.of("fork", pid=f["pid"])
    check(f["forks"] == 300 and s["mt_forks"] == 300, "every fork seen", f, s)
    check(len(forks) + s["lost_forks"] == 300, "every fork reported", len(forks), s)
    for ev in forks:
        check([(addr(l["addr"]), l["holder_tid"], l["confirmed"]) for l in ev["locks"]] ==
              [(addr(f["lock"]), f["holder_a"], False)],
              "the lock whose memory is gone: reported, unconfirmed", ev["locks"], f)
    check("malformed" not in r.stderr, "no malformed records", r.stderr)


def test_inspect_process_unmapping_memory():
    """inspect on a process whose threads map and unmap memory all the time:
    its reads fail or succeed, never crash, and it answers in bounded time."""
    proc = subprocess.Popen(hostile("remap", 100000), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        time.sleep(0.3)
        for _ in range(5):
            p = run(["inspect", "--json", str(proc.pid)], timeout=60)
            check(p.returncode in (0, 1), "inspect exits cleanly", p.returncode, p.stderr)
            if p.returncode == 0:
                ev = parse_event(p.stdout.splitlines()[-1])
                check(ev["type"] == "inspect" and ev["pid"] == proc.pid, "a verdict", ev)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


# ---- the /proc parsers under libFuzzer ----------------------------------------------

PROC_SEEDS = os.path.join(ROOT, "fuzz", "corpus", "procfs")
FUZZ_SECONDS = int(os.environ.get("FH_FUZZ_SECONDS", "10"))


def procfs_fuzzer():
    path = os.path.join(ROOT, BUILD, "fuzz", "fuzz_procfs")
    check(os.access(path, os.X_OK), "%s is built by make test" % path)
    return path


def test_fuzz_procfs_seeds_replay_clean():
    seeds = sorted(glob.glob(os.path.join(PROC_SEEDS, "*")))
    check(len(seeds) >= 8, "the seed corpus is there", seeds)
    p = subprocess.run([procfs_fuzzer(), "-detect_leaks=1"] + seeds, capture_output=True,
                       text=True, timeout=120)
    ran = len(re.findall(r"^Executed ", p.stderr, re.M))
    check(p.returncode == 0 and ran == len(seeds), "every seed runs clean", ran,
          p.stderr[-3000:])


def test_fuzz_procfs_briefly():
    work = tempfile.mkdtemp(prefix="fh-fuzz-procfs-")
    try:
        corpus = os.path.join(work, "corpus")
        os.mkdir(corpus)
        p = subprocess.run([procfs_fuzzer(), "-max_total_time=%d" % FUZZ_SECONDS,
                            "-max_len=8192", "-timeout=10", "-rss_limit_mb=1024",
                            "-print_final_stats=1", "-artifact_prefix=%s/" % work,
                            corpus, PROC_SEEDS],
                           capture_output=True, text=True, timeout=FUZZ_SECONDS + 120)
        found = [f for f in os.listdir(work) if f != "corpus"]
        check(p.returncode == 0 and not found, "no crash, leak, timeout or OOM", found,
              p.stderr[-3000:])
        m = re.search(r"stat::number_of_executed_units: (\d+)", p.stderr)
        check(m and int(m.group(1)) >= 10000, "it did fuzz", p.stderr[-1000:])
    finally:
        shutil.rmtree(work, ignore_errors=True)
