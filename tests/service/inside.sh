#!/bin/bash
# Runs inside the test VM (tests/service/run.py), as the last unit of boot,
# with systemd as PID 1: what a user does after `apt install ./forkhazard_*.deb`.
# Each check prints one line "VMTEST ok: ..." or "VMTEST FAIL: ..." on the
# console; the host counts them. Ends with "VMTEST DONE" and powers off.
set -u
exec </dev/null
T=/opt/fhtest
EVENTS=/var/log/forkhazard/events.jsonl

ok() { echo "VMTEST ok: $*"; }
fail() { echo "VMTEST FAIL: $*"; }
info() { echo "VMTEST info: $*"; }
# check DESCRIPTION COMMAND...: one line either way
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else fail "$what"; fi
}
# wait_for SECONDS COMMAND...: poll until COMMAND succeeds
wait_for() {
	local left=$(($1 * 5))
	shift
	until "$@"; do
		left=$((left - 1))
		[ $left -gt 0 ] || return 1
		sleep 0.2
	done
}
main_pid() { systemctl show -p MainPID --value forkhazard; }
prop() { systemctl show -p "$1" --value forkhazard; }
active() { [ "$(systemctl is-active forkhazard)" = active ]; }
journal() { journalctl -q -o cat -u forkhazard --no-pager; }
dump() {
	systemctl status --no-pager forkhazard | sed 's/^/VMTEST log: /'
	journal | tail -n 40 | sed 's/^/VMTEST log: /'
}
metric() { curl -fsS --max-time 5 http://127.0.0.1:9477/metrics | awk -v m="$1" '$1 == m { print $2 }'; }

info "kernel $(uname -r), systemd $(systemctl --version | head -1)"
check "BTF present (/sys/kernel/btf/vmlinux)" test -r /sys/kernel/btf/vmlinux

# --- install: the package enables and starts the service ---------------------
if DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	"$T"/forkhazard_*.deb >/tmp/apt.log 2>&1; then
	ok "apt install ./forkhazard_*.deb"
else
	fail "apt install ./forkhazard_*.deb"
	sed 's/^/VMTEST log: /' /tmp/apt.log | tail -n 20
fi
check "the service is enabled" test "$(systemctl is-enabled forkhazard)" = enabled
# Type=notify: "active" only once the programs are loaded and attached
if wait_for 120 active; then ok "the service is active (READY=1 sent)"; else fail "the service is active"; dump; fi
info "startup: $(prop ExecMainStartTimestamp) -> active $(prop ActiveEnterTimestamp)"
check "status text from sd_notify" test "$(prop StatusText)" = "Tracing fork hazards"
check "the watchdog is armed (WatchdogSec=60s)" test "$(prop WatchdogUSec)" = 1min

# --- the unit's sandbox, as the kernel sees it --------------------------------
pid=$(main_pid)
caps=$(awk '/^CapEff/ { print $2 }' /proc/"$pid"/status)
info "daemon PID $pid CapEff $caps"
# CAP_DAC_READ_SEARCH(2) SYS_PTRACE(19) PERFMON(38) BPF(39) CHECKPOINT_RESTORE(40)
check "no capability beyond the five" test $((0x$caps & ~((1 << 2) | (1 << 19) | (1 << 38) | (1 << 39) | (1 << 40)))) -eq 0
check "NoNewPrivs set" grep -q '^NoNewPrivs:[[:space:]]*1' /proc/"$pid"/status
check "ProtectSystem=strict: /usr read-only for it" \
	bash -c "! nsenter -t $pid -m touch /usr/fh-probe 2>/dev/null"
check "ProtectHome=read-only: /root read-only for it" \
	bash -c "! nsenter -t $pid -m touch /root/fh-probe 2>/dev/null"
check "LogsDirectory writable for it" test -d /var/log/forkhazard
cg=/sys/fs/cgroup$(cut -d: -f3 /proc/"$pid"/cgroup)
check "MemoryMax=512M in its cgroup" test "$(cat "$cg"/memory.max 2>/dev/null)" = 536870912
check "CPUQuota=50% in its cgroup" grep -q '^50000 100000$' "$cg"/cpu.max
check "metrics endpoint answers on 127.0.0.1:9477" \
	bash -c "curl -fsS --max-time 5 http://127.0.0.1:9477/metrics | grep -q '^forkhazard_build_info'"

# --- hazards: reported once in full, then aggregated --------------------------
# The packaged mode is adaptive: a process's first fork while multithreaded
# turns its lock probes on; the forks after it report the locks held. sites
# waits 10 s at most for the probes, so its first fork comes without them.
"$T"/sites --linger 500 repeat 8 300 >/tmp/sites1.out 2>&1
info "sites: $(tail -n 1 /tmp/sites1.out)"
wait_for 30 bash -c "journalctl -q -o cat -u forkhazard | grep -q 'fork hazard, new site'"
check "the new site in the journal, once, in full" \
	test "$(journal | grep -c 'fork hazard, new site')" -eq 1
journal | grep 'fork hazard, new site' | sed 's/^/VMTEST log: /'
wait_for 20 bash -c "[ \$(cat $EVENTS 2>/dev/null | grep -c '\"type\":\"fork\"') -ge 1 ]"
check "the full event in $EVENTS (JSON Lines)" \
	bash -c "grep '\"type\":\"fork\"' $EVENTS | head -1 | grep -q '\"symbol\":\"take_0\"'"
hz=$(metric forkhazard_hazards_total)
info "forkhazard_hazards_total ${hz:-none}, forkhazard_forks_total $(metric forkhazard_forks_total)"
check "metrics count the hazards (>= 6 of 8 forks; the first may come before the probes)" \
	test "${hz:-0}" -ge 6 -a "${hz:-0}" -le 8
check "one site in the metrics" test "$(metric forkhazard_sites)" = 1

# --- logrotate: SIGHUP (systemctl reload) reopens the events file ------------
lines_before=$(wc -l <"$EVENTS")
mv "$EVENTS" "$EVENTS.1"
systemctl reload forkhazard
# new sites (lock subsets 2 and 3), so new events in full: into the new file
"$T"/sites --linger 500 distinct 4 300 >/tmp/sites2.out 2>&1
wait_for 20 bash -c "grep -q '\"type\":\"fork\"' $EVENTS"
check "reload reopened the events file: the new sites are in the new one" \
	bash -c "grep -q '\"type\":\"fork\"' $EVENTS"
check "rotation lost nothing (old file kept its $lines_before lines)" \
	test "$(wc -l <"$EVENTS.1")" -eq "$lines_before"
check "still active after reload" active

# --- the watchdog: a hung daemon is killed and restarted ----------------------
mkdir -p /run/systemd/system/forkhazard.service.d
printf '[Service]\nWatchdogSec=3s\nRestartSec=1s\n' >/run/systemd/system/forkhazard.service.d/wd.conf
systemctl daemon-reload
systemctl restart forkhazard
wait_for 120 active
r0=$(prop NRestarts)
sleep 10
check "pings the watchdog (10 s at WatchdogSec=3s, no restart)" test "$(prop NRestarts)" = "$r0"
pid=$(main_pid)
kill -STOP "$pid"
if wait_for 60 bash -c "[ \$(systemctl show -p NRestarts --value forkhazard) -gt $r0 ]"; then
	ok "a stopped daemon is killed by the watchdog and restarted"
else
	fail "watchdog restart"
	dump
fi
check "the journal says why" bash -c "journalctl -q -o cat -u forkhazard | grep -qi 'watchdog timeout'"
check "active again after the restart" wait_for 120 active
rm -rf /run/systemd/system/forkhazard.service.d
systemctl daemon-reload
systemctl restart forkhazard
wait_for 120 active

# --- the child that deadlocks: counted on its site ---------------------------
"$T"/demo >/tmp/demo.out 2>&1
"$T"/demo >>/tmp/demo.out 2>&1
wait_for 20 bash -c "[ \"\$(curl -fsS --max-time 5 http://127.0.0.1:9477/metrics | awk '\$1 == \"forkhazard_deadlocks_total\" { print \$2 }')\" -ge 1 ]"
check "the demo's deadlocked child counted (forkhazard_deadlocks_total >= 1)" \
	test "$(metric forkhazard_deadlocks_total)" -ge 1

check "the deadlocked child's waiting owner named (owner_tid, read in the kernel)" \
	bash -c "cat $EVENTS $EVENTS.1 | grep '\"type\":\"deadlock\"' | grep -q '\"owner_tid\":[0-9]'"

# --- stop: SIGTERM flushes the aggregates ------------------------------------
# The daemon was restarted since the first site: the same hazard again, for
# this daemon's table. Sites are named by build-id and offsets: same ID.
first_site=$(journal | grep -m1 -oE 'new site [0-9a-f]{16}' | cut -d' ' -f3)
"$T"/sites --linger 500 repeat 4 300 >/tmp/sites3.out 2>&1
systemctl stop forkhazard
check "stopped cleanly (Result=success)" test "$(prop Result)" = success
journal | grep -E 'site [0-9a-f]{16}: [0-9]+ hazards' | tail -n 2 | sed 's/^/VMTEST log: /'
check "the final aggregate in the journal: site $first_site, 3 or 4 hazards (the first fork may come before the probes)" \
	bash -c "journalctl -q -o cat -u forkhazard | grep -qE 'site $first_site: [34] hazards'"
check "no forkhazard process left" bash -c "! pgrep -x forkhazard >/dev/null"

# --- a configuration error: one line, exit status 2, no restart loop ----------
mkdir -p /run/systemd/system/forkhazard.service.d
printf '[Service]\nExecStart=\nExecStart=/usr/sbin/forkhazard --daemon --config=/etc/forkhazard.conf --no-such-flag\n' \
	>/run/systemd/system/forkhazard.service.d/bad.conf
systemctl daemon-reload
systemctl restart forkhazard 2>/dev/null
# with Restart=on-failure alone it would be "activating (auto-restart)" again
wait_for 30 bash -c '[ "$(systemctl show -p ActiveState --value forkhazard)" = failed ]'
sleep 1
check "a bad flag: failed with exit status 2, not restarted" \
	test "$(prop ActiveState)/$(prop ExecMainStatus)/$(prop NRestarts)" = failed/2/0
journal | grep -m1 'unknown option' | sed 's/^/VMTEST log: /'
rm -rf /run/systemd/system/forkhazard.service.d
systemctl daemon-reload
systemctl reset-failed forkhazard

# --- purge --------------------------------------------------------------------
systemctl start forkhazard
wait_for 120 active
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q forkhazard >/tmp/purge.log 2>&1
check "apt purge" test $? -eq 0
check "purge stopped the service" bash -c "! pgrep -x forkhazard >/dev/null"
check "purge removed the unit and the configuration" \
	bash -c "! test -e /lib/systemd/system/forkhazard.service -o -e /etc/forkhazard.conf"

echo "VMTEST DONE"
systemctl poweroff --no-block
