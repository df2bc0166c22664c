"""Issue 16: forkhazard as a CI gate, end to end with real BPF: --fail-on's
exit statuses (a COMMAND's exit, -d, a signal with -p), each kind of
suppression rule on the bundled demo, malformed rules, --kill-deadlocked,
the rules -v prints, and SARIF checked by the SARIF SDK's validator and the
SARIF 2.1.0 schema (packaging/sarif/validate, installed by make deps)."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time

from fh import ROOT, BUILD, Background, Tracer, check, prog, run
import fh

DEMO = os.path.join(ROOT, BUILD, "demo")
SARIF_DIR = os.path.join(ROOT, "packaging", "sarif", "validate", "node_modules", "@microsoft",
                         "sarif-multitool-linux")
FINDINGS = 66   # --fail-exit-code's default (config.h FH_EXIT_FINDINGS)


def demo_line(pattern):
    """The line of demo/demo.c that matches pattern (the test follows the demo)."""
    with open(os.path.join(ROOT, "demo", "demo.c")) as f:
        for i, line in enumerate(f, 1):
            if re.search(pattern, line):
                return i
    raise fh.TestFailure("demo.c has no line matching " + pattern)


FORK_LINE = demo_line(r"pid_t pid = fork\(\);")
LOCK_LINE = demo_line(r"^\s+pthread_mutex_lock\(&cache_lock\);$")


def gate(args, command=None, timeout=60):
    """forkhazard ARGS -- COMMAND (the demo), JSON to a file: (status, events, stderr).
    --kill-deadlocked keeps the demo from waiting 2 s for its hung child."""
    out = tempfile.NamedTemporaryFile(prefix="fh-gate-", suffix=".jsonl", delete=False)
    out.close()
    try:
        p = run(["-j", "-o", out.name] + args + ["--"] + (command or [DEMO]), timeout=timeout)
        with open(out.name) as f:
            events = [fh.parse_event(l, "output") for l in f if l.strip()]
    finally:
        os.unlink(out.name)
    return p.returncode, events, p.stderr


def rules_file(text):
    f = tempfile.NamedTemporaryFile("w", prefix="fh-", suffix=".supp", delete=False)
    f.write(text)
    f.close()
    return f.name


def demo_site():
    status, events, err = gate(["--kill-deadlocked"])
    forks = [e for e in events if e["type"] == "fork" and e["severity"] == "hazard"]
    dls = [e for e in events if e["type"] == "deadlock"]
    check(status == 0 and len(forks) == 1 and len(dls) == 1, "the demo: a hazard, a deadlock",
          status, events, err)
    check(forks[0]["site"] == dls[0]["site"], "one site, in every record, without --daemon",
          forks[0], dls[0])
    return forks[0]["site"]


def test_fail_on_exit_statuses():
    # a hazard and a deadlock: fails, with the documented status and a closing line
    status, _, err = gate(["--fail-on=hazard", "--kill-deadlocked"])
    check(status == FINDINGS, "--fail-on=hazard: status 66", status, err)
    check("forkhazard: failing with status 66 (--fail-on=hazard): 1 hazard and 1 deadlock "
          "left, 0 suppressed by rules" in err, "one closing line says why", err)
    status, _, err = gate(["--fail-on=deadlock", "--fail-exit-code=42", "--kill-deadlocked"])
    check(status == 42, "--fail-exit-code", status, err)
    # a hazard whose child exits: no deadlock
    status, _, err = gate(["--fail-on=deadlock"], [prog("scenario"), "hold"])
    check(status == 0 and "passing (--fail-on=deadlock): 1 hazard and 0 deadlocks left" in err,
          "a hazard is not a deadlock", status, err)
    status, _, err = gate(["--fail-on=hazard"], [prog("scenario"), "hold"])
    check(status == FINDINGS, "but it is a hazard", status, err)
    status, _, err = gate(["--fail-on=none", "--kill-deadlocked"])
    check(status == 0 and "failing" not in err, "--fail-on=none: the command's status", err)
    # a command that failed by itself keeps its own status
    status, _, err = gate(["--fail-on=hazard", "--kill-deadlocked"],
                          ["sh", "-c", '"$0"; exit 3', DEMO])
    check(status == 3 and "the command failed by itself: its status 3 kept" in err,
          "the command's own failure wins", status, err)
    # nothing found: passes
    status, _, err = gate(["--fail-on=hazard"], ["true"])
    check(status == 0 and "passing (--fail-on=hazard): 0 hazards and 0 deadlocks left" in err,
          "nothing found", status, err)


def traced(args, stop):
    """forkhazard -p on a scenario that forks on a signal; stop: "duration" or a signal."""
    bg = Background([prog("scenario"), "--wait-signal", "hold"])
    try:
        t = Tracer(["-p", str(bg.pid), "--fail-on=hazard"] + args)
        facts = bg.go()
        if stop == "duration":
            return t.wait(timeout=30), facts
        time.sleep(0.3)
        return t.stop(stop), facts
    finally:
        bg.close()


def test_fail_on_with_p_at_duration_and_signal():
    r, facts = traced(["-d", "3"], "duration")
    check(r.status == FINDINGS and "failing with status 66" in r.stderr, "-d: the end of the run",
          r.status, r.stderr)
    check(len(r.of("fork", pid=facts[-1]["pid"], severity="hazard")) == 1, "the hazard", r.events)
    r, _ = traced([], signal.SIGINT)
    check(r.status == FINDINGS, "SIGINT: the end of the run", r.status, r.stderr)
    r, _ = traced(["--fail-exit-code=9"], signal.SIGTERM)
    check(r.status == 9, "SIGTERM too", r.status, r.stderr)


def test_suppressions_each_kind_of_rule():
    site = demo_site()
    cases = [
        ("any site=%s\n" % site, None),
        ("# the demo forks on purpose\nany exe=*/%s/demo\n" % os.path.basename(BUILD), None),
        ("any exe=demo fork=spawn_reporter\n", None),
        ('any fork="spawn_reporter (demo.c:%d)"\n' % FORK_LINE, None),
        ("any lock=*/demo/demo.c:%d\n" % LOCK_LINE, None),
        # the hazard accepted, the deadlock not: still fails (a deadlock is worse)
        ("hazard lock=cache_refresh\n", "deadlock"),
        # a deadlock rule on where the child waits, with the hazard's own rule
        ("hazard site=%s\ndeadlock wait=write_report\n" % site, None),
        # rules that do not match: nothing suppressed
        ("any exe=*/not-the-demo\nhazard fork=main lock=refresher_only\n", "both"),
    ]
    for text, left in cases:
        path = rules_file(text)
        try:
            status, events, err = gate(["--fail-on=hazard", "--suppressions", path,
                                        "--kill-deadlocked", "-v"])
        finally:
            os.unlink(path)
        fork = [e for e in events if e["type"] == "fork" and e["severity"] == "hazard"][0]
        dl = [e for e in events if e["type"] == "deadlock"][0]
        summary = [e for e in events if e["type"] == "summary"][0]
        if left is None:
            check(status == 0 and "passing" in err, "rule %r: the demo passes" % text, err)
            check(fork.get("suppressed") and dl.get("suppressed") and
                  summary["suppressed_by_rule"] == 2, "both findings set aside", fork, dl)
            check(fork["locks"][0]["suppressed_by"].endswith(":%d" % (text.count("\n"))) or
                  "wait=" in text, "the lock names its rule", fork["locks"][0])
        elif left == "deadlock":
            check(status == FINDINGS and "0 hazards and 1 deadlock left, 1 suppressed" in err,
                  "rule %r: the deadlock is left" % text, err)
            check(fork.get("suppressed") and not dl.get("suppressed"), "hazard only", fork, dl)
        else:
            check(status == FINDINGS and summary["suppressed_by_rule"] == 0 and
                  "suppressed_by" not in fork["locks"][0], "rule %r: matches nothing" % text,
                  fork, err)


def test_malformed_suppressions_exit_2():
    path = rules_file("# ok\nhazard site=d4494c190583640a\nhazard frok=spawn_*\n")
    try:
        p = run(["--suppressions", path, "--", "true"])
        check(p.returncode == 2, "exit 2", p.returncode, p.stderr)
        check(p.stderr.strip() == "forkhazard: %s:3: unknown key in 'frok=spawn_*' (site, exe, "
              "fork, lock or wait)" % path, "one line naming the file and line", p.stderr)
        check("Tracing" not in p.stderr, "before tracing anything", p.stderr)
    finally:
        os.unlink(path)
    p = run(["--suppressions", "/nonexistent/fork.supp", "--", "true"])
    check(p.returncode == 2 and "/nonexistent/fork.supp: cannot read the suppressions" in p.stderr,
          "a missing file", p.stderr)
    for args, why in ((["--daemon", "--fail-on=hazard"], "--fail-on is for a run that ends"),
                      (["--sarif-root", "/tmp", "--", "true"], "needs --sarif"),
                      (["--fail-on=maybe", "--", "true"], "invalid --fail-on"),
                      (["--fail-exit-code=1", "--", "true"], "invalid --fail-exit-code")):
        p = run(args)
        check(p.returncode == 2 and why in p.stderr, "usage error: " + why, p.stderr)


def test_kill_deadlocked_ends_the_child():
    # the scenario would wait 30 s for its hung child; killed, it reaps it at once
    t0 = time.time()
    status, events, err = gate(["--kill-deadlocked", "--fail-on=deadlock"],
                               [prog("scenario"), "--child=lock", "--hang-ms=30000", "hold"])
    took = time.time() - t0
    dl = [e for e in events if e["type"] == "deadlock"]
    check(status == FINDINGS and len(dl) == 1, "a deadlock, and the run fails on it", status, err)
    check("killed deadlocked child %d" % dl[0]["pid"] in err, "said", err)
    check(took < 20, "the child was killed, not waited for (%.1f s)" % took)
    child = [e for e in events if e["type"] == "child" and e["pid"] == dl[0]["pid"]]
    check(child and child[0]["outcome"] == "deadlock", "its fate", child)
    # without the option, nothing is signalled: the scenario kills its child itself
    status, events, err = gate([], [prog("scenario"), "--child=lock", "--hang-ms=1500", "hold"])
    check(status == 0 and "killed" not in err, "no signal without --kill-deadlocked", err)


def test_verbose_prints_rules_that_pass_when_pasted():
    status, _, err = gate(["--fail-on=hazard", "--kill-deadlocked", "-v"])
    check(status == FINDINGS, "fails first", err)
    rules = [l for l in err.splitlines() if re.match(r"^(any|hazard|deadlock) site=", l)]
    check(len(rules) == 1, "one ready-to-paste rule for the one site", err)
    alt = [l.split(": ", 1)[1] for l in err.splitlines() if l.startswith("# or, through rebuilds:")]
    check(alt == ["any exe=demo fork=spawn_reporter lock=cache_refresh"],
          "a rule that outlives a rebuild", err)
    for rule in rules + alt:
        path = rules_file(rule + "\n")
        try:
            status, _, err = gate(["--fail-on=hazard", "--kill-deadlocked", "-v",
                                   "--suppressions", path])
        finally:
            os.unlink(path)
        check(status == 0, "pasted, %r makes the run pass" % rule, err)
        check(re.search(r"\(suppressed by %s:1\)" % re.escape(path), err) is None,
              "JSON output: the rule is in the records, not on stderr", err)


def sarif_schema_validator():
    import jsonschema
    path = os.path.join(SARIF_DIR, "sarif-2.1.0.json")
    check(os.path.exists(path), "the SARIF schema installed: make deps "
          "(npm ci in packaging/sarif/validate)", path)
    with open(path) as f:
        schema = json.load(f)
    check("2.1.0" in schema["title"], "the SARIF 2.1.0 schema", schema["title"])
    return jsonschema.validators.validator_for(schema)(schema)


def sdk_validate(path):
    """The SARIF SDK's own validator: its errors, or None where it cannot run."""
    tool = os.path.join(SARIF_DIR, "Sarif.Multitool")
    out = path + ".validation.sarif"
    p = subprocess.run([tool, "validate", path, "--output", out, "--log", "ForceOverwrite"],
                       capture_output=True, text=True, timeout=300)
    try:
        with open(out) as f:
            results = json.load(f)["runs"][0].get("results", [])
    finally:
        if os.path.exists(out):
            os.unlink(out)
    check(p.returncode == 0, "Sarif.Multitool validate ran", p.stdout[-2000:], p.stderr[-2000:])
    return [r for r in results if r.get("level") == "error"]


def test_sarif_valid_and_places_the_demo():
    validator = sarif_schema_validator()
    sarif = tempfile.NamedTemporaryFile(prefix="fh-", suffix=".sarif", delete=False)
    sarif.close()
    try:
        status, events, err = gate(["--kill-deadlocked", "--sarif", sarif.name,
                                    "--sarif-root", ROOT])
        check(status == 0, "the run", err)
        with open(sarif.name) as f:
            log = json.load(f)
        errors = list(validator.iter_errors(log))
        check(not errors, "valid against the SARIF 2.1.0 schema",
              [("/".join(map(str, e.absolute_path)), e.message[:300]) for e in errors[:5]])
        errors = sdk_validate(sarif.name)
        check(not errors, "the SARIF SDK's validator finds no error", errors)
        site = [e for e in events if e["type"] == "fork"][0]["site"]
        run_ = log["runs"][0]
        check(run_["originalUriBaseIds"]["SRCROOT"]["uri"] == "file://%s/" % ROOT,
              "the root", run_["originalUriBaseIds"])
        results = run_["results"]
        check(len(results) == 1, "one result per site", results)
        r = results[0]
        check(r["ruleId"] == "fork-deadlock" and r["level"] == "error", "its child deadlocked", r)
        check(r["partialFingerprints"]["forkhazardSite/v1"] == site, "the site id as fingerprint",
              r["partialFingerprints"], site)
        fork, lock = (l["physicalLocation"] for l in r["locations"][:2])
        check(fork["artifactLocation"] == {"uri": "demo/demo.c", "uriBaseId": "SRCROOT"} and
              fork["region"]["startLine"] == FORK_LINE, "the fork call at demo.c:%d" % FORK_LINE,
              fork)
        check(lock["artifactLocation"]["uri"] == "demo/demo.c" and
              lock["region"]["startLine"] == LOCK_LINE, "the lock taken at demo.c:%d" % LOCK_LINE,
              lock)
        check("refresher" in r["locations"][1]["message"]["text"], "its holder", r["locations"][1])
        check(len(r["stacks"]) == 3 and len(r["relatedLocations"]) >= 5,
              "fork, lock and wait stacks", r["stacks"])
        # the validators do catch a broken log
        r["level"] = "fatal"
        check(list(validator.iter_errors(log)), "a wrong level is refused")
        # suppressed: the result stays, with its suppression
        path = rules_file("any site=%s\n" % site)
        try:
            status, _, err = gate(["--kill-deadlocked", "--sarif", sarif.name,
                                   "--suppressions", path, "--fail-on=hazard"])
        finally:
            os.unlink(path)
        with open(sarif.name) as f:
            log = json.load(f)
        check(status == 0 and not list(validator.iter_errors(log)), "valid", err)
        sup = log["runs"][0]["results"][0].get("suppressions")
        check(sup and sup[0]["kind"] == "external" and path in sup[0]["justification"],
              "a suppressed result says so", log["runs"][0]["results"][0])
        r = log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        check(r["uri"] == "file://%s/demo/demo.c" % ROOT and "uriBaseId" not in r,
              "without --sarif-root: absolute", r)
    finally:
        os.unlink(sarif.name)
