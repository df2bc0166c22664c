# forkhazard - find fork hazards as they happen.
#
#   make            build build/forkhazard
#   make deps       install every Debian package the build and the tests need
#   make demo       deps + build + run forkhazard on the bundled demo (as root)
#   make test       deps + build + run the whole test suite (as root)
#   make unit       build and run the unit tests and the pipeline test (no
#                   clang, bpftool or root needed)
#   make bench      deps + build + run the benchmarks (bench/)
#   make bench-bpfcost  BPF program time per lock-probe hit, Python and C
#   make check-cpython-futures  CPython's test_concurrent_futures under forkhazard
#   make asan       an ASan+UBSan build in build-asan/
#   make fuzz       fuzz the symbolizer's ELF parsing and the /proc parsers,
#                   FUZZ_SECONDS (60) each
#   make lint       cppcheck and clang-tidy on src/ (any finding fails)
#   make soak       SOAK_SECONDS (1800) of mixed load under forkhazard: RSS and
#                   map fill sampled, plotted to bench/results/soak.png
#   make check-asan the whole suite on the ASan+UBSan build (any report fails)
#   make check-valgrind  the unit tests under valgrind
#   make install    PREFIX (/usr/local), DESTDIR: binary, unit, man page, completion,
#                   alert rules and dashboard

ARCH		?= $(shell uname -m)
BPF_ARCH	:= $(patsubst x86_64,x86,$(patsubst aarch64,arm64,$(ARCH)))
OUT		?= build
CC		?= cc
CLANG		?= clang
BPFTOOL		?= bpftool
PYTHON		?= python3
VERSION		:= 0.1.0

VMLINUX_DIR	:= vmlinux/$(ARCH)
BPF_SRCS	:= $(wildcard bpf/*.bpf.c)
BPF_OBJS	:= $(patsubst bpf/%.bpf.c,$(OUT)/bpf/%.bpf.o,$(BPF_SRCS))
SKEL		:= $(OUT)/forkhazard.skel.h

# Userspace. Only the objects that include the BPF skeleton wait for it (and
# need clang and bpftool); every module but those and main.c also goes into
# the unit tests.
SRCS		:= $(wildcard src/*.c)
OBJS		:= $(patsubst src/%.c,$(OUT)/src/%.o,$(SRCS))
SKEL_OBJS	:= $(patsubst src/%.c,$(OUT)/src/%.o,$(shell grep -l 'forkhazard\.skel\.h' $(SRCS)))
UNIT_OBJS	:= $(filter-out $(OUT)/src/main.o $(SKEL_OBJS),$(OBJS))

EXTRA_CFLAGS	?=
EXTRA_LDFLAGS	?=
CFLAGS		?= -O2 -g
# What the sources need whatever CFLAGS says (`make CFLAGS=-O0` keeps these).
FH_CFLAGS	:= -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-missing-field-initializers \
		   -Iinclude -Isrc -I$(OUT) -DFH_VERSION='"$(VERSION)"'
ALL_CFLAGS	= $(CFLAGS) $(FH_CFLAGS) $(EXTRA_CFLAGS)
# libbpf is linked statically so the binary runs where libbpf is not installed.
LDLIBS		:= -Wl,-Bstatic -lbpf -Wl,-Bdynamic -ldw -lelf -lz -lcapstone -llzma -lstdc++ \
		   -lmicrohttpd -lsystemd -ljson-c -lm
BPF_CFLAGS	:= -g -O2 -mcpu=v3 -target bpf -Wall -Werror -D__TARGET_ARCH_$(BPF_ARCH) \
		   -I$(VMLINUX_DIR) -Iinclude

TEST_PROGS	:= $(patsubst tests/progs/%.c,$(OUT)/tests/%,$(wildcard tests/progs/*.c))
UNIT_TESTS	:= $(patsubst tests/unit/%.c,$(OUT)/tests/unit/%,$(wildcard tests/unit/*.c))

.PHONY: all deps demo test check unit unit-tests bench clean asan vmlinux
all: $(OUT)/forkhazard $(OUT)/demo

# A recipe that fails leaves no half-written target behind.
.DELETE_ON_ERROR:

$(OUT)/bpf/%.bpf.o: bpf/%.bpf.c
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

# All BPF programs are linked into one object and one skeleton.
$(OUT)/forkhazard.bpf.o: $(BPF_OBJS)
	$(BPFTOOL) gen object $@ $^

$(SKEL): $(OUT)/forkhazard.bpf.o
	$(BPFTOOL) gen skeleton $< name forkhazard_bpf > $@.tmp && mv $@.tmp $@

$(OUT)/src/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(SKEL_OBJS): $(SKEL)

$(OUT)/forkhazard: $(OBJS)
	$(CC) $(ALL_CFLAGS) $(EXTRA_LDFLAGS) $^ -o $@ $(LDLIBS)

# The demo: a program that forks while a worker holds a lock.
$(OUT)/demo: demo/demo.c
	@mkdir -p $(@D)
	$(CC) -O0 -g -fno-omit-frame-pointer -Wall -pthread $< -o $@

$(OUT)/tests/%: tests/progs/%.c
	@mkdir -p $(@D)
	$(CC) -O0 -g -fno-omit-frame-pointer -Wall -Wextra -D_GNU_SOURCE -pthread $< -o $@

# Symbolization test programs: C++ ones (g++), unwind_capture without frame
# pointers, and symprog built three more ways.
TEST_PROGS	+= $(patsubst tests/progs/%.cc,$(OUT)/tests/%,$(wildcard tests/progs/*.cc)) \
		   $(addprefix $(OUT)/tests/symprog-,o2 stripped minidebug)
PROG_FLAGS	:= -Wall -Wextra -D_GNU_SOURCE -pthread

$(OUT)/tests/%: tests/progs/%.cc
	@mkdir -p $(@D)
	$(CXX) -O0 -g -fno-omit-frame-pointer $(PROG_FLAGS) $< -o $@

$(OUT)/tests/unwind_capture: tests/progs/unwind_capture.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -fomit-frame-pointer $(PROG_FLAGS) $< -o $@

$(OUT)/tests/symprog-o2: tests/progs/symprog.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -fomit-frame-pointer $(PROG_FLAGS) $< -o $@

# No .symtab, no DWARF: only fh_exported_hold keeps a name, in .dynsym.
$(OUT)/tests/symprog-stripped: tests/progs/symprog.c
	@mkdir -p $(@D)
	$(CC) -O0 -fno-omit-frame-pointer $(PROG_FLAGS) \
		-Wl,--export-dynamic-symbol=fh_exported_hold $< -o $@
	strip --strip-all $@

# Stripped, its local function symbols in .gnu_debugdata (MiniDebugInfo).
$(OUT)/tests/symprog-minidebug: tests/progs/symprog.c tests/progs/minidebuginfo.sh
	@mkdir -p $(@D)
	$(CC) -O0 -fno-omit-frame-pointer $(PROG_FLAGS) $< -o $@
	sh tests/progs/minidebuginfo.sh $@

# Lock-kind test programs: kinds.c also built static and with musl (the lock
# functions at other places, with other layouts), and lockfn linked with a
# small library that has its own lock (--lock-fn).
TEST_PROGS	+= $(addprefix $(OUT)/tests/,kinds-static kinds-musl kinds-musl-static libfhlock.so libfhcthread.so \
		   nolocks-musl-static)
MUSL_CC		?= musl-gcc

$(OUT)/tests/kinds-static: tests/progs/kinds.c
	@mkdir -p $(@D)
	$(CC) -static -O0 -g -fno-omit-frame-pointer $(PROG_FLAGS) $< -o $@

$(OUT)/tests/kinds-musl: tests/progs/kinds.c
	@mkdir -p $(@D)
	$(MUSL_CC) -O0 -g -fno-omit-frame-pointer -Wall -Wextra -D_GNU_SOURCE $< -o $@

$(OUT)/tests/kinds-musl-static: tests/progs/kinds.c
	@mkdir -p $(@D)
	$(MUSL_CC) -static -O0 -g -fno-omit-frame-pointer -Wall -Wextra -D_GNU_SOURCE $< -o $@

# A program without any lock function forkhazard knows (musl's stdio locks
# are its own).
$(OUT)/tests/nolocks-musl-static: tests/progs/nolocks.c
	@mkdir -p $(@D)
	$(MUSL_CC) -static -O0 -g -Wall -Wextra $< -o $@

# A C thread for a Python program to start (ctypes): a lock taken with no Python frame.
$(OUT)/tests/libfhcthread.so: tests/progs/lib/fhcthread.c
	@mkdir -p $(@D)
	$(CC) -O0 -g -fno-omit-frame-pointer -shared -fPIC $(PROG_FLAGS) $< -o $@

$(OUT)/tests/libfhlock.so: tests/progs/lib/fhlock.c
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O1 -g -Wall -Wextra $< -o $@

$(OUT)/tests/lockfn: tests/progs/lockfn.c $(OUT)/tests/libfhlock.so
	@mkdir -p $(@D)
	$(CC) -O0 -g -fno-omit-frame-pointer $(PROG_FLAGS) $< -o $@ -L$(OUT)/tests -lfhlock \
		-Wl,-rpath,'$$ORIGIN'

# verdicts links a library that starts a thread of its own (libfhworker.so).
TEST_PROGS	+= $(OUT)/tests/libfhworker.so

$(OUT)/tests/libfhworker.so: tests/progs/lib/fhworker.c
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O1 -g -Wall -Wextra -pthread $< -o $@

$(OUT)/tests/verdicts: tests/progs/verdicts.c $(OUT)/tests/libfhworker.so
	@mkdir -p $(@D)
	$(CC) -O0 -g -fno-omit-frame-pointer $(PROG_FLAGS) $< -o $@ -L$(OUT)/tests -lfhworker \
		-Wl,-rpath,'$$ORIGIN'

# Reads a Python process as the in-kernel frame walker will (struct
# fh_py_layout) and as src/pyrt.c does: tests/test_pyrt.py compares the two.
$(OUT)/tests/pyrt_check: tests/progs/pyrt_check.c $(UNIT_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(EXTRA_LDFLAGS) $(filter %.c %.o,$^) -o $@ $(LDLIBS)

# libFuzzer on the symbolizer's ELF path (clang): `make fuzz` runs it for
# FUZZ_SECONDS; tests/test_fuzz.py runs it briefly. New inputs and crashes
# go to $(OUT)/fuzz/.
FUZZ_SECONDS	?= 60
FUZZ_FLAGS	:= -g -O1 -std=c11 -D_GNU_SOURCE -Isrc -Iinclude \
		   -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
# -detect_leaks=0: libelf/libdw 0.188 leak on some crafted files themselves
# (tests/test_fuzz.py); the seeds replay with leak detection on.
FUZZ_RUN_FLAGS	:= -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		   -detect_leaks=0
TEST_PROGS	+= $(OUT)/fuzz/fuzz_elf

$(OUT)/fuzz/fuzz_elf: fuzz/fuzz_elf.c src/symmod.c src/symmod.h src/symbolize.h
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_FLAGS) fuzz/fuzz_elf.c src/symmod.c -o $@ -ldw -lelf -llzma -lstdc++ -lz

# The /proc parsers (src/procfs.c) too: whatever a process names itself or
# maps, as bytes. Leaks are looked for here: procfs.c is all ours.
TEST_PROGS	+= $(OUT)/fuzz/fuzz_procfs

$(OUT)/fuzz/fuzz_procfs: fuzz/fuzz_procfs.c src/procfs.c src/procfs.h
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_FLAGS) fuzz/fuzz_procfs.c src/procfs.c -o $@

.PHONY: fuzz
fuzz: deps $(OUT)/fuzz/fuzz_elf $(OUT)/fuzz/fuzz_procfs
	@mkdir -p $(OUT)/fuzz/corpus $(OUT)/fuzz/corpus-procfs $(OUT)/fuzz/artifacts
	ASAN_OPTIONS=detect_leaks=0 $(OUT)/fuzz/fuzz_elf $(FUZZ_RUN_FLAGS) \
		-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(OUT)/fuzz/artifacts/ \
		$(OUT)/fuzz/corpus fuzz/corpus/elf
	$(OUT)/fuzz/fuzz_procfs -max_len=8192 -timeout=10 -rss_limit_mb=1024 -print_final_stats=1 \
		-max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(OUT)/fuzz/artifacts/procfs- \
		$(OUT)/fuzz/corpus-procfs fuzz/corpus/procfs

# Only the sources and objects: the headers the .d file adds to $^ would be
# compiled too, and overwrite the .d with their own (empty) dependencies.
$(OUT)/tests/unit/%: tests/unit/%.c $(UNIT_OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP $(EXTRA_LDFLAGS) $(filter %.c %.o,$^) -o $@ $(LDLIBS)

-include $(shell find $(OUT) -name '*.d' 2>/dev/null)

deps:
	@scripts/deps.sh

demo: deps all
	$(OUT)/forkhazard -- $(OUT)/demo

# The test programs some unit tests read (built with cc, as they are).
UNIT_PROGS	:= $(addprefix $(OUT)/tests/,unwind_capture symprog-stripped)
unit-tests: $(UNIT_TESTS) $(UNIT_PROGS)

unit: unit-tests
	$(PYTHON) tests/run.py --build $(OUT) --unit-only

test check: deps all $(TEST_PROGS) $(UNIT_TESTS)
	$(PYTHON) tests/run.py --build $(OUT)

SAN_FLAGS	:= -fsanitize=address,undefined
SAN_MAKE	= $(MAKE) OUT=build-asan EXTRA_CFLAGS='$(SAN_FLAGS) -fno-omit-frame-pointer' \
		  EXTRA_LDFLAGS='$(SAN_FLAGS)'
# Every report fails: UBSan alone would print "runtime error:" and go on.
SAN_ENV		:= ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1 \
		   UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

asan:
	$(SAN_MAKE) all

.PHONY: check-asan check-valgrind
# The whole suite on the sanitized build: the unit tests, and the integration
# tests running build-asan/forkhazard (the test programs stay unsanitized).
check-asan: deps
	$(SAN_MAKE) all unit-tests $(patsubst $(OUT)/%,build-asan/%,$(TEST_PROGS))
	$(SAN_ENV) $(PYTHON) tests/run.py --build build-asan

# The unit tests under valgrind, from the plain build (valgrind and ASan do not
# mix). Not while a forkhazard traces: its lock probes put int3 into libc's
# code in every process, and valgrind runs them as SIGTRAP.
check-valgrind: deps
	$(MAKE) unit-tests
	$(PYTHON) tests/run.py --build $(OUT) --valgrind --unit-only

# The service under a booted systemd (a QEMU virtual machine on Debian's
# kernels: tests/service/run.py) and the container image built and run as the
# DaemonSet runs it (podman: packaging/container-test.sh). Root, minutes each.
# SERVICE_KERNELS: the Debian suites whose kernels are booted (run.py's default:
# trixie-backports and trixie).
SERVICE_KERNELS	?=
.PHONY: check-service check-container
check-service: deps all $(OUT)/tests/sites
	@scripts/deps.sh service
	$(PYTHON) tests/service/run.py $(addprefix --kernel ,$(SERVICE_KERNELS))

check-container: deps all $(OUT)/tests/sites
	@scripts/deps.sh container
	packaging/container-test.sh

# Static analysis of the userspace sources: both must be silent (scripts/lint.sh).
.PHONY: lint
lint: $(SKEL)
	scripts/lint.sh $(OUT)

# Half an hour of mixed load under forkhazard (bench/soak.py): RSS and the
# kernel maps' fill sampled every SOAK_INTERVAL seconds, bench/results/soak.{csv,png}.
SOAK_SECONDS	?= 1800
SOAK_INTERVAL	?= 5
.PHONY: soak
soak: deps all $(TEST_PROGS)
	$(PYTHON) bench/soak.py --build $(OUT) --seconds $(SOAK_SECONDS) --interval $(SOAK_INTERVAL)

bench: deps all
	@scripts/deps.sh bench
	$(PYTHON) bench/run.py --build $(OUT) $(BENCH_ARGS)

# CPython's test_concurrent_futures (pyenv 3.10) under system-wide forkhazard:
# every hazard names its Python thread and line, the suite's result unchanged
# (scripts/cpython_futures.py; minutes: not part of make test).
.PHONY: check-cpython-futures
check-cpython-futures: deps all
	$(PYTHON) scripts/cpython_futures.py --build $(OUT)

# BPF program time per lock-probe hit (bpf_stats), per CPython and for a C
# mutex: what the Python frame walk adds (bench/bpfcost.py).
.PHONY: bench-bpfcost
bench-bpfcost: all
	$(PYTHON) bench/bpfcost.py --build $(OUT)

vmlinux:
	scripts/gen-vmlinux.sh $(ARCH)

# Installation: `make install` (PREFIX=/usr/local), `make install PREFIX=/usr
# DESTDIR=/tmp/stage` for a package (debian/rules does that). The unit's paths
# follow SBINDIR and SYSCONFDIR; an existing configuration file is kept.
PREFIX		?= /usr/local
SBINDIR		?= $(PREFIX)/sbin
MANDIR		?= $(PREFIX)/share/man
SYSCONFDIR	?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDUNITDIR	?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR	?= $(PREFIX)/share/bash-completion/completions
# The fleet files: Prometheus rules, Grafana dashboard (README "Fleet").
FLEETDIR	?= $(PREFIX)/share/forkhazard
DESTDIR		?=

.PHONY: install uninstall
install: $(OUT)/forkhazard
	install -D -m 0755 $(OUT)/forkhazard $(DESTDIR)$(SBINDIR)/forkhazard
	install -D -m 0644 packaging/forkhazard.8 $(DESTDIR)$(MANDIR)/man8/forkhazard.8
	install -D -m 0644 packaging/forkhazard.bash $(DESTDIR)$(BASHCOMPDIR)/forkhazard
	install -d $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSCONFDIR)/logrotate.d
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		packaging/forkhazard.service.in > $(DESTDIR)$(SYSTEMDUNITDIR)/forkhazard.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/forkhazard.service
	install -m 0644 packaging/forkhazard.logrotate $(DESTDIR)$(SYSCONFDIR)/logrotate.d/forkhazard
	install -D -m 0644 packaging/prometheus/forkhazard.rules.yml \
		$(DESTDIR)$(FLEETDIR)/prometheus/forkhazard.rules.yml
	install -D -m 0644 packaging/grafana/forkhazard.json $(DESTDIR)$(FLEETDIR)/grafana/forkhazard.json
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/forkhazard.conf ]; then \
		echo "keeping $(DESTDIR)$(SYSCONFDIR)/forkhazard.conf"; \
	else \
		install -m 0644 packaging/forkhazard.conf $(DESTDIR)$(SYSCONFDIR)/forkhazard.conf; \
	fi

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/forkhazard $(DESTDIR)$(MANDIR)/man8/forkhazard.8 \
	      $(DESTDIR)$(BASHCOMPDIR)/forkhazard $(DESTDIR)$(SYSTEMDUNITDIR)/forkhazard.service \
	      $(DESTDIR)$(SYSCONFDIR)/logrotate.d/forkhazard \
	      $(DESTDIR)$(FLEETDIR)/prometheus/forkhazard.rules.yml \
	      $(DESTDIR)$(FLEETDIR)/grafana/forkhazard.json
	@rmdir $(DESTDIR)$(FLEETDIR)/prometheus $(DESTDIR)$(FLEETDIR)/grafana $(DESTDIR)$(FLEETDIR) \
		2>/dev/null || true
	@echo "left $(DESTDIR)$(SYSCONFDIR)/forkhazard.conf and /var/log/forkhazard in place"

clean:
	rm -rf build build-asan
