"""Issue 16: `forkhazard report` over recordings (no BPF, no root): made-up
JSON Lines as -j -o and the service write them (tests/jsonl_gen.py), a few
thousand events with a truncated last line, the service's aggregates
across a rotation and a restart, one site in full by the form the alert
rules print, the three formats, and bad input."""

import json
import os
import subprocess
import tempfile

import fh
import jsonl_gen
from fh import check

UNIT = True     # needs no BPF and no root: run.py --unit-only runs it too


def report(*args, stdin=None):
    p = subprocess.run([fh.binary(), "report"] + list(args), capture_output=True, text=True,
                       timeout=120, input=stdin)
    fh.check_sanitizers(p.stderr)
    return p


class Files:
    """Temporary .jsonl files, removed on exit."""

    def __init__(self):
        self.dir = tempfile.TemporaryDirectory(prefix="fh-report-")

    def write(self, name, lines, tail=""):
        path = os.path.join(self.dir.name, name)
        with open(path, "w") as f:
            f.write("".join(l + "\n" for l in lines) + tail)
        return path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.dir.cleanup()


def test_report_few_thousand_events_truncated_last_line():
    lines, facts = jsonl_gen.recording(4000, n_sites=4, deadlock_every=300)
    for i, l in enumerate(lines[:50]):      # what the generator makes is the contract's
        fh.validate_event(json.loads(l), "generated line %d" % (i + 1))
    with Files() as d:
        # the writer was killed mid-line: the last line is cut
        path = d.write("events.jsonl", lines, tail=lines[10][:333])
        p = report("--json", path)
        check(p.returncode == 0, "report exits 0", p.stderr)
        check("1 malformed or truncated line skipped (the first: line %d)" % (len(lines) + 1)
              in p.stderr, "the truncated line said on stderr", p.stderr)
        r = fh.parse_event(p.stdout, "report --json")
        check(r["records"] == len(lines) and r["malformed"] == 1, "records counted",
              r["records"], r["malformed"])
        check(r["lost"] == 3, "lost events summed", r["lost"])
        got = {s["site"]: s for s in r["sites"]}
        check(set(got) == set(facts), "every site", sorted(got), sorted(facts))
        order = [s["site"] for s in r["sites"]]
        want = sorted(facts, key=lambda k: (-facts[k]["deadlocks"], -facts[k]["hazards"], k))
        check(order == want, "ranked by deadlocks, then hazards", order, want)
        for sid, f in facts.items():
            s = got[sid]
            check(s["hazards"] == f["hazards"] and s["deadlocks"] == f["deadlocks"],
                  "site %s counts" % sid, s, f)
            check(s["processes"] == len(f["pids"]), "site %s processes" % sid, s)
            check(all(s["children"][k] == v for k, v in f["children"].items()),
                  "site %s children's fates" % sid, s["children"], f["children"])
            check(s["fork_frame"].startswith("spawn_worker_") and
                  s["lock_frame"].startswith("cache_refresh_") and s["holders"] == ["refresher"],
                  "the program's frames, not libc's", s)
        check(r["hazards"] == sum(f["hazards"] for f in facts.values()), "hazards", r)
        # the same as text, on one screen
        p = report(path)
        check(p.returncode == 0 and len(p.stdout.splitlines()) < 40, "one screen", p.stdout)
        top = want[0]
        check("1  %s" % top in p.stdout and "fork at:    spawn_worker_" in p.stdout and
              "children:" in p.stdout, "the text names the top site and its frames", p.stdout)
        check("advice:     Another thread held this lock" in p.stdout, "the recorded advice", p.stdout)


def test_report_site_in_full_as_the_alerts_say():
    lines, facts = jsonl_gen.recording(1500, n_sites=3, deadlock_every=200)
    with Files() as d:
        path = d.write("events.jsonl", lines)
        sid = max(sorted(facts), key=lambda k: facts[k]["deadlocks"])
        check(facts[sid]["deadlocks"], "a site with a deadlock", facts)
        # REPORT_COMMAND of tests/test_fleet.py: FILE, then --site ID
        p = report(path, "--site", sid)
        check(p.returncode == 0, "report FILE --site ID", p.stderr)
        check(sid in p.stdout and "the first hazard fork recorded" in p.stdout and
              "fork called from:" in p.stdout and "held by" in p.stdout and
              "the child waits in:" in p.stdout, "the site in full", p.stdout)
        others = [s for s in facts if s != sid]
        check(not any(o in p.stdout for o in others), "only that site", p.stdout)
        p = report("--json", "--site", sid, path)
        r = fh.parse_event(p.stdout, "report --json --site")
        s = r["sites"][0]
        check(len(r["sites"]) == 1 and s["fork"]["type"] == "fork" and
              s["deadlock"]["type"] == "deadlock" and s["fork"]["site"] == sid,
              "the recorded fork and deadlock, as recorded", s)
        p = report("--markdown", "--site", sid, path)
        check(p.returncode == 0 and p.stdout.startswith("# Fork hazards: site " + sid) and
              "| # | site |" in p.stdout and "### Where fork was called" in p.stdout and
              "```" in p.stdout, "an incident ticket", p.stdout)
        p = report(path, "--site", "0123456789abcdef")
        check(p.returncode == 1 and "no site 0123456789abcdef" in p.stderr, "no such site",
              p.stderr)


def test_report_service_aggregates_rotation_and_restart():
    s = jsonl_gen.Site(7)
    kids = {"exec": 5, "exit": 1, "deadlock": 0, "alive": 0}
    first = [json.dumps(s.fork_event(1, 4000, 4001)),      # the site's first, in full
             json.dumps(jsonl_gen.site_record(s, 300, "periodic", 10, 10, children=kids,
                                               processes=2))]
    # rotated: the same run goes on in the next file, then restarts
    second = [json.dumps(jsonl_gen.site_record(s, 600, "final", 25, 15, children=dict(
                  kids, exec=12), processes=3)),
              json.dumps(s.fork_event(700, 5000, 5001)),
              json.dumps(jsonl_gen.site_record(s, 900, "final", 4, 4, children=dict(
                  kids, exec=2, exit=0), processes=1))]
    with Files() as d:
        a, b = d.write("events.jsonl.1", first), d.write("events.jsonl", second)
        r = fh.parse_event(report("--json", a, b).stdout, "report --json")
        site = r["sites"][0]
        check(site["hazards"] == 29, "new_hazards summed across files and runs", site)
        check(site["children"]["exec"] == 14 and site["children"]["exit"] == 1,
              "each run's children, added", site["children"])
        check(site["fork_frame"].startswith("spawn_worker_7") and
              site["first_seen"] == jsonl_gen.ts(0), "frames and first seen", site)


def test_report_bounded_and_bad_input():
    lines, facts = jsonl_gen.recording(600, n_sites=3)
    with Files() as d:
        path = d.write("events.jsonl", lines)
        r = fh.parse_event(report("--json", "--max-sites", "2", path).stdout, "bounded")
        check(len(r["sites"]) == 2 and r["sites_dropped"] >= 1, "a cap on sites, counted", r)
        junk = d.write("junk.jsonl", ["not json", "{\"type\": \"fork\"", "[1,2]"])
        p = report(junk)
        check(p.returncode == 1 and "3 malformed" in p.stderr and
              "no record could be read" in p.stderr, "nothing readable: exit 1", p.stderr)
        p = report(os.path.join(d.dir.name, "missing.jsonl"), path)
        check(p.returncode == 0 and "cannot read" in p.stderr, "a missing file said, others read",
              p.stderr)
        p = report("-", stdin="\n".join(lines[:20]) + "\n")
        check(p.returncode == 0 and "records" in p.stdout, "standard input", p.stdout)
        for args, why in ((["--site", "xyz", path], "invalid --site"), ([], "which files"),
                          (["--top", "0", path], "invalid --top"),
                          (["--bogus", path], "unknown option")):
            p = report(*args)
            check(p.returncode == 2 and why in p.stderr and
                  p.stderr.startswith("forkhazard: report: "), "usage error: %s" % why, p.stderr)
        # hostile bytes in a recorded name never reach the terminal raw
        evil = json.loads(lines[0])
        evil["exe_name"] = evil["comm"] = "ev\u001b[31mil"
        p = report(d.write("evil.jsonl", [json.dumps(evil)]))
        check(p.returncode == 0 and "\x1b" not in p.stdout and "ev\\x1b[31mil" in p.stdout,
              "escaped for the terminal", p.stdout)
