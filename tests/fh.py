"""Helpers for forkhazard's integration tests: run the built binary as a user
would, with real BPF, against the programs in tests/progs, and read its JSON."""

import atexit
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

BUILD = os.environ.get("FH_BUILD", "build")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEMA = os.path.join(ROOT, "docs", "json.schema.json")


class TestFailure(AssertionError):
    pass


class Skip(Exception):
    """Raise only where the machine truly lacks a feature."""


def check(cond, msg, *ctx):
    if not cond:
        detail = "".join("\n    " + str(c)[:4000] for c in ctx)
        raise TestFailure(msg + detail)


_validator = []


def validator():
    """docs/json.schema.json's validator (None without the jsonschema module)."""
    if not _validator:
        try:
            import jsonschema
        except ImportError:
            return None
        with open(SCHEMA) as f:
            _validator.append(jsonschema.Draft202012Validator(json.load(f)))
    return _validator[0]


def validate_event(ev, where="a record"):
    """Fail unless ev is a record docs/json.schema.json allows."""
    v = validator()
    check(v is not None, "the jsonschema module (Debian python3-jsonschema: make deps)")
    err = next(iter(v.iter_errors(ev)), None)
    if err is not None:
        check(False, "%s breaks docs/json.schema.json at %s: %s" %
              (where, "/".join(str(p) for p in err.absolute_path) or "top", err.message[:500]),
              json.dumps(ev)[:1500])


def parse_event(line, where="a record"):
    """One JSON line of forkhazard's, checked against the schema."""
    try:
        ev = json.loads(line)
    except ValueError as e:
        raise TestFailure("%s is not JSON: %s: %r" % (where, e, line[:300]))
    validate_event(ev, where)
    return ev


def binary():
    return os.path.join(ROOT, BUILD, "forkhazard")


_nobody_copy = None


def binary_for_nobody():
    """The binary where an unprivileged user can reach it: the checkout may
    sit in a directory only root may enter (mktemp -d is 0700)."""
    global _nobody_copy
    if _nobody_copy is None:
        d = tempfile.mkdtemp(prefix="fh-nobody-")
        os.chmod(d, 0o755)
        _nobody_copy = os.path.join(d, "forkhazard")
        shutil.copy2(binary(), _nobody_copy)
        os.chmod(_nobody_copy, 0o755)
        atexit.register(shutil.rmtree, d, True)
    return _nobody_copy


def prog(name):
    return os.path.join(ROOT, BUILD, "tests", name)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def check_sanitizers(stderr):
    """A sanitizer report in forkhazard's stderr (make check-asan) fails the test,
    even where the test does not look at the exit status."""
    for mark in SANITIZER_MARKS:
        i = stderr.find(mark)
        check(i < 0, "sanitizer report in forkhazard's stderr", stderr[max(0, i - 300):])


def run(args, timeout=30, **kw):
    """Run forkhazard to completion; returns CompletedProcess (text)."""
    p = subprocess.run([binary()] + args, capture_output=True, text=True,
                       timeout=timeout, **kw)
    check_sanitizers(p.stderr)
    return p


def read_while_written(f):
    """What a running process has written so far to f, a file it shares with
    us (its stderr): read with pread, which leaves the shared file offset
    alone. A seek and read would move it under the writer, whose next bytes
    would then land over older ones."""
    data, off = [], 0
    while True:
        chunk = os.pread(f.fileno(), 1 << 16, off)
        if not chunk:
            return b"".join(data).decode("utf-8", errors="replace")
        data.append(chunk)
        off += len(chunk)


class Tracer:
    """forkhazard running in the background with JSON output to a file."""

    def __init__(self, args, json_out=True, ready_timeout=20, env=None):
        self.tmp = tempfile.NamedTemporaryFile(prefix="fh-", suffix=".out", delete=False)
        self.tmp.close()
        self.args = list(args)
        cmd = [binary()] + (["-j"] if json_out else []) + ["-o", self.tmp.name] + self.args
        self.stderr_file = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.stderr_file,
                                     text=True, env=env)
        self._wait_ready(ready_timeout)

    def _wait_ready(self, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            err = read_while_written(self.stderr_file)
            if "Tracing" in err:
                return
            if self.proc.poll() is not None:
                raise TestFailure("forkhazard exited before tracing (status %s): %s"
                                  % (self.proc.returncode, err))
            time.sleep(0.02)
        self.kill()
        raise TestFailure("forkhazard not tracing after %ss" % timeout)

    def stop(self, sig=signal.SIGINT, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("forkhazard did not stop within %ss of %s" % (timeout, sig))
        return self.result()

    def wait(self, timeout=60):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("forkhazard did not exit within %ss" % timeout)
        return self.result()

    def result(self):
        with open(self.tmp.name, "rb") as f:
            raw = f.read()
        os.unlink(self.tmp.name)
        self.stderr_file.seek(0)
        return Result(self.proc.returncode, raw, self.stderr_file.read())

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Result:
    def __init__(self, status, raw, stderr):
        self.status = status
        self.raw = raw
        self.stderr = stderr
        check_sanitizers(stderr)
        self.text = raw.decode("utf-8", errors="replace")
        self.events = []
        if raw and raw.lstrip().startswith(b"{"):
            for i, line in enumerate(raw.splitlines()):
                self.events.append(parse_event(line, "output line %d" % (i + 1)))

    def of(self, type_, **match):
        return [e for e in self.events if e.get("type") == type_ and
                all(e.get(k) == v for k, v in match.items())]

    def one(self, type_, **match):
        found = self.of(type_, **match)
        check(len(found) == 1, "expected one %s event matching %s, found %d" %
              (type_, match, len(found)), *(self.events[-20:] + [self.stderr]))
        return found[0]

    def summary(self):
        return self.one("summary")


def run_scenario(args, timeout=60):
    """Run tests/progs/scenario; returns the facts it printed (last JSON line)."""
    p = subprocess.run([prog("scenario")] + args, capture_output=True, text=True, timeout=timeout)
    check(p.returncode == 0, "scenario %s failed (%s)" % (args, p.returncode), p.stderr)
    lines = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    check(lines, "scenario printed no facts", p.stdout)
    return lines


def addr(a):
    """Normalize an address string for comparison."""
    return "0x%x" % int(a, 16)


class Background:
    """A test program in the background that prints {"ready":pid} and waits
    for SIGUSR1; killed on close whatever happens."""

    def __init__(self, args):
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        line = self.proc.stdout.readline()
        check(line.startswith("{"), "background program did not start", line)
        self.pid = json.loads(line)["ready"]

    def go(self, timeout=60):
        os.kill(self.pid, signal.SIGUSR1)
        out, err = self.proc.communicate(timeout=timeout)
        check(self.proc.returncode == 0, "program failed (%s)" % self.proc.returncode, err)
        return [json.loads(l) for l in out.splitlines() if l.startswith("{")]

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def thread_syscall(pid, tid):
    """/proc/PID/task/TID/syscall, stripped; "" if the thread is gone."""
    try:
        with open("/proc/%d/task/%d/syscall" % (pid, tid)) as f:
            return f.read().strip()
    except OSError:
        return ""


def wait_until(cond, timeout=5.0, what="condition"):
    """Poll cond() every 10 ms until it is true; fails the test after timeout."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.01)
    raise TestFailure("%s not reached within %ss" % (what, timeout))


class Hung:
    """tests/progs/hung MODE in the background, started without any tracer.
    .facts: the JSON line it printed (pid, child, holder_tid, lock...).
    close() kills its forked child (if any) and then it, whatever happens."""

    def __init__(self, mode, deadline_ms=20000, evil_name=False, timeout=10):
        args = [prog("hung")] + (["--evil-name"] if evil_name else []) + [mode, str(deadline_ms)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.facts = {}
        import select
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line.startswith(b"{"):
            self.close()
            raise TestFailure("hung %s did not start: %r" % (mode, line))
        self.facts = json.loads(line)

    def close(self):
        kill_child_of(self.proc.pid, self.facts.get("child"))
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


def kill_child_of(parent, child):
    """SIGKILL child if it still is parent's child (not a reused PID)."""
    if not child:
        return
    try:
        with open("/proc/%d/stat" % child) as f:
            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        if ppid == parent:
            os.kill(child, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass
