"""timed: run a command (after launch's handshake), its output discarded,
and print what it cost as one JSON line: {"elapsed_ns", "cpu_ns",
"max_rss_kb", "status"}. For the benchmarks of forkhazard's own commands
(bench/run.py's `report` row)."""

import json
import resource
import subprocess
import sys
import time

t0 = time.monotonic_ns()
p = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
elapsed = time.monotonic_ns() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"elapsed_ns": elapsed, "cpu_ns": int((ru.ru_utime + ru.ru_stime) * 1e9),
                  "max_rss_kb": ru.ru_maxrss, "status": p.returncode}))
sys.exit(p.returncode)
