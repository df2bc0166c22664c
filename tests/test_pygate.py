"""Issue 14 with the gate of issue 16: Python frames name a Python program's
findings. A thread "holder" keeps a threading.Lock taken in hold() while the
main thread forks from fork_a() (twice), fork_b(), and starts a fork Pool
from pool_a() and pool_b() (tests/progs/py_gate_sites.py), under
forkhazard -j -- PYTHON: the same Python call site is one site, two call
sites are two (a Pool's too, whose fork is nine standard-library frames
below the user's call); SARIF places the fork and the lock at the .py
file and line, relative to --sarif-root; suppression rules match Python
frames (a rule naming hold()'s line sets the lock aside, one naming
logging's does not; fork= names the user's function)."""

import json
import os
import tempfile

from fh import ROOT, check, run
import fh
from test_gate import rules_file
from test_pyrt import interpreter

PROG = os.path.join(ROOT, "tests", "progs", "py_gate_sites.py")
PROG_DIR = os.path.dirname(PROG)
FINDINGS = 66


def traced(args, pools=False):
    """forkhazard -j ARGS -- PYTHON py_gate_sites.py: (status, facts, events, stderr)."""
    python = interpreter("311")
    out = tempfile.NamedTemporaryFile(prefix="fh-pygate-", suffix=".jsonl", delete=False)
    out.close()
    try:
        p = run(["-j", "-o", out.name] + args + ["--", python, PROG] +
                (["--pools"] if pools else []), timeout=120)
        with open(out.name) as f:
            events = [fh.parse_event(l, "output") for l in f if l.strip()]
    finally:
        os.unlink(out.name)
    facts = [json.loads(l) for l in p.stdout.splitlines() if l.startswith("{")]
    check(facts, "the program printed its facts", p.stdout, p.stderr)
    return p.returncode, facts[0], events, p.stderr


def user_frame(ev, function):
    """ev's Python frame of the program's function (None: none)."""
    for f in ev["py_stack"]:
        if f["function"] == function and f["file"].endswith("py_gate_sites.py"):
            return f
    return None


def hazards_by_call(events):
    """{call site function: [hazard fork events]}, by the program's frame."""
    out = {}
    for ev in events:
        if ev["type"] != "fork" or ev["severity"] != "hazard":
            continue
        calls = [fn for fn in ("fork_a", "fork_b", "pool_a", "pool_b") if user_frame(ev, fn)]
        check(len(calls) == 1, "each fork names its one call site in Python", ev["py_stack"])
        out.setdefault(calls[0], []).append(ev)
    return out


def holder_lock(ev, lines):
    got = [l for l in ev["locks"] if l["py_thread"] == "holder"]
    check(len(got) == 1 and got[0]["py_stack"][:1] and
          got[0]["py_stack"][0]["function"] == "hold" and
          got[0]["py_stack"][0]["line"] == lines["acquire"],
          "the holder's lock, taken in hold() at line %d" % lines["acquire"], ev["locks"])
    return got[0]


def test_python_call_sites_are_sites_and_sarif_places_them():
    sarif = tempfile.NamedTemporaryFile(prefix="fh-pygate-", suffix=".sarif", delete=False)
    sarif.close()
    try:
        status, facts, events, err = traced(["--sarif", sarif.name, "--sarif-root", PROG_DIR],
                                            pools=True)
        with open(sarif.name) as f:
            log = json.load(f)
    finally:
        os.unlink(sarif.name)
    lines = facts["lines"]
    check(status == 0, "the program ran", status, err)
    calls = hazards_by_call(events)
    check(sorted(calls) == ["fork_a", "fork_b", "pool_a", "pool_b"] and len(calls["fork_a"]) == 2,
          "every fork a hazard: fork_a twice, fork_b, each Pool's worker",
          {k: len(v) for k, v in calls.items()}, err[-2000:])
    for fn, evs in calls.items():
        for ev in evs:
            holder_lock(ev, lines)
            check(user_frame(ev, fn)["line"] == lines[fn], "%s's line" % fn, ev["py_stack"])
    # the Pool's fork: below the user's call, the standard library's frames
    check(calls["pool_a"][0]["py_stack"][0]["file"].endswith("popen_fork.py") and
          len(calls["pool_a"][0]["py_stack"]) > 4, "the Pool forks deep in multiprocessing",
          calls["pool_a"][0]["py_stack"])
    site = {fn: {ev["site"] for ev in evs} for fn, evs in calls.items()}
    check(all(len(s) == 1 for s in site.values()), "one call site, one site id", site)
    ids = [next(iter(s)) for s in site.values()]
    check(len(set(ids)) == 4, "four call sites, four site ids", site)
    # SARIF: the fork call and the lock at the Python lines
    results = {r["partialFingerprints"]["forkhazardSite/v1"]: r for r in log["runs"][0]["results"]}
    check(set(ids) <= set(results), "a result per site", sorted(results), site)
    for fn in calls:
        r = results[next(iter(site[fn]))]
        fork, lock = (l["physicalLocation"] for l in r["locations"][:2])
        check(fork["artifactLocation"] == {"uri": "py_gate_sites.py", "uriBaseId": "SRCROOT"} and
              fork["region"]["startLine"] == lines[fn],
              "%s: the fork call at py_gate_sites.py:%d" % (fn, lines[fn]), r["locations"])
        locks = [l["physicalLocation"] for l in r["locations"][1:]
                 if "physicalLocation" in l and
                 l["physicalLocation"]["artifactLocation"]["uri"] == "py_gate_sites.py"]
        check(any(l["region"]["startLine"] == lines["acquire"] for l in locks),
              "%s: the lock taken at py_gate_sites.py:%d" % (fn, lines["acquire"]),
              r["locations"])


def test_suppression_rules_match_python_frames():
    status, facts, events, err = traced(["--fail-on=hazard"])
    lines = facts["lines"]
    check(status == FINDINGS, "unsuppressed: findings fail the run", status, err[-1500:])
    # the holder's lock by its Python frame (both forms): every hazard set
    # aside; logging's frames: none; the fork_b call: its hazard only
    for text, left in (
            ('hazard lock="hold (*py_gate_sites.py:%d)"\n' % lines["acquire"], []),
            ('hazard lock=*py_gate_sites.py:%d\n' % lines["acquire"], []),
            ('hazard lock=*logging/__init__.py:*\n', ["fork_a", "fork_a", "fork_b"]),
            ('hazard fork="fork_b (py_gate_sites.py:%d)"\n' % lines["fork_b"],
             ["fork_a", "fork_a"])):
        path = rules_file(text)
        try:
            status, _, events, err = traced(["--fail-on=hazard", "--suppressions", path])
        finally:
            os.unlink(path)
        calls = hazards_by_call(events)
        kept = sorted(fn for fn, evs in calls.items() for ev in evs if not ev.get("suppressed"))
        check(kept == left, "rule %r leaves %s" % (text.strip(), left), kept, err[-1500:])
        check(status == (FINDINGS if left else 0), "rule %r: status" % text.strip(), status,
              err[-1500:])
        for fn, evs in calls.items():
            for ev in evs:
                l = holder_lock(ev, lines)
                check(bool(l.get("suppressed_by")) == (fn not in left),
                      "rule %r: suppressed_by on %s's lock" % (text.strip(), fn), l)
