# forkhazard - find fork hazards as they happen.
#
#   make            build build/forkhazard
#   make deps       install every Debian package the build and the tests need
#   make demo       deps + build + run forkhazard on the bundled demo (as root)
#   make test       deps + build + run the whole test suite (as root)
#   make bench      deps + build + run the benchmarks (bench/)
#   make asan       an ASan+UBSan build in build-asan/

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

# Userspace: every module but main.c also goes into the unit tests.
SRCS		:= $(wildcard src/*.c)
OBJS		:= $(patsubst src/%.c,$(OUT)/src/%.o,$(SRCS))
LIB_OBJS	:= $(filter-out $(OUT)/src/main.o,$(OBJS))

EXTRA_CFLAGS	?=
EXTRA_LDFLAGS	?=
CFLAGS		?= -O2 -g
CFLAGS		+= -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-missing-field-initializers \
		   -Iinclude -Isrc -I$(OUT) -DFH_VERSION='"$(VERSION)"' $(EXTRA_CFLAGS)
# libbpf is linked statically so the binary runs where libbpf is not installed.
LDLIBS		:= -Wl,-Bstatic -lbpf -Wl,-Bdynamic -ldw -lelf -lz -lcapstone
BPF_CFLAGS	:= -g -O2 -mcpu=v3 -target bpf -Wall -Werror -D__TARGET_ARCH_$(BPF_ARCH) \
		   -I$(VMLINUX_DIR) -Iinclude

TEST_PROGS	:= $(patsubst tests/progs/%.c,$(OUT)/tests/%,$(wildcard tests/progs/*.c))
UNIT_TESTS	:= $(patsubst tests/unit/%.c,$(OUT)/tests/unit/%,$(wildcard tests/unit/*.c))

.PHONY: all deps demo test check unit bench clean asan vmlinux
all: $(OUT)/forkhazard $(OUT)/demo

$(OUT)/bpf/%.bpf.o: bpf/%.bpf.c
	@mkdir -p $(@D)
	$(CLANG) $(BPF_CFLAGS) -MMD -MP -c $< -o $@

# All BPF programs are linked into one object and one skeleton.
$(OUT)/forkhazard.bpf.o: $(BPF_OBJS)
	$(BPFTOOL) gen object $@ $^

$(SKEL): $(OUT)/forkhazard.bpf.o
	$(BPFTOOL) gen skeleton $< name forkhazard_bpf > $@.tmp && mv $@.tmp $@

$(OUT)/src/%.o: src/%.c $(SKEL)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(OUT)/forkhazard: $(OBJS)
	$(CC) $(CFLAGS) $(EXTRA_LDFLAGS) $^ -o $@ $(LDLIBS)

# The demo: a program that forks while a worker holds a lock.
$(OUT)/demo: demo/demo.c
	@mkdir -p $(@D)
	$(CC) -O0 -g -fno-omit-frame-pointer -Wall -pthread $< -o $@

$(OUT)/tests/%: tests/progs/%.c
	@mkdir -p $(@D)
	$(CC) -O0 -g -fno-omit-frame-pointer -Wall -Wextra -D_GNU_SOURCE -pthread $< -o $@

$(OUT)/tests/unit/%: tests/unit/%.c $(LIB_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -MMD -MP $(EXTRA_LDFLAGS) $^ -o $@ $(LDLIBS)

-include $(shell find $(OUT) -name '*.d' 2>/dev/null)

deps:
	@scripts/deps.sh

demo: deps all
	$(OUT)/forkhazard -- $(OUT)/demo

unit: $(UNIT_TESTS)

test check: deps all $(TEST_PROGS) $(UNIT_TESTS)
	$(PYTHON) tests/run.py --build $(OUT)

asan:
	$(MAKE) OUT=build-asan EXTRA_CFLAGS='-fsanitize=address,undefined -fno-omit-frame-pointer' \
		EXTRA_LDFLAGS='-fsanitize=address,undefined' all

bench: deps all
	$(PYTHON) bench/run.py --build $(OUT)

vmlinux:
	scripts/gen-vmlinux.sh $(ARCH)

clean:
	rm -rf build build-asan
