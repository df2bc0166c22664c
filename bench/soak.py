#!/usr/bin/env python3
"""forkhazard soak test (make soak): SOAK_SECONDS (1800) of mixed load under
forkhazard in its default mode (whole system, adaptive), with forkhazard's RSS,
the fill of its kernel maps and its event counts sampled every few seconds.

Load, each in a loop of its own, every process bounded and killed at the end:
  fork storms with hazards (hostile storm), processes that fork while
  multithreaded again and again (lock probes attached and released: scenario
  periodic), broods of children alive at once (the children table), 2000-thread
  processes (hostile threads), children that deadlock (scenario --child=lock).

Writes bench/results/soak.csv (one row per sample) and bench/results/soak.png
(RSS, map fill, fork and loss rates over time; plain python: zlib-compressed
PNG, no plotting module), and prints a JSON summary. Fails (exit 1) when
forkhazard dies, its RSS grows by more than --rss-growth-mb after the first
tenth of the run, or the summary does not account for every fork.

    python3 bench/soak.py [--seconds N] [--interval S] [--build DIR] [--out PREFIX]
"""

import argparse
import json
import os
import re
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The bounded BPF maps whose fill is sampled (names as in bpf/fh.bpf.h; a map
# the build lacks is left out of the samples).
SAMPLED_MAPS = ("procs", "children", "stacks", "lock_owners", "seen_exes")


# ---- load ---------------------------------------------------------------------------

class Loop(threading.Thread):
    """Run a command again and again until stopped, pausing between runs."""

    def __init__(self, name, cmd, pause, timeout):
        super().__init__(daemon=True)
        self.name_, self.cmd, self.pause, self.timeout = name, cmd, pause, timeout
        self.stop = threading.Event()
        self.runs = self.failures = 0
        self.proc = None

    def run(self):
        while not self.stop.is_set():
            try:
                self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL, start_new_session=True)
                self.proc.wait(timeout=self.timeout)
                self.runs += 1
                self.failures += self.proc.returncode != 0
            except subprocess.TimeoutExpired:
                self.kill()
                self.failures += 1
            self.stop.wait(self.pause)

    def kill(self):
        p = self.proc
        if p and p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait()


# ---- sampling -----------------------------------------------------------------------

def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M)
    return int(m.group(1)) / 1024.0 if m else 0.0


def map_ids(pid):
    """name -> BPF map id, for the maps forkhazard holds."""
    ids = {}
    for fd in os.listdir("/proc/%d/fdinfo" % pid):
        try:
            with open("/proc/%d/fdinfo/%s" % (pid, fd)) as f:
                m = re.search(r"^map_id:\s*(\d+)", f.read(), re.M)
        except OSError:
            continue
        if m:
            p = subprocess.run(["bpftool", "-j", "map", "show", "id", m.group(1)],
                               capture_output=True, text=True)
            if p.returncode == 0:
                info = json.loads(p.stdout)
                ids[info.get("name", "?")] = (int(m.group(1)), info.get("max_entries", 0))
    return ids


def map_fill(map_id):
    p = subprocess.run(["bpftool", "-j", "map", "dump", "id", str(map_id)], capture_output=True,
                       text=True, timeout=60)
    if p.returncode != 0:
        return -1
    try:
        return len(json.loads(p.stdout))
    except ValueError:
        return -1


class Reader(threading.Thread):
    """Count forkhazard's JSON events as they come (a reader that keeps up)."""

    def __init__(self, stream):
        super().__init__(daemon=True)
        self.stream = stream
        self.counts = {}
        self.lost = 0
        self.summary = None
        self.bad = 0

    def run(self):
        for line in self.stream:
            try:
                ev = json.loads(line)
            except ValueError:
                self.bad += 1
                continue
            t = ev.get("type", "?")
            self.counts[t] = self.counts.get(t, 0) + 1
            if t == "lost":
                self.lost += ev["events"]
            elif t == "summary":
                self.summary = ev


# ---- PNG ----------------------------------------------------------------------------

FONT = {  # 3x5 glyphs, rows top to bottom, 3 bits each
    "0": "111101101101111", "1": "010110010010111", "2": "111001111100111",
    "3": "111001111001111", "4": "101101111001001", "5": "111100111001111",
    "6": "111100111101111", "7": "111001001001001", "8": "111101111101111",
    "9": "111101111001111", ".": "000000000000010", " ": "000000000000000",
    "/": "001001010100100", "-": "000000111000000", ":": "000010000010000",
    "A": "010101111101101", "B": "110101110101110", "C": "111100100100111",
    "D": "110101101101110", "E": "111100110100111", "F": "111100110100100",
    "H": "101101111101101", "I": "111010010010111", "K": "101101110101101",
    "L": "100100100100111", "M": "101111111101101", "N": "110101101101101",
    "O": "111101101101111", "P": "111101111100100", "R": "110101110101101",
    "S": "111100111001111", "T": "111010010010010", "U": "101101101101111",
    "W": "101101111111101", "X": "101101010101101", "Y": "101101010010010",
    "G": "111100101101111", "Z": "111001010100111", "V": "101101101101010", "(": "010100100100010", ")": "010001001001010",
}


class Canvas:
    def __init__(self, w, h):
        self.w, self.h = w, h
        self.px = bytearray(b"\xff" * (w * h * 3))

    def dot(self, x, y, c):
        if 0 <= x < self.w and 0 <= y < self.h:
            i = (y * self.w + x) * 3
            self.px[i:i + 3] = bytes(c)

    def line(self, x0, y0, x1, y1, c):
        n = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(n + 1):
            self.dot(round(x0 + (x1 - x0) * i / n), round(y0 + (y1 - y0) * i / n), c)

    def text(self, x, y, s, c, scale=2):
        for ch in s.upper():
            g = FONT.get(ch, FONT[" "])
            for r in range(5):
                for col in range(3):
                    if g[r * 3 + col] == "1":
                        for dy in range(scale):
                            for dx in range(scale):
                                self.dot(x + col * scale + dx, y + r * scale + dy, c)
            x += 4 * scale

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(self.px[y * self.w * 3:(y + 1) * self.w * 3])
                       for y in range(self.h))

        def chunk(kind, data):
            return (struct.pack(">I", len(data)) + kind + data +
                    struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
        with open(path, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.w, self.h,
                                                                      8, 2, 0, 0, 0)) +
                    chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


COLORS = [(200, 30, 30), (30, 90, 200), (30, 150, 60), (150, 60, 180), (220, 130, 0)]


def plot(path, t, panels, title):
    """panels: [(label, [(name, values)...])], one panel each, stacked."""
    W, PH, L, R, TOP = 960, 200, 90, 20, 30
    c = Canvas(W, TOP + len(panels) * (PH + 30) + 30)
    c.text(L, 8, title, (0, 0, 0))
    tmax = max(t) if t and max(t) > 0 else 1
    for k, (label, series) in enumerate(panels):
        y0 = TOP + k * (PH + 30) + 20
        vals = [v for _, vs in series for v in vs if v is not None and v >= 0]
        vmax = max(vals) * 1.1 if vals and max(vals) > 0 else 1
        c.line(L, y0, L, y0 + PH, (0, 0, 0))
        c.line(L, y0 + PH, W - R, y0 + PH, (0, 0, 0))
        for frac in (0.25, 0.5, 0.75, 1.0):
            yy = y0 + PH - int(PH * frac)
            c.line(L - 4, yy, L, yy, (0, 0, 0))
            c.text(4, yy - 5, ("%.0f" % (vmax * frac)) if vmax >= 10 else
                   ("%.1f" % (vmax * frac)), (60, 60, 60))
        c.text(L + 6, y0 - 16, label, (0, 0, 0))
        lx = W - R - 10
        for i, (name, vs) in enumerate(series):
            col = COLORS[i % len(COLORS)]
            lx -= (len(name) + 2) * 8
            c.text(lx, y0 - 16, name, col)
            prev = None
            for ti, v in zip(t, vs):
                if v is None or v < 0:
                    prev = None
                    continue
                pt = (L + int((W - R - L) * ti / tmax), y0 + PH - int(PH * v / vmax))
                if prev:
                    c.line(prev[0], prev[1], pt[0], pt[1], col)
                prev = pt
    ybot = TOP + len(panels) * (PH + 30) + 8
    for frac in (0, 0.25, 0.5, 0.75, 1.0):
        x = L + int((W - R - L) * frac)
        c.line(x, ybot - 8, x, ybot - 4, (0, 0, 0))
        c.text(x - 8, ybot, "%.0f" % (tmax * frac), (60, 60, 60))
    c.text(W - R - 100, ybot, "SECONDS", (0, 0, 0))
    c.png(path)


# ---- main ---------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 1800)))
    ap.add_argument("--interval", type=float, default=5)
    ap.add_argument("--build", default="build")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "soak"))
    ap.add_argument("--rss-growth-mb", type=float, default=24)
    args = ap.parse_args()
    b = lambda *p: os.path.join(ROOT, args.build, *p)  # noqa: E731
    os.makedirs(os.path.dirname(args.out), exist_ok=True)

    fh = subprocess.Popen([b("forkhazard"), "-j"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    reader = Reader(fh.stdout)
    reader.start()
    err_lines = []
    threading.Thread(target=lambda: err_lines.extend(fh.stderr), daemon=True).start()
    for _ in range(200):
        if any("Tracing" in l for l in err_lines) or fh.poll() is not None:
            break
        time.sleep(0.05)
    if fh.poll() is not None:
        print("forkhazard did not start:", "".join(err_lines), file=sys.stderr)
        return 1
    maps = map_ids(fh.pid)

    loops = [
        Loop("storm", [b("tests", "hostile"), "storm", "5"], 10, 120),
        Loop("periodic", [b("tests", "scenario"), "periodic", "20"], 1, 120),
        Loop("brood", [b("tests", "hostile"), "brood", "200", "1"], 2, 120),
        Loop("threads", [b("tests", "hostile"), "threads", "2000"], 10, 120),
        Loop("deadlock", [b("tests", "scenario"), "--child=lock", "--hang-ms=500", "hold"], 2, 60),
    ]
    for lp in loops:
        lp.start()

    rows = []
    t0 = time.time()
    ok = True
    try:
        while time.time() - t0 < args.seconds:
            if fh.poll() is not None:
                ok = False
                print("forkhazard died: status %s" % fh.returncode, file=sys.stderr)
                break
            row = {"t": round(time.time() - t0, 1), "rss_mb": round(rss_mb(fh.pid), 2),
                   "forks": reader.counts.get("fork", 0), "lost": reader.lost}
            for name in SAMPLED_MAPS:
                if name in maps:
                    row[name] = map_fill(maps[name][0])
            rows.append(row)
            print(json.dumps(row), flush=True)
            time.sleep(max(0.0, args.interval - (time.time() - t0 - row["t"])))
    finally:
        for lp in loops:
            lp.stop.set()
        for lp in loops:
            lp.kill()
            lp.join(timeout=130)
            lp.kill()
        if fh.poll() is None:
            fh.send_signal(signal.SIGINT)
            try:
                fh.wait(timeout=60)
            except subprocess.TimeoutExpired:
                fh.kill()
                fh.wait()
        reader.join(timeout=30)

    s = reader.summary or {}
    keys = ["t", "rss_mb", "forks", "lost"] + [k for k in SAMPLED_MAPS if k in maps]
    with open(args.out + ".csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(str(r.get(k, "")) for k in keys) + "\n")
    t = [r["t"] for r in rows]

    def rate(key):
        out = [None]
        for a, b2 in zip(rows, rows[1:]):
            dt = b2["t"] - a["t"]
            out.append((b2[key] - a[key]) / dt if dt > 0 else None)
        return out
    panels = [("FORKHAZARD RSS (MB)", [("RSS", [r["rss_mb"] for r in rows])]),
              ("BPF MAP ENTRIES", [(k.upper(), [r.get(k) for r in rows])
                                   for k in ("children", "procs", "stacks") if k in maps]),
              ("EVENTS/S", [("FORKS", rate("forks")), ("LOST", rate("lost"))])]
    plot(args.out + ".png", t, panels, "FORKHAZARD SOAK: %.0f S MIXED LOAD" % args.seconds)

    # warm: the first tenth of the run, at least its first minute (module
    # caches fill as the load's binaries and libraries are first seen)
    warm_t = max(args.seconds / 10, 60)
    warm = [r["rss_mb"] for r in rows if r["t"] <= warm_t] or [r["rss_mb"] for r in rows[:1]]
    growth = (max(r["rss_mb"] for r in rows) - max(warm)) if rows else 0
    result = {
        "seconds": round(time.time() - t0, 1), "samples": len(rows),
        "rss_mb_warm": max(warm) if rows else None,
        "rss_mb_max": max(r["rss_mb"] for r in rows) if rows else None,
        "rss_growth_mb": round(growth, 2),
        "map_max": {k: [max((r.get(k) or 0) for r in rows), maps[k][1]]
                    for k in ("procs", "children", "stacks") if k in maps and rows},
        "events": reader.counts, "unparsable_lines": reader.bad,
        "summary": s, "load_runs": {lp.name_: [lp.runs, lp.failures] for lp in loops},
        "fork_events_plus_lost_forks": reader.counts.get("fork", 0) + s.get("lost_forks", 0),
    }
    print(json.dumps(result, indent=1))
    with open(args.out + ".json", "w") as f:
        json.dump(result, f, indent=1)
    if not s:
        print("soak: no summary", file=sys.stderr)
        ok = False
    elif result["fork_events_plus_lost_forks"] != s["mt_forks"]:
        print("soak: fork events + lost forks != mt_forks", file=sys.stderr)
        ok = False
    if s and s["lost"] != reader.lost:
        print("soak: losses not all reported in-band", file=sys.stderr)
        ok = False
    if growth > args.rss_growth_mb:
        print("soak: RSS grew by %.1f MB" % growth, file=sys.stderr)
        ok = False
    if reader.bad:
        ok = False
    print("soak: %s" % ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
