#!/usr/bin/env python3
"""The service end to end, on a machine with a booted systemd: a virtual
machine (QEMU) runs a Debian 12 system with systemd as PID 1 on a Debian
kernel, installs the package built from this tree with apt, and checks what
a user would: the service enabled and started by the package, its sandbox and
capabilities as the kernel sees them, hazards deduplicated in the journal and
counted in the metrics, reload (logrotate), the watchdog, stop, purge.

The development machine runs no systemd as PID 1 and no container engine;
this is how the unit is exercised for real. Everything comes from Debian's
archive: the root file system (debootstrap), the kernels (Debian's own
kernel packages, booted with their PVH entry point), QEMU. The root file
system is an initramfs: no disk image, no kernel modules needed.

    sudo tests/service/run.py [--kernel SUITE]... [--accel tcg|kvm] [--keep]

--kernel names a Debian suite whose linux-image-amd64 is booted (repeatable;
default: trixie-backports, the newest Debian kernel, and trixie, Debian 13's).
Ends with the line "N passed, M failed" over all kernels; exit 0 only when
every check passed. Caches (root file system, kernels) in
/var/tmp/forkhazard-vm, or $FH_VM_CACHE. FH_VM_INSIDE=SCRIPT runs SCRIPT in the VM
instead of tests/service/inside.sh (its "VMTEST ..." lines are shown).
"""
import argparse
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
MIRROR = os.environ.get("FH_DEBIAN_MIRROR", "http://deb.debian.org/debian")
CACHE = os.environ.get("FH_VM_CACHE", "/var/tmp/forkhazard-vm")
RELEASE = "bookworm"        # the system the package is built for and installed on
# Beyond the package's own dependencies: an init, and what the checks use.
BASE_PACKAGES = ["systemd", "systemd-sysv", "dbus", "curl", "procps", "logrotate"]
DEFAULT_KERNELS = ["trixie-backports", "trixie"]


class Failure(Exception):
    pass


def log(msg):
    print("service: " + msg, flush=True)


def run(cmd, **kw):
    kw.setdefault("check", True)
    return subprocess.run(cmd, **kw)


def need_tools():
    missing = [t for t in ("qemu-system-x86_64", "debootstrap", "cpio", "zstd",
                           "dpkg-buildpackage", "dh") if not shutil.which(t)]
    if missing:
        raise Failure("missing %s: make deps" % ", ".join(missing))


def build_deb(work):
    """dpkg-buildpackage on a copy of the tree: the package a user installs."""
    src = os.path.join(work, "forkhazard")
    shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", "build", "build-*", "node_modules", "results", "__pycache__"))
    t0 = time.time()
    p = run(["dpkg-buildpackage", "-b", "-us", "-uc"], cwd=src, check=False,
            capture_output=True, text=True)
    if p.returncode:
        raise Failure("dpkg-buildpackage failed:\n" + p.stderr[-3000:])
    debs = [n for n in os.listdir(work) if re.match(r"forkhazard_.*\.deb$", n)]
    if len(debs) != 1:
        raise Failure("expected one forkhazard_*.deb, found %s" % debs)
    log("built %s in %.0f s" % (debs[0], time.time() - t0))
    return os.path.join(work, debs[0])


def deb_depends(deb):
    """The package names the .deb depends on (first of each alternative)."""
    dep = run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True).stdout
    return sorted({alt.split("|")[0].split("(")[0].strip() for alt in dep.split(",")
                   if alt.strip()})


def rootfs_cpio(packages):
    """A Debian root file system with PACKAGES installed, as a cpio archive
    (cached by package list)."""
    key = hashlib.sha256(" ".join([RELEASE, MIRROR] + packages).encode()).hexdigest()[:16]
    out = os.path.join(CACHE, "rootfs-%s.cpio" % key)
    if os.path.exists(out):
        return out
    os.makedirs(CACHE, exist_ok=True)
    tree = tempfile.mkdtemp(prefix="rootfs-", dir=CACHE)
    try:
        t0 = time.time()
        p = run(["debootstrap", "--variant=minbase", "--include=" + ",".join(packages),
                 RELEASE, tree, MIRROR], check=False, capture_output=True, text=True)
        if p.returncode:
            raise Failure("debootstrap failed:\n" + (p.stdout + p.stderr)[-3000:])
        run(["chroot", tree, "apt-get", "clean"])
        with open(os.path.join(tree, "etc/hostname"), "w") as f:
            f.write("fhvm\n")
        log("debootstrap %s in %.0f s" % (RELEASE, time.time() - t0))
        make_cpio(tree, out + ".tmp")
        os.rename(out + ".tmp", out)
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    return out


def make_cpio(tree, out):
    files = run(["find", ".", "-mindepth", "1"], cwd=tree, capture_output=True).stdout
    with open(out, "wb") as f:
        run(["cpio", "--quiet", "-o", "-H", "newc"], cwd=tree, input=files, stdout=f)


def packages_index(suite):
    url = "%s/dists/%s/main/binary-amd64/Packages.xz" % (MIRROR, suite)
    with urllib.request.urlopen(url, timeout=60) as r:
        text = lzma.decompress(r.read()).decode("utf-8", "replace")
    index = {}
    for stanza in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", stanza, re.M))
        if "Package" in fields:
            index[fields["Package"]] = fields    # the last stanza of a name wins
    return index


def pvh_vmlinux(vmlinuz, out):
    """The uncompressed kernel, whose PVH note lets QEMU enter it directly in
    32-bit mode: no real-mode setup code, which nested virtualization and
    software emulation handle badly or slowly."""
    data = open(vmlinuz, "rb").read()
    for magic, cmd in ((b"\x28\xb5\x2f\xfd", ["zstd", "-dcq"]), (b"\xfd7zXZ\x00", ["xz", "-dcq"]),
                       (b"\x1f\x8b\x08", ["gzip", "-dcq"])):
        at = data.find(magic)
        if at < 0:
            continue
        p = subprocess.run(cmd, input=data[at:], capture_output=True)
        if p.stdout[:4] == b"\x7fELF":      # trailing bytes make the tools complain
            with open(out, "wb") as f:
                f.write(p.stdout)
            notes = run(["readelf", "-n", out], capture_output=True, text=True).stdout
            if "(0x00000012)" not in notes:      # XEN_ELFNOTE_PHYS32_ENTRY
                raise Failure("%s has no PVH entry point" % vmlinuz)
            return
    raise Failure("cannot decompress %s" % vmlinuz)


def debian_kernel(suite):
    """Debian SUITE's current linux-image-amd64: (version, path of vmlinux)."""
    index = packages_index(suite)
    meta = index.get("linux-image-amd64")
    if not meta:
        raise Failure("no linux-image-amd64 in %s" % suite)
    image = [d.split("(")[0].strip() for d in meta["Depends"].split(",")
             if d.strip().startswith("linux-image-")][0]
    # Since 7.x the image package only depends on linux-binary-VERSION, which
    # holds the kernel.
    deps = index[image].get("Depends", "")
    m = re.search(r"(linux-binary-[^ ,(]+)", deps)
    pkg = index[m.group(1)] if m else index[image]
    version = image[len("linux-image-"):]
    dest = os.path.join(CACHE, "kernel-" + version)
    vmlinux = os.path.join(dest, "vmlinux")
    if os.path.exists(vmlinux):
        return version, vmlinux
    os.makedirs(dest, exist_ok=True)
    deb = os.path.join(dest, "kernel.deb")
    t0 = time.time()
    urllib.request.urlretrieve("%s/%s" % (MIRROR, pkg["Filename"]), deb)
    x = os.path.join(dest, "x")
    run(["dpkg-deb", "-x", deb, x])
    found = [os.path.join(r, n) for r, _, ns in os.walk(x) for n in ns
             if n.startswith("vmlinuz")]
    if not found:
        raise Failure("no vmlinuz in %s" % pkg["Filename"])
    pvh_vmlinux(found[0], vmlinux + ".tmp")
    os.rename(vmlinux + ".tmp", vmlinux)
    shutil.rmtree(x)
    os.unlink(deb)
    log("kernel %s (%s) in %.0f s" % (version, suite, time.time() - t0))
    return version, vmlinux


def overlay_cpio(work, deb):
    """The test's own files, unpacked over the root file system (the kernel
    takes concatenated cpio archives)."""
    tree = os.path.join(work, "overlay")
    t = os.path.join(tree, "opt/fhtest")
    os.makedirs(t)
    shutil.copy(deb, t)
    for prog in ("build/tests/sites", "build/demo"):
        shutil.copy(os.path.join(ROOT, prog), t)
    # FH_VM_INSIDE: another script to run instead (to look into a failure)
    shutil.copy(os.environ.get("FH_VM_INSIDE", os.path.join(HERE, "inside.sh")),
                os.path.join(t, "inside.sh"))
    units = os.path.join(tree, "etc/systemd/system")
    os.makedirs(os.path.join(units, "multi-user.target.wants"))
    with open(os.path.join(units, "fh-vmtest.service"), "w") as f:
        f.write("[Unit]\nDescription=forkhazard service test\n"
                "After=multi-user.target\n\n"
                "[Service]\nType=oneshot\nExecStart=/opt/fhtest/inside.sh\n"
                "StandardOutput=tty\nStandardError=tty\nTTYPath=/dev/ttyS0\n"
                "TTYReset=no\nTTYVHangup=no\n")
    os.symlink("../fh-vmtest.service",
               os.path.join(units, "multi-user.target.wants/fh-vmtest.service"))
    # the console is the test's; nothing else to start on it
    for unit in ("serial-getty@ttyS0.service", "getty@tty1.service",
                 "apt-daily.timer", "apt-daily-upgrade.timer"):
        os.symlink("/dev/null", os.path.join(units, unit))
    out = os.path.join(work, "overlay.cpio")
    make_cpio(tree, out)
    return out


STALL_S = 240      # console silent this long: the VM is stuck (boot it again, twice at most)
REBOOTS = 2


def host_tsc_khz():
    """The host's TSC frequency, which is the guest's under TCG (its rdtsc is
    the host's), from /proc/cpuinfo; None if not said."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("cpu MHz"):
                    return int(float(line.split(":", 1)[1]) * 1000)
    except (OSError, ValueError):
        pass
    return None


def boot(work, vmlinux, initrd, accel, timeout, console_log):
    """Boot the VM, stream its console, return the VMTEST lines, whether it
    finished, whether it stalled, and how long it ran."""
    append = "console=ttyS0 rdinit=/sbin/init panic=-1 loglevel=6 systemd.show_status=1"
    khz = host_tsc_khz()
    if khz and accel == "tcg":
        # microvm has no HPET or PM timer: when the guest's PIT calibration
        # of the TSC is disturbed (a busy host), the kernel had nothing to
        # fall back on and stopped early in boot, silent. Told the frequency,
        # it calibrates nothing.
        append += " tsc_early_khz=%d" % khz
    cmd = ["qemu-system-x86_64", "-M", "microvm", "-m", "2048", "-smp", "2",
           "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio",
           "-kernel", vmlinux, "-initrd", initrd, "-append", append]
    cmd += (["-accel", "kvm", "-cpu", "host"] if accel == "kvm"
            else ["-accel", "tcg,thread=multi", "-cpu", "max"])
    lines, done, stalled = [], None, False
    t0 = time.time()
    with open(console_log, "w", errors="replace") as logf:
        q = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, errors="replace")
        try:
            import selectors
            sel = selectors.DefaultSelector()
            sel.register(q.stdout, selectors.EVENT_READ)
            while True:
                left = timeout - (time.time() - t0)
                if done is not None:
                    left = min(left, done + 30 - time.time())
                if left <= 0:
                    break
                if not sel.select(min(left, STALL_S)):
                    stalled = left > STALL_S and done is None
                    break
                line = q.stdout.readline()
                if not line:
                    break
                logf.write(line)
                logf.flush()
                s = line.rstrip("\r\n")
                i = s.find("VMTEST ")
                if i < 0:
                    continue
                s = s[i + len("VMTEST "):]
                print("    " + s, flush=True)
                lines.append(s)
                if s == "DONE" and done is None:
                    done = time.time()
        finally:
            if q.poll() is None:
                q.kill()
            q.wait()
    return lines, done is not None, stalled, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", action="append", help="Debian suite whose kernel to boot")
    ap.add_argument("--accel", choices=("tcg", "kvm"), default="tcg",
                    help="tcg (default; software emulation) or kvm")
    ap.add_argument("--timeout", type=int, default=900, help="per VM, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run.py: must run as root (debootstrap, dpkg-buildpackage)", file=sys.stderr)
        return 2
    passed = failed = 0
    work = tempfile.mkdtemp(prefix="fh-service-")
    logs = os.path.join(ROOT, "build", "service-test")
    os.makedirs(logs, exist_ok=True)
    try:
        need_tools()
        for prog in ("build/tests/sites", "build/demo"):
            if not os.path.exists(os.path.join(ROOT, prog)):
                raise Failure("%s missing: make check-service builds it" % prog)
        deb = build_deb(work)
        base = rootfs_cpio(sorted(set(BASE_PACKAGES + deb_depends(deb))))
        initrd = os.path.join(work, "initrd")
        with open(initrd, "wb") as f:
            for part in (base, overlay_cpio(work, deb)):
                with open(part, "rb") as p:
                    shutil.copyfileobj(p, f)
        for suite in args.kernel or DEFAULT_KERNELS:
            version, vmlinux = debian_kernel(suite)
            log("booting Debian %s with Linux %s (%s)" % (RELEASE, version, suite))
            console = os.path.join(logs, "console-%s.log" % suite)
            lines, done, stalled, secs = boot(work, vmlinux, initrd, args.accel, args.timeout,
                                              console)
            for again in range(REBOOTS):
                if not stalled or lines:
                    break
                # Not a result: software emulation, rarely, stops making
                # progress early in boot. Again, and said so.
                kept = "%s.stalled%d" % (console, again + 1)
                log("no console output for %d s before any check (console kept as %s);"
                    " booting again" % (STALL_S, os.path.relpath(kept, ROOT)))
                os.replace(console, kept)
                lines, done, stalled, secs = boot(work, vmlinux, initrd, args.accel,
                                                  args.timeout, console)
            p = sum(1 for s in lines if s.startswith("ok:"))
            f = sum(1 for s in lines if s.startswith("FAIL:"))
            if not done:
                f += 1
                print("    FAIL: the VM did not finish (console: %s)" % console)
            elif not p:
                f += 1
                print("    FAIL: no check ran (console: %s)" % console)
            log("Linux %s: %d passed, %d failed in %.0f s (console: %s)"
                % (version, p, f, secs, os.path.relpath(console, ROOT)))
            passed += p
            failed += f
    except Failure as e:
        print("service: " + str(e), file=sys.stderr)
        failed += 1
    finally:
        if args.keep:
            log("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
