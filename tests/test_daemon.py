"""Issue 8: the monitoring daemon (--daemon), its packaging and its fleet files.

Real BPF, real processes: tests/progs/sites makes hazards at one site again
and again, or at many distinct sites; scenario makes a child deadlock. Every
daemon these tests start is filtered to its own test program (other
processes on the machine fork too) and is stopped by the test."""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

from fh import (ROOT, Skip, TestFailure, binary, check, check_sanitizers, parse_event,
                prog)

PROMTOOL = shutil.which("promtool")

_SITES = {}


def sites_exe():
    """tests/progs/sites under a name of this test run's own: other runs of
    this suite on the machine (other developers') use --comm sites too."""
    if not _SITES:
        d = tempfile.mkdtemp(prefix="fh-sites-")
        name = "fhs%05d" % (os.getpid() % 100000)
        shutil.copy(prog("sites"), os.path.join(d, name))
        atexit.register(shutil.rmtree, d, True)
        _SITES.update(dir=d, name=name, path=os.path.join(d, name))
    return _SITES["path"]


def sites_name():
    sites_exe()
    return _SITES["name"]


# ---- helpers ----------------------------------------------------------------

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Daemon:
    """forkhazard --daemon -o DIR/events.jsonl ARGS, stopped by the test."""

    def __init__(self, args, ready_timeout=20, output=True, env=None, cmd=None):
        self.dir = tempfile.mkdtemp(prefix="fh-daemon-")
        self.events_path = os.path.join(self.dir, "events.jsonl")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.stderr_file = open(self.stderr_path, "w+")
        if cmd is None:
            cmd = [binary(), "--daemon"] + (["-o", self.events_path] if output else []) + args
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if not output else
                                     subprocess.DEVNULL, stderr=self.stderr_file, env=env)
        deadline = time.time() + ready_timeout
        while time.time() < deadline:
            if "Tracing" in self.stderr():
                return
            if self.proc.poll() is not None:
                raise TestFailure("daemon exited before tracing (%s): %s" %
                                  (self.proc.returncode, self.stderr()))
            time.sleep(0.02)
        self.kill()
        raise TestFailure("daemon not tracing after %ss" % ready_timeout)

    def stderr(self):
        with open(self.stderr_path, errors="replace") as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise TestFailure("daemon did not stop within %ss of %s" % (timeout, sig))
        check_sanitizers(self.stderr())
        return self.proc.returncode

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def close(self):
        self.kill()
        self.stderr_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def read_events(*paths):
    """Every line of the files must be one whole JSON object."""
    events = []
    for path in paths:
        with open(path, "rb") as f:
            raw = f.read()
        check(not raw or raw.endswith(b"\n"), "%s ends with a whole line" % path, raw[-200:])
        for i, line in enumerate(raw.splitlines()):
            events.append(parse_event(line, "%s line %d" % (path, i + 1)))
    return events


def probed_for(daemon_pid, pid):
    """Has the daemon attached lock probes for process pid? (its uprobe_multi
    links' fdinfo names the PID they filter on)"""
    fdinfo = "/proc/%d/fdinfo" % daemon_pid
    try:
        names = os.listdir(fdinfo)
    except OSError:
        return False
    for n in names:
        try:
            with open(os.path.join(fdinfo, n)) as f:
                info = f.read(400)
        except OSError:
            continue
        if "uprobe_multi" in info and re.search(r"^pid:\s+%d$" % pid, info, re.M):
            return True
    return False


class Sites:
    """tests/progs/sites --wait-signal ARGS: started, then released once the
    daemon's own probes are on it (other tracers of other suites may have
    placed probes in the C library too: its own check cannot tell)."""

    def __init__(self, daemon, args, exe=None, wrap=(), host_pid=None):
        self.proc = subprocess.Popen(list(wrap) + [exe or sites_exe(), "--wait-signal"] + args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = self.proc.stdout.readline()
            check(line.startswith(b'{"ready"'), "sites started", line)
            self.pid = host_pid(self.proc.pid) if host_pid else json.loads(line)["ready"]
            wait_for(lambda: probed_for(daemon.proc.pid, self.pid), 30,
                     "the daemon's lock probes on PID %d" % self.pid)
        except BaseException:
            self.close()
            raise

    def go(self, timeout=60):
        os.kill(self.pid, signal.SIGUSR1)
        out, err = self.proc.communicate(timeout=timeout)
        check(self.proc.returncode == 0, "sites failed (%s)" % self.proc.returncode, err)
        return json.loads(out.strip().splitlines()[-1])

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_sites(daemon, args, **kw):
    s = Sites(daemon, args, **kw)
    try:
        return s.go()
    finally:
        s.close()


def http_get(port, path="/metrics", method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def unescape_label(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


def parse_prom(text):
    """Prometheus text format -> {(name, frozenset(labels)): value}; strict
    about the line shapes this exporter writes."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            check(not line or re.match(r"# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* ", line),
                  "comment line", line)
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
        check(m, "sample line", line)
        labels = frozenset((k, unescape_label(v)) for k, v in _LABEL.findall(m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return samples


def metric(samples, name, **labels):
    want = frozenset(labels.items())
    found = [v for (n, ls), v in samples.items() if n == name and want <= ls]
    check(len(found) == 1, "one sample %s%s" % (name, labels), len(found))
    return found[0]


def promtool_check(text):
    check(PROMTOOL, "promtool (Debian package prometheus) is installed: make deps")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=30)
    check(p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
          "promtool check metrics: clean", p.returncode, p.stdout, p.stderr)


def wait_for(cond, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise TestFailure("%s not reached within %ss" % (what, timeout))


def site_records(events, site):
    return [e for e in events if e["type"] == "site" and e["site"] == site]


# ---- the daemon ---------------------------------------------------------------

def test_daemon_repeated_site_once_in_full_then_aggregated():
    d = Daemon(["--comm", sites_name(), "--filter-comm", sites_name(), "--report-interval", "0.5"])
    try:
        facts = run_sites(d, ["repeat", "20", "20"])
        wait_for(lambda: '"site"' in open(d.events_path).read() and
                 sum(e.get("new_hazards", 0) for e in read_events(d.events_path)
                     if e["type"] == "site") >= 20, 60, "20 hazards aggregated")
        status = d.stop()
        events = read_events(d.events_path)
        err = d.stderr()
    finally:
        d.close()
    check(status == 0, "SIGTERM: exit 0", status, err)
    forks = [e for e in events if e["type"] == "fork"]
    check(len(forks) == 1, "the site reported in full once", len(forks), forks[-1:])
    f = forks[0]
    site = f["site"]
    check(re.match(r"^[0-9a-f]{16}$", site), "site id: 16 hex digits", site)
    check(f["pid"] == facts["pid"] and f["severity"] == "hazard", "the hazard of sites", f)
    check(f["locks"][0]["holder_tid"] == facts["worker_tid"], "its holder", f["locks"])
    check(f["exe_name"] == sites_name() and f["ns_pid"] == f["pid"], "exe_name, ns_pid", f)
    check("cgroup" in f and "container_id" in f, "container members", f)
    recs = site_records(events, site)
    final = [r for r in recs if r["reason"] == "final"]
    check(len(final) == 1, "one final aggregate", recs)
    fin = final[0]
    check(fin["hazards"] == 20, "the right count", fin)
    check(sum(r["new_hazards"] for r in recs) == 20, "each occurrence in one aggregate", recs)
    check(fin["children"]["exit"] == 20 and fin["processes"] == 1 and fin["deadlocks"] == 0,
          "children's fates, processes", fin)
    check(fin["fork_site"].startswith("fork_here+") and
          fin["lock_sites"][0].startswith("take_0+"), "what the site is", fin)
    check(fin["first_seen"] <= fin["last_seen"], "first and last seen", fin)
    # the path while the process could be asked (a loaded machine may read
    # the events after it exited: then its file name)
    check(fin["exe"] in (sites_exe(), sites_name()), "the executable", fin)
    check(err.count("new site " + site) == 1, "one log line for the new site", err)
    check(events[-1]["type"] == "summary" and events[-2]["type"] == "site_table",
          "the table and the summary at the end", events[-3:])


def test_daemon_sighup_reopens_and_rotation_loses_nothing():
    tmp = tempfile.mkdtemp(prefix="fh-rotate-")
    log = os.path.join(tmp, "forkhazard.log")
    d = None
    try:
        d = Daemon(["-v", "--comm", sites_name(), "--filter-comm", sites_name(), "--report-interval",
                    "0.2", "--log-file", log])
        bg = Sites(d, ["repeat", "40", "25"])
        try:
            os.kill(bg.pid, signal.SIGUSR1)
            wait_for(lambda: "new site" in open(log).read(), 60, "the first report")
            time.sleep(0.3)
            os.rename(d.events_path, d.events_path + ".1")
            os.rename(log, log + ".1")
            d.proc.send_signal(signal.SIGHUP)
            out, _ = bg.proc.communicate(timeout=60)
        finally:
            bg.close()
        check(bg.proc.returncode == 0, "sites ran", bg.proc.returncode)
        facts = json.loads(out.strip().splitlines()[-1])
        wait_for(lambda: os.path.exists(d.events_path) and
                 sum(e.get("new_hazards", 0) for e in
                     read_events(d.events_path + ".1", d.events_path) if e["type"] == "site")
                 >= 40, 60, "40 hazards aggregated")
        status = d.stop()
        old = read_events(d.events_path + ".1")
        new = read_events(d.events_path)
        with open(log + ".1") as f:
            old_log = f.read()
        with open(log) as f:
            new_log = f.read()
        err = d.stderr()
    finally:
        if d:
            d.close()
        shutil.rmtree(tmp, ignore_errors=True)
    check(status == 0, "exit 0", status, err)
    check(old and new, "lines before and after the rotation", len(old), len(new))
    check(old[-1]["time"] <= new[0]["time"], "the new file continues the old one",
          old[-1], new[0])
    forks = [e for e in old + new if e["type"] == "fork"]
    check(len(forks) == 1 and forks[0]["pid"] == facts["pid"], "one full report", forks)
    site = forks[0]["site"]
    recs = site_records(old + new, site)
    check(sum(r["new_hazards"] for r in recs) == 40,
          "every hazard counted once across both files", [r["new_hazards"] for r in recs])
    check(site_records(new, site)[-1]["hazards"] == 40, "final count", recs[-1])
    check("new site " + site in old_log, "the old log has the first report", old_log[-500:])
    check("site " + site in new_log, "the reopened log goes on", new_log[-500:])
    check(new[-1]["type"] == "summary", "the summary in the new file", new[-2:])


def test_daemon_sigterm_flushes_aggregates_and_metrics():
    tmp = tempfile.mkdtemp(prefix="fh-term-")
    prom = os.path.join(tmp, "forkhazard.prom")
    try:
        d = Daemon(["--comm", sites_name(), "--filter-comm", sites_name(), "--report-interval", "3600",
                    "--metrics-file", prom, "--metrics-interval", "3600"])
        run_sites(d, ["repeat", "5", "10"])
        wait_for(lambda: "new site" in d.stderr(), 60, "the first report")
        time.sleep(0.5)
        before = read_events(d.events_path)
        status = d.stop()
        events = read_events(d.events_path)
        with open(prom) as f:
            text = f.read()
        leftovers = [n for n in os.listdir(tmp) if n != "forkhazard.prom"]
        err = d.stderr()
    finally:
        d.close()
        shutil.rmtree(tmp, ignore_errors=True)
    check(status == 0, "exit 0", status, err)
    check(not [e for e in before if e["type"] == "site"], "no aggregate before SIGTERM", before)
    site = [e for e in events if e["type"] == "fork"][0]["site"]
    final = site_records(events, site)
    check(len(final) == 1 and final[0]["reason"] == "final" and final[0]["hazards"] == 5,
          "SIGTERM wrote the aggregate", final)
    check(events[-1]["type"] == "summary", "and the summary", events[-1])
    promtool_check(text)
    s = parse_prom(text)
    check(metric(s, "forkhazard_site_hazards_total", site=site) == 5, "final metrics file",
          text[-1500:])
    check(not leftovers, "no temporary file left", leftovers)


def test_daemon_site_table_bounded_under_a_flood():
    port = free_port()
    n, cap, labeled = 150, 32, 4
    d = Daemon(["--comm", sites_name(), "--filter-comm", sites_name(), "--report-interval", "3600",
                "--max-sites", str(cap), "--metrics-sites", str(labeled), "--rate-limit",
                "100000", "--site-rate-limit", "100000", "--metrics-listen",
                "127.0.0.1:%d" % port])
    try:
        run_sites(d, ["distinct", str(n), "0"])
        text = wait_for(lambda: (lambda t: t if "forkhazard_sites_created_total %d" % n in t
                                 else None)(http_get(port)[2]), 60, "%d sites created" % n)
        s = parse_prom(text)
        status = d.stop()
        events = read_events(d.events_path)
        err = d.stderr()
    finally:
        d.close()
    check(status == 0, "exit 0", status, err)
    promtool_check(text)
    check(metric(s, "forkhazard_sites") == cap, "the table stays at its bound", text[-2000:])
    check(metric(s, "forkhazard_sites_evicted_total") == n - cap, "evictions counted")
    sites = [ls for (name, ls) in s if name == "forkhazard_site_hazards_total"]
    check(len(sites) == labeled + 1, "label cardinality bounded: %d sites + other" % labeled,
          sites)
    check(metric(s, "forkhazard_site_hazards_total", site="other") == n - labeled,
          "the unlabeled sites summed in site=\"other\"")
    forks = [e for e in events if e["type"] == "fork"]
    check(len(forks) == n and len({e["site"] for e in forks}) == n,
          "each distinct site reported in full once", len(forks))
    recs = [e for e in events if e["type"] == "site"]
    evicted = [r for r in recs if r["reason"] == "evicted"]
    final = [r for r in recs if r["reason"] == "final"]
    check(len(evicted) == n - cap and len(final) == cap, "evicted sites' counts written first",
          len(evicted), len(final))
    check(sum(r["hazards"] for r in evicted + final) == n, "no occurrence lost to eviction")
    table = [e for e in events if e["type"] == "site_table"][-1]
    check(table["sites"] == cap and table["created"] == n and table["evicted"] == n - cap,
          "site_table", table)


def test_daemon_rate_limits_suppress_and_count():
    port = free_port()
    d = Daemon(["--comm", sites_name(), "--filter-comm", sites_name(), "--report-interval", "3600",
                "--rate-limit", "1", "--metrics-listen", "127.0.0.1:%d" % port])
    try:
        run_sites(d, ["distinct", "40", "0"])
        wait_for(lambda: "forkhazard_sites_created_total 40\n" in http_get(port)[2], 60,
                 "40 sites")
        check(d.stop() == 0, "exit 0", d.stderr())
        events = read_events(d.events_path)
    finally:
        d.close()
    forks = [e for e in events if e["type"] == "fork"]
    table = [e for e in events if e["type"] == "site_table"][-1]
    check(table["created"] == 40, "every site counted", table)
    # one report a second: 40 sites come faster than that
    check(len(forks) < 40 and table["suppressed"]["rate_limit"] == 40 - len(forks),
          "full reports limited, the rest counted", len(forks), table)
    sites = [e for e in events if e["type"] == "site" and e["reason"] == "final"]
    check(sum(r["hazards"] for r in sites) == 40, "suppressed reports still aggregated", sites)


def test_daemon_metrics_endpoint_and_file_parse_and_count():
    port = free_port()
    tmp = tempfile.mkdtemp(prefix="fh-metrics-")
    prom = os.path.join(tmp, "forkhazard.prom")
    # An executable whose name needs escaping everywhere: quote, backslash,
    # newline, and a byte that is not UTF-8.
    name = b'fh"q\\\n\xffx'
    exe = os.path.join(tmp.encode(), name)
    shutil.copy(prog("sites"), exe)
    try:
        d = Daemon(["--comm", name.decode("utf-8", "surrogateescape"), "--filter-exe", tmp + "/*",
                    "--report-interval", "3600", "--metrics-listen", "127.0.0.1:%d" % port,
                    "--metrics-file", prom, "--metrics-interval", "1"])
        # --filter-exe matches the path, which needs the process still there
        run_sites(d, ["--linger", "3000", "repeat", "7", "10"], exe=exe)
        status, ctype, text = wait_for(
            lambda: (lambda r: r if "forkhazard_daemon_hazards_total" in r[2] and
                     sum(v for (n, ls), v in parse_prom(r[2]).items()
                         if n == "forkhazard_site_hazards_total") >= 7 else None)(http_get(port)),
            60, "7 hazards in the metrics")
        code404 = http_get(port, "/nothing")[0]
        time.sleep(1.5)	# one more write of the file
        with open(prom) as f:
            ftext = f.read()
        check(d.stop() == 0, "exit 0", d.stderr())
        events = read_events(d.events_path)
        err = d.stderr()
    finally:
        d.close()
        shutil.rmtree(tmp, ignore_errors=True)
    check(status == 200 and ctype.startswith("text/plain; version=0.0.4"), "200, exposition type",
          status, ctype)
    check(code404 == 404, "only /metrics", code404)
    check(metric(parse_prom(text), "forkhazard_sites") == 1, "one site", text[-3000:],
          err[-2000:])
    for t in (text, ftext):
        promtool_check(t)
        s = parse_prom(t)
        site = [dict(ls) for (n, ls) in s if n == "forkhazard_site_hazards_total" and
                dict(ls)["site"] != "other"]
        check(len(site) == 1, "one labeled site", site)
        want = exe.decode("utf-8", "replace")
        check(site[0]["exe"] == want, "label value escaped and read back", site[0], want)
        check(metric(s, "forkhazard_site_hazards_total", site=site[0]["site"]) == 7,
              "per-site count")
        check(metric(s, "forkhazard_hazards_total") >= 7, "kernel's hazard counter")
        check(metric(s, "forkhazard_daemon_hazards_total") -
              metric(s, "forkhazard_filtered_total", kind="hazard") == 7,
              "hazards that passed the filters")
        check(metric(s, "forkhazard_lost_events_total") >= 0 and
              metric(s, "forkhazard_bpf_map_capacity", map="procs") > 0 and
              metric(s, "forkhazard_cpu_seconds_total", mode="user") >= 0,
              "the tool's health")
    forks = [e for e in events if e["type"] == "fork"]
    check(len(forks) == 1 and forks[0]["exe_name"] == name.decode("utf-8", "replace"),
          "exe_name escaped in JSON", forks)


def test_daemon_deadlock_reported_with_its_site():
    d = Daemon(["--comm", "scenario", "--filter-comm", "scenario", "--report-interval", "3600"])
    try:
        p = subprocess.run([prog("scenario"), "--child=lock", "hold"], capture_output=True,
                           text=True, timeout=60)
        check(p.returncode == 0, "scenario ran", p.stderr)
        facts = json.loads(p.stdout.strip().splitlines()[-1])
        wait_for(lambda: "DEADLOCK at site" in d.stderr(), 60, "the deadlock report")
        status = d.stop()
        events = read_events(d.events_path)
        err = d.stderr()
    finally:
        d.close()
    check(status == 0, "exit 0", status, err)
    # other scenarios may run on the machine: only this one's events count
    dls = [e for e in events if e["type"] == "deadlock" and e["parent_pid"] == facts["pid"]]
    check(len(dls) == 1 and dls[0]["pid"] == facts["child"], "the deadlock in full", dls)
    dl = dls[0]
    check(dl["parent_pid"] == facts["pid"] and dl["ns_pid"] == dl["pid"] and
          dl["exe_name"] == "scenario", "its members", dl)
    forks = [e for e in events if e["type"] == "fork" and e["child_pid"] == facts["child"]]
    if forks:	# the hazard was seen: the deadlock counts on its site
        check(forks[0]["site"] == dl["site"], "the fork's site is the deadlock's", forks, dl)
    rec = [r for r in site_records(events, dl["site"]) if r["reason"] == "final"]
    # (scenarios of other tests running at the same time land on this site too)
    check(rec and rec[0]["deadlocks"] >= 1 and
          rec[0]["children"]["deadlock"] == rec[0]["deadlocks"],
          "the site counts its deadlocked child", rec)
    check("DEADLOCK at site %s: child %d of %d" % (dl["site"], dl["pid"], dl["parent_pid"]) in err,
          "a log line for the journal", err)


def cgroup2_mount():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup2 " in line:
                return line.split()[4]
    return None


def test_daemon_cgroup_container_id_and_pid_namespace():
    mnt = cgroup2_mount()
    if not mnt:
        raise Skip("no cgroup2 hierarchy mounted")
    cid = "%064x" % (0x5eed << 200 | os.getpid())
    parent = os.path.join(mnt, "fh-test-%d" % os.getpid())
    cg = os.path.join(parent, "docker-%s.scope" % cid)
    os.makedirs(cg)
    try:
        d = Daemon(["--comm", sites_name(), "--filter-cgroup", "*/docker-*.scope",
                    "--report-interval", "3600"])
        try:
            # sites is PID 1 of a new PID namespace, in a Docker-like cgroup
            def host_pid(unshare_pid):
                path = "/proc/%d/task/%d/children" % (unshare_pid, unshare_pid)
                return wait_for(lambda: int((open(path).read().split() or ["0"])[0]), 10,
                                "its PID")
            facts = run_sites(d, ["repeat", "3", "10"], host_pid=host_pid,
                              wrap=["unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
                                    'echo $$ > "$0/cgroup.procs" && exec "$@"', cg])
            wait_for(lambda: "new site" in d.stderr(), 60, "the report")
            status = d.stop()
            events = read_events(d.events_path)
        finally:
            d.close()
    finally:
        for path in (cg, parent):
            for _ in range(50):
                try:
                    os.rmdir(path)
                    break
                except OSError:
                    time.sleep(0.1)
    check(status == 0, "exit 0")
    check(facts["pid"] == 1, "sites saw itself as PID 1", facts)
    forks = [e for e in events if e["type"] == "fork"]
    check(len(forks) == 1, "one report (the cgroup filter passed it)", forks)
    f = forks[0]
    check(f["cgroup"].endswith("/fh-test-%d/docker-%s.scope" % (os.getpid(), cid)),
          "the cgroup path", f["cgroup"])
    check(f["container_id"] == cid, "the container ID", f["container_id"])
    check(f["ns_pid"] == 1 and f["pid"] != 1, "PID in its namespace next to the host PID", f)
    check(f["child_ns_pid"] >= 2 and f["child_pid"] != f["child_ns_pid"], "the child's too", f)
    rec = [r for r in site_records(events, f["site"]) if r["reason"] == "final"][0]
    check(rec["container_id"] == cid, "the site names its container", rec)


def test_daemon_config_file():
    tmp = tempfile.mkdtemp(prefix="fh-conf-")
    conf = os.path.join(tmp, "forkhazard.conf")
    out = os.path.join(tmp, "events.jsonl")
    prom = os.path.join(tmp, "m.prom")
    with open(conf, "w") as f:
        f.write("# a service's configuration\n"
                "daemon = yes\n"
                "output = %s\n"
                "comm = %s\n"
                "filter_comm = \"%s\"\n"
                "\n"
                "report-interval = 3600\n"
                "metrics-file = %s\n"
                "light = no\n" % (out, sites_name(), sites_name(), prom))
    try:
        d = Daemon([], cmd=[binary(), "--config", conf, "--metrics-interval", "3600"])
        try:
            run_sites(d, ["repeat", "3", "10"])
            wait_for(lambda: "new site" in d.stderr(), 60, "the report")
            time.sleep(0.3)
            check(d.stop() == 0, "exit 0", d.stderr())
        finally:
            d.close()
        events = read_events(out)
        final = [e for e in events if e["type"] == "site" and e["reason"] == "final"]
        check(len(final) == 1 and final[0]["hazards"] == 3, "configured from the file", final)
        check(os.path.exists(prom), "metrics-file from the file")
        bad = [("bogus = 1\n", 2, "%s:1: unknown key 'bogus'" % conf),
               ("daemon = maybe\n", 2, "%s:1: 'daemon' wants yes or no" % conf),
               ("# x\nthis line\n", 2, "%s:2: expected 'key = value'" % conf),
               ("daemon = yes\nrate-limit = 0\n", 2, "invalid --rate-limit '0'"),
               ("metrics-file = /tmp/x\n", 2, "--metrics-file is a service option")]
        for text, status, msg in bad:
            with open(conf, "w") as f:
                f.write(text)
            p = subprocess.run([binary(), "--config=" + conf], capture_output=True, text=True,
                               timeout=20)
            lines = p.stderr.strip().splitlines()
            check(p.returncode == status and len(lines) == 1 and msg in lines[0],
                  "%r: one clear line, status %d" % (text, status), p.returncode, p.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def signals_held(pid):
    """Has the process blocked SIGTERM yet (forkhazard's first act)?"""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("SigBlk:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


def test_stop_at_any_moment_of_start_up():
    """A stop at any point of start-up (systemd stopping a unit that is still
    activating) ends forkhazard as any stop does: the summary (and the
    daemon's site table) written, status 0. Start-up takes a few hundred
    milliseconds (loading and attaching the programs): the first stops land
    in it."""
    during = 0
    cases = [("--daemon", signal.SIGTERM, d) for d in (0, 0.05, 0.15, 0.3, 0.6)] + \
            [("-j", signal.SIGINT, d) for d in (0, 0.1)]
    for mode, sig, delay in cases:
        tmp = tempfile.mkdtemp(prefix="fh-stop-")
        out, err = os.path.join(tmp, "events.jsonl"), os.path.join(tmp, "stderr")
        try:
            with open(err, "w") as ef:
                # reports only for a name nobody has: the machine's forks stay out
                p = subprocess.Popen([binary(), mode, "-o", out, "--filter-comm" if
                                      mode == "--daemon" else "--comm",
                                      "fhstop%05d" % (os.getpid() % 100000)],
                                     stdout=subprocess.DEVNULL, stderr=ef)
            try:
                deadline = time.time() + 10
                while not signals_held(p.pid) and p.poll() is None and time.time() < deadline:
                    time.sleep(0.001)
                time.sleep(delay)
                with open(err) as ef:
                    starting = "Tracing" not in ef.read()
                p.send_signal(sig)
                p.wait(timeout=60)
            finally:
                if p.poll() is None:
                    p.kill()
                    p.wait()
            with open(err) as ef:
                stderr = ef.read()
            check_sanitizers(stderr)
            check(p.returncode == 0, "%s, %s after %.2fs: exit 0" % (mode, sig.name, delay),
                  p.returncode, stderr)
            events = read_events(out)
            check(events and events[-1]["type"] == "summary",
                  "%s, %s after %.2fs: the summary written" % (mode, sig.name, delay), events[-3:])
            check(mode != "--daemon" or any(e["type"] == "site_table" for e in events),
                  "the daemon's final site table too", events[-3:])
            during += starting
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    check(during >= 2, "stops during start-up, before tracing began: %d" % during)


def test_daemon_survives_a_full_disk():
    """Writes fail (ENOSPC): the daemon says so, counts, goes on, and exits 0."""
    port = free_port()
    mnt = tempfile.mkdtemp(prefix="fh-full-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k,mode=0700", "fh-full", mnt],
                   check=True, timeout=20)
    try:
        d = Daemon([], cmd=[binary(), "--daemon", "-o", os.path.join(mnt, "events.jsonl"),
                            "--comm", sites_name(), "--filter-comm", sites_name(), "--report-interval",
                            "3600", "--rate-limit", "1000", "--metrics-listen",
                            "127.0.0.1:%d" % port])
        try:
            run_sites(d, ["distinct", "30", "0"])
            text = wait_for(lambda: (lambda t: t if "forkhazard_sites_created_total 30\n" in t
                                     else None)(http_get(port)[2]), 60, "30 sites")
            check(d.proc.poll() is None, "still running")
            s = parse_prom(text)
            check(metric(s, "forkhazard_output_errors_total") >= 1, "the failure counted",
                  text[-2000:])
            status = d.stop()
            err = d.stderr()
        finally:
            d.close()
    finally:
        subprocess.run(["umount", mnt], timeout=20)
        os.rmdir(mnt)
    check(status == 0, "exit 0 after write errors", status, err)
    check("cannot write the output" in err and "(retrying)" in err, "said once, clearly", err)


def test_daemon_json_lines_on_stdout():
    """The fleet's way: no -o, events on standard output for the log pipeline."""
    d = Daemon(["--comm", sites_name(), "--filter-comm", sites_name(), "--report-interval", "3600"],
               output=False)
    try:
        run_sites(d, ["repeat", "2", "10"])
        wait_for(lambda: "new site" in d.stderr(), 60, "the report")
        time.sleep(0.3)
        d.proc.send_signal(signal.SIGTERM)
        out, _ = d.proc.communicate(timeout=20)
    finally:
        d.close()
    check(d.proc.returncode == 0, "exit 0")
    events = [parse_event(l, "stdout") for l in out.splitlines()]
    check([e["type"] for e in events if e["type"] == "fork"] == ["fork"] and
          events[-1]["type"] == "summary", "JSON Lines on stdout", events[-3:])
    check(not any(b"Tracing" in l for l in out.splitlines()), "diagnostics stay on stderr")


# ---- packaging ------------------------------------------------------------------

def make_install(destdir, *extra):
    p = subprocess.run(["make", "-s", "-C", ROOT, "OUT=" + os.environ.get("FH_BUILD", "build"),
                        "install", "PREFIX=/usr", "DESTDIR=" + destdir] + list(extra),
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "make install", p.stdout[-2000:], p.stderr[-2000:])
    return p


def test_make_install_destdir_and_uninstall():
    dest = tempfile.mkdtemp(prefix="fh-install-")
    try:
        make_install(dest)
        want = ["usr/sbin/forkhazard", "usr/share/man/man8/forkhazard.8",
                "usr/share/bash-completion/completions/forkhazard",
                "usr/lib/systemd/system/forkhazard.service", "etc/forkhazard.conf",
                "etc/logrotate.d/forkhazard", "usr/share/forkhazard/prometheus/forkhazard.rules.yml",
                "usr/share/forkhazard/grafana/forkhazard.json"]
        for w in want:
            check(os.path.isfile(os.path.join(dest, w)), "installed: " + w)
        check(os.access(os.path.join(dest, want[0]), os.X_OK), "the binary is executable")
        with open(os.path.join(dest, want[3])) as f:
            unit = f.read()
        check("ExecStart=/usr/sbin/forkhazard --daemon --config=/etc/forkhazard.conf" in unit,
              "the unit's paths follow PREFIX", unit)
        conf = os.path.join(dest, "etc/forkhazard.conf")
        with open(conf, "a") as f:
            f.write("rate-limit = 3\n")
        make_install(dest)
        with open(conf) as f:
            check(f.read().endswith("rate-limit = 3\n"), "an edited configuration is kept")
        # the installed configuration parses (every key is an option)
        p = subprocess.run([os.path.join(dest, want[0]), "--config", conf, "--help"],
                           capture_output=True, text=True, timeout=20)
        check(p.returncode == 0, "the shipped configuration is valid", p.stderr)
        p = subprocess.run(["make", "-s", "-C", ROOT, "uninstall", "PREFIX=/usr", "DESTDIR=" + dest],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode == 0, "make uninstall", p.stderr)
        left = sorted(os.path.relpath(os.path.join(r, n), dest)
                      for r, _, ns in os.walk(dest) for n in ns)
        check(left == ["etc/forkhazard.conf"], "uninstall leaves only the configuration", left)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_systemd_unit_verifies():
    if not shutil.which("systemd-analyze"):
        raise TestFailure("systemd-analyze missing (Debian package systemd): make deps")
    dest = tempfile.mkdtemp(prefix="fh-unit-")
    try:
        make_install(dest)
        unit_dir = os.path.join(dest, "verify")
        os.makedirs(unit_dir)
        with open(os.path.join(dest, "usr/lib/systemd/system/forkhazard.service")) as f:
            unit = f.read()
        # verify checks that ExecStart exists: point it at the staged binary
        with open(os.path.join(unit_dir, "forkhazard.service"), "w") as f:
            f.write(unit.replace("/usr/sbin/forkhazard", dest + "/usr/sbin/forkhazard"))
        env = dict(os.environ, MANPATH=os.path.join(dest, "usr/share/man"))
        p = subprocess.run(["systemd-analyze", "verify",
                            os.path.join(unit_dir, "forkhazard.service")],
                           capture_output=True, text=True, env=env, timeout=60)
        check(p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
              "systemd-analyze verify: clean", p.returncode, p.stdout, p.stderr)
        p = subprocess.run(["systemd-analyze", "security", "--offline=true",
                            os.path.join(unit_dir, "forkhazard.service")],
                           capture_output=True, text=True, env=env, timeout=60)
        m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", p.stdout)
        check(m and float(m.group(1)) <= 5.0, "systemd-analyze security: exposure at most 5.0",
              p.stdout[-500:])
        print("    systemd-analyze security: exposure %s" % m.group(1))
        caps = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.M).group(1).split()
        check(caps == ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE", "CAP_CHECKPOINT_RESTORE",
                       "CAP_DAC_READ_SEARCH"], "exactly the capabilities proved needed", caps)
        for setting in ("NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=read-only",
                        "MemoryMax=", "CPUQuota=", "Type=notify", "WatchdogSec="):
            check(setting in unit, "unit has " + setting)
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_unit_capabilities_suffice():
    """The unit's capability set, and nothing else, starts the daemon, attaches
    per-process lock probes, and reports a symbolized hazard."""
    caps = "-all,+bpf,+perfmon,+sys_ptrace,+checkpoint_restore,+dac_read_search"
    tmp = tempfile.mkdtemp(prefix="fh-caps-")
    out = os.path.join(tmp, "events.jsonl")
    try:
        d = Daemon([], cmd=["setpriv", "--bounding-set", caps, "--inh-caps=-all",
                            "--no-new-privs", binary(), "--daemon", "--comm", sites_name(),
                            "--filter-comm", sites_name(), "--report-interval", "3600", "-o", out])
        try:
            run_sites(d, ["repeat", "3", "10"])
            wait_for(lambda: "new site" in d.stderr(), 60, "the report")
            with open("/proc/%d/status" % d.proc.pid) as f:
                capeff = [l for l in f if l.startswith("CapEff")][0].split()[1]
            check(d.stop() == 0, "exit 0", d.stderr())
        finally:
            d.close()
        events = read_events(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    f = [e for e in events if e["type"] == "fork"][0]
    check(f["locks"][0]["stack"][0]["symbol"] == "take_0", "symbolized", f["locks"][0])
    check(int(capeff, 16) & ~((1 << 39) | (1 << 38) | (1 << 19) | (1 << 40) | (1 << 2)) == 0,
          "no other capability effective", capeff)


def test_debian_package_builds_installs_removes():
    """Slow-ish: dpkg-buildpackage on a copy of the tree (measured), then
    apt install ./forkhazard_*.deb and apt purge."""
    if subprocess.run(["dpkg-query", "-W", "-f=${Status}", "forkhazard"], capture_output=True,
                      text=True).stdout.startswith("install ok"):
        raise Skip("a forkhazard package is installed on this machine: not replacing it")
    for tool in ("dpkg-buildpackage", "dh"):
        check(shutil.which(tool), tool + " installed (dpkg-dev, debhelper): make deps")
    work = tempfile.mkdtemp(prefix="fh-deb-")
    src = os.path.join(work, "forkhazard")
    try:
        shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
            ".git", "build", "build-*", "node_modules", "results", "__pycache__"))
        t0 = time.time()
        p = subprocess.run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src,
                           capture_output=True, text=True, timeout=900)
        build_s = time.time() - t0
        check(p.returncode == 0, "dpkg-buildpackage", p.stdout[-3000:], p.stderr[-3000:])
        debs = [n for n in os.listdir(work) if re.match(r"forkhazard_.*\.deb$", n)]
        check(len(debs) == 1, "one package", os.listdir(work))
        deb = os.path.join(work, debs[0])
        apt_opts = ["-o", "DPkg::Lock::Timeout=300", "-y", "-q"]
        t0 = time.time()
        p = subprocess.run(["apt-get", "install", "--no-install-recommends"] +
                           apt_opts + [deb],
                           capture_output=True, text=True, timeout=600,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        install_s = time.time() - t0
        try:
            check(p.returncode == 0, "apt install ./forkhazard_*.deb", p.stdout[-2000:],
                  p.stderr[-2000:])
            files = subprocess.run(["dpkg", "-L", "forkhazard"], capture_output=True,
                                   text=True).stdout.split()
            for f in ("/usr/sbin/forkhazard", "/lib/systemd/system/forkhazard.service",
                      "/etc/forkhazard.conf", "/usr/share/man/man8/forkhazard.8.gz",
                      "/usr/share/bash-completion/completions/forkhazard",
                      "/etc/logrotate.d/forkhazard",
                      "/usr/share/forkhazard/prometheus/forkhazard.rules.yml",
                      "/usr/share/forkhazard/grafana/forkhazard.json"):
                check(f in files, "packaged: " + f, files)
            check(os.path.islink("/etc/systemd/system/multi-user.target.wants/"
                                 "forkhazard.service"), "the service is enabled")
            v = subprocess.run(["/usr/sbin/forkhazard", "--version"], capture_output=True,
                               text=True)
            check(v.returncode == 0 and v.stdout.startswith("forkhazard "), "it runs", v)
            p = subprocess.run(["/usr/sbin/forkhazard", "--config", "/etc/forkhazard.conf",
                                "--help"], capture_output=True, text=True)
            check(p.returncode == 0, "the packaged configuration parses", p.stderr)
        finally:
            p = subprocess.run(["apt-get", "purge"] + apt_opts + ["forkhazard"],
                               capture_output=True, text=True, timeout=600,
                               env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        check(p.returncode == 0, "apt purge", p.stdout[-2000:], p.stderr[-2000:])
        for f in ("/usr/sbin/forkhazard", "/etc/forkhazard.conf",
                  "/etc/systemd/system/multi-user.target.wants/forkhazard.service",
                  "/lib/systemd/system/forkhazard.service"):
            check(not os.path.lexists(f), "removed: " + f)
        print("    dpkg-buildpackage %.1fs, apt install %.1fs" % (build_s, install_s))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_bash_completion_and_man_page():
    comp = os.path.join(ROOT, "packaging", "forkhazard.bash")
    script = ('source /usr/share/bash-completion/bash_completion; source "$0"; '
              'COMP_WORDS=(forkhazard "$1"); COMP_CWORD=1; COMP_LINE="forkhazard $1"; '
              'COMP_POINT=${#COMP_LINE}; _forkhazard forkhazard "$1" forkhazard; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    env = dict(os.environ, PATH=os.path.dirname(binary()) + ":" + os.environ["PATH"])
    for word, want in (("--metrics-l", "--metrics-listen="), ("--dae", "--daemon"),
                       ("insp", "inspect")):
        p = subprocess.run(["bash", "-c", script, comp, word], capture_output=True, text=True,
                           env=env, timeout=30)
        check(want in p.stdout.split(), "completes %s to %s" % (word, want), p.stdout, p.stderr)
    man = os.path.join(ROOT, "packaging", "forkhazard.8")
    p = subprocess.run(["groff", "-man", "-ww", "-z", man], capture_output=True, text=True,
                       timeout=30)
    check(p.returncode == 0 and not p.stderr.strip(), "man page: no groff warning", p.stderr)
    with open(man) as f:
        page = f.read().replace("\\-", "-")
    helptext = subprocess.run([binary(), "--help"], capture_output=True, text=True).stdout
    service = helptext[helptext.index("Service mode"):]
    for opt in sorted(set(re.findall(r"--[a-z][a-z-]+", service))):
        check(opt in page, "the man page documents " + opt)


# ---- fleet ------------------------------------------------------------------------

def k8s_documents():
    node = shutil.which("node")
    check(node, "node installed (Debian nodejs): make deps")
    vdir = os.path.join(ROOT, "packaging", "k8s", "validate")
    check(os.path.isdir(os.path.join(vdir, "node_modules", "kubernetes-models")),
          "kubernetes-models installed: make deps (npm ci in packaging/k8s/validate)")
    p = subprocess.run([node, "--input-type=module", "-e",
                        'import {parseAllDocuments} from "yaml"; import {readFileSync} from "fs";'
                        'console.log(JSON.stringify(parseAllDocuments(readFileSync('
                        'process.argv[1], "utf8")).map(d => d.toJS())))',
                        os.path.join(ROOT, "packaging", "k8s", "forkhazard.yaml")],
                       cwd=vdir, capture_output=True, text=True, timeout=60)
    check(p.returncode == 0, "YAML parses", p.stderr)
    return node, vdir, json.loads(p.stdout)


def test_k8s_manifest_schema_valid_and_consistent():
    node, vdir, docs = k8s_documents()
    manifest = os.path.join(ROOT, "packaging", "k8s", "forkhazard.yaml")
    p = subprocess.run([node, "validate.mjs", manifest], cwd=vdir, capture_output=True,
                       text=True, timeout=120)
    check(p.returncode == 0 and "3 valid, 0 invalid" in p.stdout,
          "schema validation (kubernetes-models)", p.stdout, p.stderr)
    # the validator does catch mistakes
    with open(manifest) as f:
        bad = f.read().replace("containerPort: 9477", 'containerPort: "9477x"')
    tmp = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    tmp.write(bad)
    tmp.close()
    try:
        p = subprocess.run([node, "validate.mjs", tmp.name], cwd=vdir, capture_output=True,
                           text=True, timeout=120)
    finally:
        os.unlink(tmp.name)
    check(p.returncode == 1 and "containerPort must be integer" in p.stdout,
          "a wrong type is caught", p.stdout)
    ds = [d for d in docs if d["kind"] == "DaemonSet"][0]
    spec = ds["spec"]["template"]["spec"]
    c = spec["containers"][0]
    check(spec["hostPID"] is True, "hostPID")
    with open(os.path.join(ROOT, "packaging", "forkhazard.service.in")) as f:
        unit_caps = re.search(r"^CapabilityBoundingSet=(.*)$", f.read(), re.M).group(1).split()
    check(c["securityContext"]["capabilities"]["add"] == [x[4:] for x in unit_caps] and
          c["securityContext"]["capabilities"]["drop"] == ["ALL"],
          "the unit's capabilities, no others", c["securityContext"])
    check(c["securityContext"]["privileged"] is False and
          c["securityContext"]["allowPrivilegeEscalation"] is False, "not privileged")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    check(mounts["/sys/kernel/btf"]["readOnly"] and mounts["/host/proc"]["readOnly"],
          "BTF and /proc mounted read-only", mounts)
    check(c["resources"]["limits"]["memory"] and c["resources"]["limits"]["cpu"],
          "resource limits", c["resources"])
    check("--metrics-listen=0.0.0.0:9477" in c["args"] and
          c["ports"][0]["containerPort"] == 9477, "the metrics endpoint, reachable in the pod",
          c["args"])
    check(not any(a.startswith(("-o", "--output")) for a in c["args"]),
          "events on stdout for the log pipeline", c["args"])
    for a in c["args"]:	# every argument is one the binary accepts
        p = subprocess.run([binary(), "--daemon", a, "--help"], capture_output=True, text=True)
        check(p.returncode == 0, "argument accepted: " + a, p.stderr)
    with open(os.path.join(ROOT, "packaging", "Containerfile")) as f:
        cf = f.read()
    check('ENTRYPOINT ["/usr/sbin/forkhazard", "--daemon"]' in cf, "the image runs the daemon")
