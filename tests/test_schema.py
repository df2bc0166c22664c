"""docs/json.schema.json: a valid schema, in step with docs/json.md, strict
enough to refuse what the contract does not say, and met by what the
pipeline writes (tests/unit/test_pipeline.c: made-up records through the
event handler, correlation, the daemon and output, no BPF, no root), every
record type and every field of the schema produced at least once. The
integration tests validate every record they read as well (fh.py)."""

import copy
import json
import os
import re
import subprocess
import tempfile

import fh
from fh import check

UNIT = True     # needs no BPF and no root: run.py --unit-only runs it too

# Records the pipeline cannot make: `inspect` reads a live process
# (tests/test_inspect.py validates its records), `report` reads recordings
# (tests/test_report.py).
NOT_FROM_PIPELINE = {"inspect", "inspect_thread", "calibration", "report"}


def schema():
    with open(fh.SCHEMA) as f:
        return json.load(f)


def ref_name(node):
    """The definition a node stands for ($ref, or its one non-null oneOf)."""
    if not isinstance(node, dict):
        return None
    for alt in node.get("oneOf", []):
        if alt.get("type") != "null":
            return ref_name(alt)
    r = node.get("$ref", "")
    return r.rsplit("/", 1)[1] if r.startswith("#/$defs/") else None


def resolve(s, node):
    while isinstance(node, dict) and "$ref" in node and "properties" not in node:
        node = s["$defs"][ref_name(node)]
    return node


def properties(s, node):
    """A node's properties, with those of a $ref beside them (where)."""
    node = resolve(s, node)
    props = dict(node.get("properties", {}))
    if "$ref" in node and "properties" in node:
        props.update(properties(s, s["$defs"][ref_name(node)]))
    return props


def alternatives(s, node):
    node = resolve(s, node)
    for alt in node.get("oneOf", []):
        alt = resolve(s, alt)
        if alt.get("type") != "null":
            return alt
    return node


def walk(s, node, name, inst, seen):
    """(name, member) for each member of inst, name being its definition's
    ($defs) or its path."""
    node = alternatives(s, node)
    if isinstance(inst, dict):
        props = properties(s, node)
        for k, v in inst.items():
            seen.add((name, k))
            sub = props.get(k)
            if sub is not None:
                walk(s, sub, ref_name(sub) or "%s.%s" % (name, k), v, seen)
    elif isinstance(inst, list):
        items = node.get("items", {})
        for x in inst:
            walk(s, items, ref_name(items) or name + "[]", x, seen)


def expected(s, node, name, out, stack=()):
    """Every (name, member) the schema allows under node."""
    node = alternatives(s, node)
    if name in stack:
        return
    props = properties(s, node)
    for k, sub in props.items():
        out.add((name, k))
        expected(s, sub, ref_name(sub) or "%s.%s" % (name, k), out, stack + (name,))
    if "items" in node:
        items = node["items"]
        expected(s, items, ref_name(items) or name + "[]", out, stack + (name,))
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):	# a map: its values' members
        expected(s, extra, ref_name(extra) or name + ".*", out, stack + (name,))


def record_types(s):
    return s["properties"]["type"]["enum"]


def test_schema_is_a_valid_schema():
    v = fh.validator()
    check(v is not None, "jsonschema installed (Debian python3-jsonschema: make deps)")
    type(v).check_schema(schema())
    s = schema()
    check(sorted(record_types(s)) == sorted(
        re.search(r'"then": \{"\$ref": "#/\$defs/([a-z_]+)"\}', json.dumps(b)).group(1)
        for b in s["allOf"]), "one definition per record type")


def test_schema_refuses_what_the_contract_does_not_say():
    good = {"type": "lost", "time": "2026-11-25T18:53:37.104220Z", "events": 3}
    fh.validate_event(good)
    for bad, why in ((dict(good, bogus=1), "an unknown member"),
                     ({"type": "lost", "time": good["time"]}, "a missing member"),
                     (dict(good, events="3"), "a wrong type"),
                     (dict(good, time="2026-11-25 18:53:37"), "a time not RFC 3339"),
                     (dict(good, type="lots"), "an unknown type")):
        try:
            fh.validate_event(bad)
        except fh.TestFailure:
            continue
        check(False, "the schema refuses %s" % why, bad)
    fork = {"type": "fork", "time": good["time"], "pid": 1, "tid": 1, "comm": "x",
            "py_thread": None, "child_pid": 2, "threads": 2, "severity": "hazard", "locks": [],
            "own_locks": [], "shared_locks": [], "internal_locks": [], "other_threads": [], "py_stack": [],
            "stack": [{"addr": "0x1", "symbol": None, "offset": None, "module": None}],
            "cgroup": None, "container_id": None, "exe_name": "x", "ns_pid": 1,
            "child_ns_pid": 2}
    fh.validate_event(fork)
    for path, value, why in ((("stack", 0, "addr"), "0X1", "an address not lowercase hex"),
                             (("stack", 0, "fp"), False, "fp other than true"),
                             (("locks",), [{"addr": "0x1"}], "a lock without its members"),
                             (("py_stack",), [{"file": "a.py", "line": 0, "function": "f"}],
                              "a Python line that is not one"),
                             (("site",), "xyz", "a site id not 16 hex digits")):
        bad = copy.deepcopy(fork)
        obj = bad
        for p in path[:-1]:
            obj = obj[p]
        obj[path[-1]] = value
        try:
            fh.validate_event(bad)
        except fh.TestFailure:
            continue
        check(False, "the schema refuses %s" % why, bad)

    gov = {"type": "governor", "time": good["time"], "pid": 1, "comm": "x", "action": "downgrade",
           "budget_pct": 1.0, "hit_ns": 5000.0, "window_ns": 1000000000, "hits": 10,
           "cost_ns": 50000, "cpu_ns": 1000, "overhead_pct": 5000.0,
           "backoff_ns": 10000000000, "downgrades": 1}
    fh.validate_event(gov)
    for key, value, why in (("action", "pause", "a governor action not in the contract"),
                            ("downgrades", -1, "a negative count")):
        try:
            fh.validate_event(dict(gov, **{key: value}))
        except fh.TestFailure:
            continue
        check(False, "the schema refuses %s" % why, key, value)
    try:
        fh.validate_event(dict(fork, locks_watched=False))
    except fh.TestFailure:
        pass
    else:
        check(False, "the schema refuses locks_watched other than true")


# What json.md says about each definition: the sections that name its
# members (a fork's "site" is in the service section, the members of
# where a process runs are under fork).
DOC_SECTIONS = {
    "frame": ["## Shared objects"], "lock": ["## Shared objects"],
    "other_thread": ["### fork"],
    "frame.inline[]": ["## Shared objects"],
    "fork": ["### fork", "## Service mode"], "child": ["### child", "### fork"],
    "deadlock": ["### deadlock", "### fork", "## Service mode"], "lost": ["### lost"],
    "summary": ["### summary"], "summary.dropped": ["### summary"],
    "inspect": ["### inspect"], "inspect_thread": ["### inspect"],
    "inspect_thread.syscall": ["### inspect"], "inspect_thread.stack[]": ["### inspect"],
    "site": ["### site"], "pyframe": ["## Shared objects", "### inspect"],
    "calibration": ["### calibration"], "calibration.batches": ["### calibration"], "calibration_batch": ["### calibration"], "calibration.costs_ns": ["### calibration"],
    "site.children": ["### site"], "site_table": ["### site_table"],
    "governor": ["### governor"],
    "site_table.suppressed": ["### site_table"],
    "report": ["### report"], "report_site": ["### report"],
    "report_site.children": ["### report"],
}


def sections(doc):
    """Heading -> its text, up to the next heading of the same or a higher level."""
    out = {}
    heads = [(m.start(), m.group(1), m.group(0).strip()) for m in
             re.finditer(r"^(#+) .*$", doc, re.M)]
    for i, (start, level, head) in enumerate(heads):
        end = next((h[0] for h in heads[i + 1:] if len(h[1]) <= len(level)), len(doc))
        out[head.split(" (")[0]] = doc[start:end]
    return out


def test_schema_and_json_md_agree():
    s = schema()
    with open(os.path.join(fh.ROOT, "docs", "json.md")) as f:
        doc = sections(f.read())
    allowed = set()
    for t in record_types(s):
        expected(s, s["$defs"][t], t, allowed)
    by_def = {}
    for name, member in allowed:
        by_def.setdefault(name, set()).add(member)
    for name, members in sorted(by_def.items()):
        check(name in DOC_SECTIONS, "json.md's section for %s is known to this test" % name)
        text = "".join(doc.get(h, "") for h in DOC_SECTIONS[name])
        check(text, "json.md has the sections %s" % DOC_SECTIONS[name])
        for m in sorted(members):
            check(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(m), text),
                  "json.md documents %s's member %r (in %s)" % (name, m, DOC_SECTIONS[name]))
    # and every member json.md writes out exists in the schema
    names = {m for _, m in allowed}
    for head, text in doc.items():
        for block in re.findall(r"(?:^    .*\n)+", text, re.M):
            for key in re.findall(r'"([a-z_]+)":', block):
                check(key in names, "%s: json.md's %r is in the schema" % (head, key))


def run_pipeline(out_dir):
    exe = os.path.join(fh.ROOT, fh.BUILD, "tests", "unit", "test_pipeline")
    check(os.access(exe, os.X_OK), "%s built (make unit)" % exe)
    p = subprocess.run([exe], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, FH_PIPELINE_DIR=out_dir))
    fh.check_sanitizers(p.stderr)
    check(p.returncode == 0, "the pipeline cases pass", p.stdout, p.stderr[-2000:])
    return p


def test_pipeline_output_matches_schema():
    s = schema()
    with tempfile.TemporaryDirectory(prefix="fh-pipeline-") as d:
        run_pipeline(d)
        files = sorted(os.listdir(d))
        check(any(f.endswith(".jsonl") for f in files) and any(f.endswith(".txt") for f in files),
              "JSON and text cases written", files)
        seen, types = set(), set()
        for name in files:
            if not name.endswith(".jsonl"):
                continue
            with open(os.path.join(d, name), encoding="utf-8") as f:
                for i, line in enumerate(f):
                    ev = fh.parse_event(line, "%s:%d" % (name, i + 1))
                    types.add(ev["type"])
                    walk(s, s["$defs"][ev["type"]], ev["type"], ev, seen)
    want_types = set(record_types(s)) - NOT_FROM_PIPELINE
    check(types >= want_types, "every record type produced", sorted(want_types - types))
    allowed = set()
    for t in want_types:
        expected(s, s["$defs"][t], t, allowed)
    missing = sorted(allowed - seen)
    check(not missing, "every field of the schema produced by the pipeline", missing)
    unknown = sorted(seen - allowed)
    check(not unknown, "nothing the schema does not know", unknown)
