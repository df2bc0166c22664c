#!/usr/bin/env bash
# packaging/container-test.sh: build packaging/Containerfile's image with
# podman (daemonless, rootful, no Docker engine) and run it the way
# packaging/k8s/forkhazard.yaml's DaemonSet does, against a real hazard
# workload on the host (tests/progs/sites). One line per check, "ok: ..." or
# "FAIL: ...", then "N passed, M failed"; exit status 0 only if all passed.
#
#   sudo packaging/container-test.sh          # as root, from anywhere
#   KEEP=1 ...      keep the images (and podman's store) for a faster rerun
#   REFRESH=1 ...   debootstrap the base images again (else cached)
#
# No registry is needed: the base images the Containerfile names (debian:
# bookworm, debian:bookworm-slim) are made here with debootstrap from the
# Debian mirror and imported under those names, and the build never pulls
# (--pull=never). The Containerfile's apt-get steps do need the mirror.
#
# Other settings (environment):
#   FHCT_DIR        work directory: podman's store, caches, logs (/var/tmp/fhct)
#   MIRROR          Debian mirror for debootstrap (http://deb.debian.org/debian)
#   STORAGE_DRIVER  overlay, vfs, or auto (default: overlay if it works here)
#   OCI_RUNTIME     runc (default) or crun; see the note at "runtime" below
#   NETWORK         pod (default: the container has a network namespace of its
#                   own, like a pod; the metrics are fetched inside it with
#                   nsenter) or host (--network=host; port 9477 must be free)
#
# Everything podman keeps goes under FHCT_DIR (its own --root, --runroot,
# --tmpdir): the machine's default container store is not used. The host's
# build/ is used only for the workload (build/tests/sites, built if missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${FHCT_DIR:-/var/tmp/fhct}
CACHE=$WORK/cache
LOGS=$WORK/logs
KEEP=${KEEP:-0}
REFRESH=${REFRESH:-0}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
STORAGE_DRIVER=${STORAGE_DRIVER:-auto}
OCI_RUNTIME=${OCI_RUNTIME:-runc}
NETWORK=${NETWORK:-pod}
MANIFEST=$ROOT/packaging/k8s/forkhazard.yaml
CONTAINERFILE=$ROOT/packaging/Containerfile
CTR=fhct-daemon			# the DaemonSet's container
CTR_SECCOMP=fhct-seccomp	# the diagnostic run with the default seccomp profile
BUILD_STAGE=localhost/fhct-build-stage:latest

# The report goes to fd 3, the script's standard output: a trap can run
# while a command's output is redirected to a log.
exec 3>&1
pass=0
fail=0
ok()   { echo "ok: $*" >&3; pass=$((pass + 1)); }
bad()  { echo "FAIL: $*" >&3; fail=$((fail + 1)); }
info() { echo "info: $*" >&3; }
# Seconds since $1 (a $SECONDS value).
since() { echo "$((SECONDS - $1)) s"; }

[ "$(id -u)" = 0 ] || { echo "FAIL: run as root (rootful podman, BPF)"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$WORK" "$CACHE" "$LOGS"
# One run at a time: they share the store and the caches.
exec 9>"$WORK/lock"
flock -n 9 || { echo "FAIL: another container-test.sh holds $WORK/lock"; echo "0 passed, 1 failed"; exit 1; }

# ---- the tools ---------------------------------------------------------------
# command -> Debian package. runc: see "runtime" below; python3 reads the JSON;
# nsenter (util-linux) reaches the pod-like network namespace; gcc and make
# build the workload if the host's build/ lacks it.
declare -A PKG=([podman]=podman [runc]=runc [debootstrap]=debootstrap [curl]=curl
		[python3]=python3 [nsenter]=util-linux [gcc]=gcc [make]=make [tar]=tar)
[ "$OCI_RUNTIME" = crun ] && PKG[crun]=crun
missing=()
for c in "${!PKG[@]}"; do
	command -v "$c" >/dev/null || missing+=("${PKG[$c]}")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >"$LOGS/apt.log" 2>&1 || true
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$LOGS/apt.log" 2>&1 ||
		{ echo "FAIL: apt-get install ${missing[*]} (see $LOGS/apt.log)"; echo "0 passed, 1 failed"; exit 1; }
fi
PODMAN_VERSION=$(podman version --format '{{.Client.Version}}' 2>/dev/null || podman --version)

# ---- podman's settings -------------------------------------------------------
# runtime: Debian 12's default, crun 1.8.1, refuses this machine's cgroup
# layout (v1 controllers with a cgroup2 hierarchy that still has a controller,
# hugetlb, at /sys/fs/cgroup/unified): "crun: cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2", even with --cgroups=disabled.
# runc 1.1.5 handles it (and pure v1 or v2 alike).
#
# ulimits: rootful podman gives containers RLIMIT_NOFILE and RLIMIT_NPROC of
# 1048576, which needs CAP_SYS_RESOURCE when above the current hard limit;
# where that capability is not in the bounding set (this sandbox: "crun:
# setrlimit `RLIMIT_NOFILE`: Operation not permitted", runc: "error setting
# rlimit type 6") the container cannot start. So the host's own hard limits
# are passed (as a kubelet's containers inherit the runtime's); NPROC at most
# 32768, which podman 4.3 lowers its own limit to at start.
hard_nofile=$(ulimit -Hn); [ "$hard_nofile" = unlimited ] && hard_nofile=1048576
[ "$hard_nofile" -gt 1048576 ] && hard_nofile=1048576
hard_nproc=$(ulimit -Hu); [ "$hard_nproc" = unlimited ] && hard_nproc=32768
[ "$hard_nproc" -gt 32768 ] && hard_nproc=32768
ULIMITS=(--ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit "nproc=$hard_nproc:$hard_nproc")

# storage: overlay where the kernel and $WORK's file system allow it (about
# twice as fast to build), else vfs (plain copies, works anywhere). cgroupfs:
# no systemd is PID 1 here. Events to a file, not journald.
pm_array() {	# PM: the podman command for storage driver $1
	PM=(podman --root "$WORK/store-$1" --runroot "$WORK/run-$1" --tmpdir "$WORK/tmp-$1"
	    --storage-driver "$1" --cgroup-manager cgroupfs --events-backend file
	    --runtime "$OCI_RUNTIME")
}
pm_driver() { local PM; pm_array "$1"; "${PM[@]}" "${@:2}"; }
pm() { "${PM[@]}" "$@"; }	# once DRIVER is chosen

DRIVER=""
PM=()
cleaned=0
# debootstrap's target, with what it may have left mounted in it (proc, sys)
# when it was stopped: never removed across a mount.
drop_rootfs() {
	local r=$WORK/rootfs.tmp
	[ -e "$r" ] || return 0
	awk -v r="$r/" 'index($5, r) == 1 {print $5}' /proc/self/mountinfo | sort -r |
		xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf --one-file-system "$r"
}
child=""
# A long command (debootstrap, the build, the workload) runs in the background
# and is waited for, so that a signal to this script is handled at once (and
# passed on to it). An external command, not a function: $child is its PID.
run_child() {
	local rc=0
	"$@" &
	child=$!
	wait "$child" || rc=$?
	child=""
	return "$rc"
}
cleanup() {
	[ "$cleaned" = 1 ] && return 0
	cleaned=1
	if [ -n "$child" ]; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	drop_rootfs
	rm -f "$WORK/fhct-sites"
	local d
	for d in overlay vfs; do
		[ -d "$WORK/store-$d" ] || continue
		pm_driver "$d" rm -f -t 0 "$CTR" "$CTR_SECCOMP" >/dev/null 2>&1 || true
		if [ "$KEEP" = 1 ]; then
			if [ "$d" = "$DRIVER" ]; then
				info "KEEP=1: images kept: podman --root $WORK/store-$d" \
				     "--runroot $WORK/run-$d --storage-driver $d images"
			fi
		else
			# The stores are this script's own: every image in them is
			# one it made (base images, build stages, the image itself).
			pm_driver "$d" system reset --force >/dev/null 2>&1 ||
				bad "cleanup: podman system reset of $WORK/store-$d"
			rm -rf "$WORK/tmp-$d"
		fi
	done
	return 0
}
finish() {
	cleanup
	echo "$pass passed, $fail failed" >&3
	[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
	exit
}
# shellcheck disable=SC2317	# called by the trap
on_exit() {
	local rc=$?
	if [ "$cleaned" = 0 ]; then	# an unexpected error (set -e)
		bad "container-test.sh stopped unexpectedly (status $rc)"
		cleanup
		echo "$pass passed, $fail failed" >&3
		exit 1
	fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM

ok "tools: podman $PODMAN_VERSION, $($OCI_RUNTIME --version 2>/dev/null | head -1), ulimits nofile=$hard_nofile nproc=$hard_nproc"

# ---- what the DaemonSet says -------------------------------------------------
# Read from the manifest, so that this test follows it; a manifest of another
# shape fails here rather than being tested half.
IMAGE=$(sed -n 's/^ *image: *\([^ ]*\).*/\1/p' "$MANIFEST" | head -1)
mapfile -t ARGS < <(awk '/^ *args:/ {f = 1; next} f && /^ *- / {sub(/^ *- */, ""); print; next} f {exit}' "$MANIFEST")
CAPS=$(sed -n 's/^ *add: *\[\([^]]*\)\].*/\1/p' "$MANIFEST" | head -1 | tr -d '" ')
# requests/limits: cpu and memory of a section
res() { awk -v s="$1" '$1 == s":" {f = 1; next} f && $1 == "cpu:" {c = $2} f && $1 == "memory:" {m = $2}
		       f && $1 !~ /^(cpu|memory):$/ {exit} END {print c, m}' "$MANIFEST"; }
read -r LIM_CPU LIM_MEM < <(res limits)
read -r REQ_CPU REQ_MEM < <(res requests)
# Kubernetes quantities to podman's: 500m CPU -> 0.5 CPUs, 512Mi -> 512m.
cpus() { case $1 in *m) awk -v v="${1%m}" 'BEGIN {print v / 1000}';; *) echo "$1";; esac; }
millicpu() { case $1 in *m) echo "${1%m}";; *) echo "$(( $1 * 1000 ))";; esac; }
mem() { case $1 in *Ki) echo "${1%Ki}k";; *Mi) echo "${1%Mi}m";; *Gi) echo "${1%Gi}g";; *) echo "$1";; esac; }
PORT=$(printf '%s\n' "${ARGS[@]}" | sed -n 's/^--metrics-listen=.*:\([0-9]*\)$/\1/p')
shape=""
for want in 'hostPID: true' 'privileged: false' 'allowPrivilegeEscalation: false' \
	    'readOnlyRootFilesystem: true' 'runAsUser: 0' 'drop: \["ALL"\]' 'type: Unconfined' \
	    'mountPath: /sys/kernel/btf' 'mountPath: /host/proc' 'path: /sys/kernel/btf' 'path: /proc$'; do
	grep -qE "^ *$want" "$MANIFEST" || shape="$shape [$want]"
done
if [ -n "$shape" ] || [ -z "$IMAGE" ] || [ ${#ARGS[@]} = 0 ] || [ -z "$CAPS" ] || [ -z "$PORT" ] ||
   [ -z "$LIM_CPU" ] || [ -z "$LIM_MEM" ] || [ -z "$REQ_CPU" ] || [ -z "$REQ_MEM" ]; then
	bad "the manifest is not of the shape this script knows (missing:$shape image=$IMAGE caps=$CAPS" \
	    "port=$PORT limits=$LIM_CPU/$LIM_MEM requests=$REQ_CPU/$REQ_MEM): update container-test.sh"
	finish
fi
ok "manifest: image $IMAGE, args ${ARGS[*]}, caps $CAPS, limits $LIM_CPU/$LIM_MEM"

# The DaemonSet as podman options:
#   hostPID: true                     --pid=host
#   runAsUser: 0                      --user 0
#   capabilities drop ALL, add ...    --cap-drop=all --cap-add=...
#   allowPrivilegeEscalation: false   --security-opt no-new-privileges
#   seccompProfile Unconfined         --security-opt seccomp=unconfined
#   readOnlyRootFilesystem: true      --read-only, and no tmpfs podman would add
#                                     (--read-only-tmpfs=false): none in a pod
#   resources limits / requests       --cpus, --memory / --cpu-shares (as the
#                                     kubelet computes them), --memory-reservation
#   volumes (hostPath, readOnly)      -v /sys/kernel/btf:/sys/kernel/btf:ro
#                                     -v /proc:/host/proc:ro
#   a pod's own network namespace     --network=none (loopback only; NETWORK=host
#                                     for --network=host)
shares=$(( $(millicpu "$REQ_CPU") * 1024 / 1000 )); [ "$shares" -lt 2 ] && shares=2
if [ "$NETWORK" = host ]; then NET=(--network=host); else NET=(--network=none); fi
RUN_OPTS=(--pull=never "${ULIMITS[@]}" --pid=host "${NET[@]}" --user 0
	  --cap-drop=all --cap-add="$CAPS" --security-opt no-new-privileges
	  --read-only --read-only-tmpfs=false
	  --cpus="$(cpus "$LIM_CPU")" --memory="$(mem "$LIM_MEM")"
	  --cpu-shares="$shares" --memory-reservation="$(mem "$REQ_MEM")"
	  -v /sys/kernel/btf:/sys/kernel/btf:ro -v /proc:/host/proc:ro)

# ---- base images -------------------------------------------------------------
# debian:bookworm as the official image is: minbase, the mirror's bookworm,
# bookworm-updates and bookworm-security in deb822 form, no package lists or
# .debs left. bookworm-slim: the same less man pages, info, locales and
# lintian overrides, with the slim image's dpkg excludes so they stay out.
t=$SECONDS
if [ "$REFRESH" = 1 ] || [ ! -s "$CACHE/bookworm.tar" ] || [ ! -s "$CACHE/bookworm-slim.tar" ]; then
	rootfs=$WORK/rootfs.tmp
	drop_rootfs
	if ! run_child debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >"$LOGS/debootstrap.log" 2>&1; then
		bad "debootstrap bookworm from $MIRROR: $(tail -1 "$LOGS/debootstrap.log") (see $LOGS/debootstrap.log)"
		finish
	fi
	rm -f "$rootfs/etc/apt/sources.list"
	cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<-EOF
	Types: deb
	URIs: $MIRROR
	Suites: bookworm bookworm-updates
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

	Types: deb
	URIs: ${MIRROR%/debian}/debian-security
	Suites: bookworm-security
	Components: main
	Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
	EOF
	rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
	mkdir -p "$rootfs/var/lib/apt/lists/partial"
	tar -C "$rootfs" --numeric-owner -cf "$CACHE/bookworm.tar.tmp" .
	mkdir -p "$rootfs/etc/dpkg/dpkg.cfg.d"
	cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<-'EOF'
	# This is the "slim" variant of the Debian base image.
	path-exclude /usr/share/doc/*
	path-include /usr/share/doc/*/copyright
	path-exclude /usr/share/groff/*
	path-exclude /usr/share/info/*
	path-exclude /usr/share/linda/*
	path-exclude /usr/share/lintian/overrides/*
	path-exclude /usr/share/locale/*
	path-exclude /usr/share/man/*
	EOF
	tar -C "$rootfs" --numeric-owner --exclude='./usr/share/man/*' --exclude='./usr/share/info/*' \
	    --exclude='./usr/share/locale/*' --exclude='./usr/share/groff/*' \
	    --exclude='./usr/share/lintian/overrides/*' -cf "$CACHE/bookworm-slim.tar.tmp" .
	mv "$CACHE/bookworm.tar.tmp" "$CACHE/bookworm.tar"
	mv "$CACHE/bookworm-slim.tar.tmp" "$CACHE/bookworm-slim.tar"
	drop_rootfs
	how="debootstrap from $MIRROR"
else
	how="cached in $CACHE"
fi

# The store: overlay if a container runs on it, else vfs.
import_bases() {
	local d=$1 tag stamp
	for tag in bookworm bookworm-slim; do
		# Imported again only when the tar is newer: a store kept by KEEP=1
		# keeps the same base image IDs, so the build's layer cache holds.
		stamp=$WORK/store-$d/fhct-imported-$tag
		if [ -e "$stamp" ] && [ "$stamp" -nt "$CACHE/$tag.tar" ] &&
		   pm_driver "$d" image exists "docker.io/library/debian:$tag"; then
			continue
		fi
		pm_driver "$d" import --change 'CMD ["bash"]' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			"$CACHE/$tag.tar" "docker.io/library/debian:$tag" >>"$LOGS/import.log" 2>&1 || return 1
		touch "$stamp"
	done
	pm_driver "$d" run --rm --pull=never "${ULIMITS[@]}" --network=none \
		docker.io/library/debian:bookworm true >>"$LOGS/import.log" 2>&1
}
: >"$LOGS/import.log"
case $STORAGE_DRIVER in
	auto) drivers=(overlay vfs) ;;
	*) drivers=("$STORAGE_DRIVER") ;;
esac
for d in "${drivers[@]}"; do
	pm_driver "$d" rm -f -t 0 "$CTR" "$CTR_SECCOMP" >/dev/null 2>&1 || true	# an interrupted run's
	if import_bases "$d"; then
		DRIVER=$d
		break
	fi
	echo "(no container runs with $d storage and $OCI_RUNTIME: $(tail -1 "$LOGS/import.log"))" >&2
	pm_driver "$d" system reset --force >/dev/null 2>&1 || true
done
if [ -z "$DRIVER" ]; then
	bad "no storage driver of ${drivers[*]} runs a container: $(tail -1 "$LOGS/import.log") (see $LOGS/import.log)"
	finish
fi
pm_array "$DRIVER"
ok "base images debian:bookworm, debian:bookworm-slim ($how) in the store, a container runs ($DRIVER, $OCI_RUNTIME; $(since "$t"))"

# ---- build -------------------------------------------------------------------
# As documented in the Containerfile (the context is the repository), with no
# pull. --network=host: the apt-get steps reach the mirror without a bridge.
t=$SECONDS
if run_child "${PM[@]}" build --pull=never --network=host "${ULIMITS[@]}" -f "$CONTAINERFILE" -t "localhost/$IMAGE" \
	"$ROOT" >"$LOGS/build.log" 2>&1; then
	ok "podman build -f packaging/Containerfile -t $IMAGE . ($(since "$t"); log $LOGS/build.log)"
else
	bad "podman build: $(grep -m1 -iE 'error' "$LOGS/build.log" || tail -1 "$LOGS/build.log") (see $LOGS/build.log)"
	finish
fi

# The build context: .dockerignore keeps the host's build outputs, .git and
# node_modules out of COPY . . (the build stage, from the layer cache).
if pm build --pull=never --network=host "${ULIMITS[@]}" --target build -f "$CONTAINERFILE" \
	-t "$BUILD_STAGE" "$ROOT" >"$LOGS/build-stage.log" 2>&1 &&
   pm run --rm --pull=never "${ULIMITS[@]}" --network=none "$BUILD_STAGE" sh -c \
	'test -f /src/Makefile && test ! -e /src/.git && test ! -e /src/build-asan &&
	 test ! -e /src/packaging/k8s/validate/node_modules' >>"$LOGS/build-stage.log" 2>&1; then
	ok "build context: sources copied, no .git, no host build-asan/, no node_modules (.dockerignore)"
else
	bad "build context: .git, build-asan/ or node_modules copied into /src (see $LOGS/build-stage.log)"
fi

# ---- the image ---------------------------------------------------------------
version=$(sed -n 's/^VERSION[[:space:]]*:=[[:space:]]*//p' "$ROOT/Makefile")
cfg=$(pm image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{json .Config.ExposedPorts}}' \
	"localhost/$IMAGE" 2>&1 || true)
if [ "$cfg" = '["/usr/sbin/forkhazard","--daemon"] ["--metrics-listen=0.0.0.0:9477"] {"9477/tcp":{}}' ]; then
	ok "image config: entrypoint forkhazard --daemon, cmd --metrics-listen=0.0.0.0:9477, port 9477"
else
	bad "image config: $cfg"
fi
out=$(pm run --rm --pull=never "${ULIMITS[@]}" --network=none --entrypoint /bin/sh "localhost/$IMAGE" -c \
	'ldd /usr/sbin/forkhazard | grep "not found"; /usr/sbin/forkhazard --version' 2>&1 || true)
size=$(pm image inspect --format '{{.Size}}' "localhost/$IMAGE" 2>/dev/null || echo 0)
if [ "$out" = "forkhazard $version" ]; then
	ok "image runs forkhazard $version, all shared libraries found ($((size / 1000000)) MB)"
else
	bad "image: forkhazard --version / ldd: $out"
fi

# ---- the daemon, as the DaemonSet runs it -----------------------------------
if [ "$NETWORK" = host ] && curl -s -m 2 -o /dev/null "http://127.0.0.1:$PORT/"; then
	bad "NETWORK=host: port $PORT is already in use on this host"
	finish
fi
t=$SECONDS
if ! pm run -d --name "$CTR" "${RUN_OPTS[@]}" --security-opt seccomp=unconfined "$IMAGE" "${ARGS[@]}" \
	>"$LOGS/run.log" 2>&1; then
	bad "podman run (the DaemonSet's settings): $(tail -1 "$LOGS/run.log")"
	finish
fi
logs() { pm logs "$CTR" >"$LOGS/daemon.out" 2>"$LOGS/daemon.err" || true; }
up=0
for _ in $(seq 60); do
	logs
	if grep -q '^Tracing fork hazards' "$LOGS/daemon.err"; then up=1; break; fi
	[ "$(pm inspect -f '{{.State.Running}}' "$CTR" 2>/dev/null)" = true ] || break
	sleep 0.5
done
state=$(pm inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$CTR" 2>/dev/null || echo gone)
if [ "$up" = 1 ] && [ "${state%% *}" = running ]; then
	ok "daemon container running with exactly the manifest's capabilities, tracing ($(since "$t"))"
else
	bad "daemon did not start ($state): $(tail -3 "$LOGS/daemon.err" | tr '\n' ' ')"
	finish
fi
cpid=$(pm inspect -f '{{.State.Pid}}' "$CTR")

# Its capabilities, seen by the host: the bounding set is the manifest's list
# and nothing else, no new privileges; and forkhazard has given up CAP_BPF and
# CAP_PERFMON itself once attached.
CAPNAMES=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
	  LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER
	  SYS_MODULE SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE
	  SYS_RESOURCE SYS_TIME SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP
	  MAC_OVERRIDE MAC_ADMIN SYSLOG WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF
	  CHECKPOINT_RESTORE)
decode() {	# hex capability set -> sorted names, comma-separated
	local v=$((16#$1)) i names=()
	for i in "${!CAPNAMES[@]}"; do
		(( (v >> i) & 1 )) && names+=("${CAPNAMES[$i]}")
	done
	printf '%s\n' "${names[@]}" | sort | paste -sd, -
}
bnd=$(decode "$(awk '/^CapBnd:/ {print $2}' "/proc/$cpid/status")")
eff=$(decode "$(awk '/^CapEff:/ {print $2}' "/proc/$cpid/status")")
nnp=$(awk '/^NoNewPrivs:/ {print $2}' "/proc/$cpid/status")
want=$(tr ',' '\n' <<<"$CAPS" | sort | paste -sd, -)
if [ "$bnd" = "$want" ] && [ "$nnp" = 1 ]; then
	ok "capability bounding set is the manifest's ($bnd), no_new_privs set"
else
	bad "capabilities: bounding set $bnd (want $want), NoNewPrivs $nnp"
fi
if [ -n "$eff" ] && ! grep -qE '(^|,)(BPF|PERFMON)(,|$)' <<<"$eff"; then
	ok "forkhazard dropped CAP_BPF and CAP_PERFMON once attached (effective: $eff)"
else
	bad "effective capabilities after attaching: $eff"
fi

# hostPID, the mounts, the read-only root file system, the cgroup limits.
ex=$(pm exec "$CTR" sh -c 'cat /proc/1/comm; cat /host/proc/1/comm; test -r /sys/kernel/btf/vmlinux && echo btf;
	grep -E " /(host/proc|sys/kernel/btf) " /proc/self/mountinfo | cut -d" " -f5,6;
	touch /fhct-rw 2>/dev/null && echo rootfs-writable || echo rootfs-ro' 2>&1 || true)
host1=$(cat /proc/1/comm)
if [ "$(sed -n 1p <<<"$ex")" = "$host1" ] && [ "$(sed -n 2p <<<"$ex")" = "$host1" ] &&
   grep -qx btf <<<"$ex" && grep -qE '^/host/proc ro(,|$)' <<<"$ex" &&
   grep -qE '^/sys/kernel/btf ro(,|$)' <<<"$ex" && grep -qx rootfs-ro <<<"$ex"; then
	ok "hostPID (/proc/1 is the host's $host1), /host/proc and /sys/kernel/btf read-only, root file system read-only"
else
	bad "container view: $(tr '\n' ' ' <<<"$ex")"
fi
cg_mem=$(sed -n 's/^[0-9]*:memory://p' "/proc/$cpid/cgroup")
lim=$(cat "/sys/fs/cgroup/memory$cg_mem/memory.limit_in_bytes" 2>/dev/null ||
      cat "/sys/fs/cgroup/unified$(sed -n 's/^0:://p' "/proc/$cpid/cgroup")/memory.max" 2>/dev/null ||
      cat "/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$cpid/cgroup")/memory.max" 2>/dev/null || echo "?")
use=$(cat "/sys/fs/cgroup/memory$cg_mem/memory.usage_in_bytes" 2>/dev/null || echo "?")
info "container cgroup: memory limit $lim bytes, in use $use bytes (BPF maps are charged there)"

# The metrics endpoint, as the liveness and readiness probes ask for it: in
# the container's network namespace (a pod's own), or the host's.
metrics() {
	if [ "$NETWORK" = host ]; then
		curl -s -m 5 "http://127.0.0.1:$PORT/metrics"
	else
		nsenter --net="/proc/$cpid/ns/net" curl -s -m 5 "http://127.0.0.1:$PORT/metrics"
	fi
}
text=""
for _ in $(seq 40); do
	text=$(metrics || true)
	grep -q '^forkhazard_build_info' <<<"$text" && break
	sleep 0.5
done
if grep -q "^forkhazard_build_info{version=\"$version\"} 1" <<<"$text"; then
	ok "curl -s 127.0.0.1:$PORT/metrics ($NETWORK network): $(grep -c '^forkhazard_' <<<"$text") forkhazard_* samples"
else
	bad "metrics endpoint on port $PORT: $(head -c 300 <<<"$text")"
fi

# ---- a hazard workload on the host -------------------------------------------
# sites repeat 5 50: forks 5 times, 50 ms apart, while its worker thread holds
# a mutex. Adaptive mode: the first multithreaded fork turns the lock probes
# on, the later ones report the lock. (sites first waits up to 10 s for lock
# probes that adaptive mode places only after that fork.) A copy under a name
# of its own: other runs' tracers on this machine look for "sites".
[ -x "$ROOT/build/tests/sites" ] || make -C "$ROOT" build/tests/sites >"$LOGS/make-sites.log" 2>&1 ||
	{ bad "make build/tests/sites (see $LOGS/make-sites.log)"; finish; }
cp "$ROOT/build/tests/sites" "$WORK/fhct-sites"
t=$SECONDS
if run_child timeout 60 "$WORK/fhct-sites" repeat 5 50 >"$LOGS/workload.out" 2>&1 &&
   facts=$(grep -m1 '^{"pid"' "$LOGS/workload.out") &&
   python3 -c 'import json,sys; f = json.loads(sys.argv[1]); sys.exit(f["forks"] != 5)' "$facts"; then
	ok "workload fhct-sites repeat 5 50 on the host: $facts ($(since "$t"))"
else
	bad "workload: $(cat "$LOGS/workload.out")"
	finish
fi

# Its events on the container's standard output (what kubectl logs shows).
check_events() {
	python3 - "$LOGS/daemon.out" "$facts" <<-'EOF'
	import json, sys
	lines = [l for l in open(sys.argv[1]).read().splitlines() if l.strip()]
	facts = json.loads(sys.argv[2])
	try:
	    events = [json.loads(l) for l in lines]
	except ValueError as e:
	    print("stdout has a line that is not JSON: %s" % e); sys.exit(1)
	forks = [e for e in events if e.get("type") == "fork" and e.get("pid") == facts["pid"]]
	if not forks:
	    print("no fork event for PID %d yet (%d lines)" % (facts["pid"], len(lines))); sys.exit(2)
	f = forks[0]
	locks = [l for l in f.get("locks") or [] if l.get("holder_tid") == facts["worker_tid"]]
	problems = []
	if f.get("severity") != "hazard": problems.append("severity %s" % f.get("severity"))
	if not locks: problems.append("no lock held by the worker TID %d: %s" % (facts["worker_tid"], f.get("locks")))
	if f.get("ns_pid") != f["pid"]: problems.append("ns_pid %s is not the host PID" % f.get("ns_pid"))
	if f.get("exe_name") != "fhct-sites": problems.append("exe_name %s" % f.get("exe_name"))
	syms = [s.get("symbol") for s in f.get("stack") or []]
	lsyms = [s.get("symbol") for s in (locks[0].get("stack") if locks else []) or []]
	if "fork_here" not in syms: problems.append("fork stack %s" % syms)
	if "take_0" not in lsyms: problems.append("lock stack %s" % lsyms)
	if problems:
	    print("fork event of PID %d: %s" % (f["pid"], "; ".join(problems))); sys.exit(1)
	print("%d JSON lines on stdout; fork event: host PID %d (ns_pid too), child %d, hazard, lock %s "
	      "(%s) held by worker TID %d, taken at take_0, forked at fork_here" % (len(lines), f["pid"],
	      f["child_pid"], locks[0]["addr"], locks[0]["kind"], locks[0]["holder_tid"]))
	EOF
}
evres=""
for _ in $(seq 30); do
	logs
	rc=0
	evres=$(check_events) || rc=$?
	[ "$rc" = 2 ] || break
	sleep 0.5
done
if [ "$rc" = 0 ]; then ok "$evres"; else bad "events: $evres"; fi

# The counters, after the workload (system-wide: other processes of this
# machine may add to them, never take away).
text=$(metrics || true)
metric() { awk -v n="$1" '$1 == n {print int($2)}' <<<"$text"; }
hz=$(metric forkhazard_hazards_total); mt=$(metric forkhazard_multithreaded_forks_total)
dh=$(metric forkhazard_daemon_hazards_total); st=$(metric forkhazard_sites)
if [ "${hz:-0}" -ge 1 ] && [ "${mt:-0}" -ge 5 ] && [ "${dh:-0}" -ge 1 ] && [ "${st:-0}" -ge 1 ]; then
	ok "metrics after the workload: forkhazard_hazards_total $hz, forkhazard_multithreaded_forks_total $mt," \
	   "forkhazard_daemon_hazards_total $dh, forkhazard_sites $st"
else
	bad "metrics after the workload: hazards $hz, multithreaded forks $mt, daemon hazards $dh, sites $st"
fi

# ---- stop: SIGTERM, as the kubelet does --------------------------------------
t=$SECONDS
pm stop -t 30 "$CTR" >/dev/null 2>&1 || true
took=$((SECONDS - t))
code=$(pm inspect -f '{{.State.ExitCode}}' "$CTR" 2>/dev/null || echo "?")
logs
if [ "$code" = 0 ] && [ "$took" -lt 30 ]; then
	ok "podman stop (SIGTERM): exited 0 in $took s"
else
	bad "podman stop: exit status $code after $took s (30 s: killed): $(tail -2 "$LOGS/daemon.err" | tr '\n' ' ')"
fi
# The flush at SIGTERM: the site's final aggregate and the summary. Adaptive
# mode: the first of the 5 forks only turned the probes on, so 1 to 4 hazards.
if fin=$(python3 - "$LOGS/daemon.out" <<-'EOF'
	import json, sys
	ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
	site = [e for e in ev if e.get("type") == "site" and e.get("reason") == "final"
	        and (e.get("exe") or "").endswith("/fhct-sites")]
	summ = [e for e in ev if e.get("type") == "summary"]
	if not site or not summ or not 1 <= site[0]["hazards"] <= 4:
	    print("final site %s, summary %s" % (site[:1], summ[:1])); sys.exit(1)
	print("site %s: %d hazards of 5 forks, lock site %s; summary: %d forks, %d hazards" % (
	    site[0]["site"], site[0]["hazards"], site[0]["lock_sites"], summ[0]["forks"], summ[0]["hazards"]))
	EOF
)
then ok "on SIGTERM: $fin"; else bad "on SIGTERM: $fin"; fi
pm rm -f "$CTR" >/dev/null 2>&1 || true

# ---- diagnostic: the runtime's default seccomp profile -----------------------
# Not a check: shows whether the manifest's seccompProfile Unconfined is needed
# with this runtime (podman's default profile allows bpf(2) and
# perf_event_open(2) only with CAP_SYS_ADMIN up to containers-common 0.50).
pm run -d --name "$CTR_SECCOMP" "${RUN_OPTS[@]}" "$IMAGE" "${ARGS[@]}" >/dev/null 2>&1 || true
for _ in $(seq 20); do
	[ "$(pm inspect -f '{{.State.Running}}' "$CTR_SECCOMP" 2>/dev/null)" = true ] || break
	sleep 0.5
done
sc=$(pm inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$CTR_SECCOMP" 2>/dev/null || echo "?")
scerr=$(pm logs "$CTR_SECCOMP" 2>&1 | grep -v '^Tracing' | tail -1 || true)
if [ "${sc%% *}" = running ]; then
	info "with podman's default seccomp profile the daemon runs too: Unconfined is not needed with podman $PODMAN_VERSION"
else
	info "with podman's default seccomp profile (not Unconfined) the daemon fails ($sc): $scerr"
fi
pm rm -f -t 0 "$CTR_SECCOMP" >/dev/null 2>&1 || true

finish
