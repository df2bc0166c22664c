#!/usr/bin/env python3
"""forkhazard's test runner: unit test binaries (build/tests/unit/*) and the
integration tests (tests/test_*.py, functions named test_*), one line per
case, PASS/FAIL/SKIP, and a closing line "N passed, M failed"."""

import argparse
import glob
import importlib.util
import os
import re
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build", help="build directory (build-asan for ASan)")
    ap.add_argument("-k", dest="pattern", help="run only cases whose name matches this regex")
    ap.add_argument("--unit-only", action="store_true",
                    help="the unit tests, and the Python tests that need no BPF (UNIT = True)")
    ap.add_argument("--valgrind", action="store_true", help="run unit tests under valgrind")
    args = ap.parse_args()
    os.environ["FH_BUILD"] = args.build
    sys.path.insert(0, HERE)
    import fh  # noqa: E402  (reads FH_BUILD)

    pat = re.compile(args.pattern) if args.pattern else None
    passed = failed = skipped = 0
    failures = []
    t_start = time.time()

    for exe in sorted(glob.glob(os.path.join(ROOT, args.build, "tests", "unit", "*"))):
        if not os.access(exe, os.X_OK) or exe.endswith(".d"):
            continue
        name = os.path.basename(exe)
        cmd = [exe]
        if args.valgrind:
            cmd = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full"] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        cases = 0
        for line in p.stdout.splitlines():
            m = re.match(r"(PASS|FAIL|SKIP) (\S+?):?( .*|$)", line)
            if not m or (pat and not pat.search(name + "." + m.group(2))):
                continue
            cases += 1
            print("%s %s.%s%s" % (m.group(1), name, m.group(2),
                                  (":" if m.group(3) else "") + m.group(3)), flush=True)
            if m.group(1) == "PASS":
                passed += 1
            elif m.group(1) == "SKIP":
                skipped += 1
            else:
                failed += 1
                failures.append(name + "." + m.group(2))
        if p.returncode != 0 and (not pat or pat.search(name)):
            print("FAIL %s: exit status %d%s" % (name, p.returncode,
                  ("\n" + p.stderr[-2000:]) if p.stderr else ""), flush=True)
            failed += 1
            failures.append(name)
        elif cases == 0 and not pat:
            print("FAIL %s: ran no cases" % name, flush=True)
            failed += 1

    for path in sorted(glob.glob(os.path.join(HERE, "test_*.py"))):
        modname = os.path.splitext(os.path.basename(path))[0]
        spec = importlib.util.spec_from_file_location(modname, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        if args.unit_only and not getattr(mod, "UNIT", False):
            continue
        for fname in [n for n in vars(mod) if n.startswith("test_")]:
            full = "%s.%s" % (modname, fname)
            if pat and not pat.search(full):
                continue
            t0 = time.time()
            try:
                getattr(mod, fname)()
            except fh.Skip as e:
                skipped += 1
                print("SKIP %s: %s" % (full, e), flush=True)
                continue
            except Exception as e:  # noqa: BLE001 - a failing test, whatever raised
                failed += 1
                failures.append(full)
                if isinstance(e, fh.TestFailure):
                    msg = str(e)
                else:
                    msg = "".join(traceback.format_exception(type(e), e, e.__traceback__))[-3000:]
                print("FAIL %s (%.1fs): %s" % (full, time.time() - t0, msg), flush=True)
                continue
            passed += 1
            print("PASS %s (%.1fs)" % (full, time.time() - t0), flush=True)

    print("")
    if failures:
        print("failed: " + ", ".join(failures))
    print("(%d skipped, %.0fs)" % (skipped, time.time() - t_start) if skipped else
          "(%.0fs)" % (time.time() - t_start))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
