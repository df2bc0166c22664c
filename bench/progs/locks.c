/*
 * locks: lock/unlock loops, one JSON line per loop.
 *
 *   locks [--wait] NAME:ITERS[:THREADS]...
 *
 * NAME is one of
 *   mutex      each thread locks and unlocks its own mutex (uncontended)
 *   contended  every thread locks and unlocks one shared mutex
 *   rdlock     every thread read-locks and unlocks one shared rwlock
 *   wrlock     each thread write-locks and unlocks its own rwlock
 *   syscall    each thread calls getppid(2): no lock at all, the cost a
 *              tracer adds to every system call of the machine
 * ITERS is the number of lock/unlock pairs each thread does; THREADS
 * defaults to 1. Several loops run one after the other in one process, so
 * that one tracer session (forkhazard -p, bpftrace -p) covers them all.
 *
 * Prints {"name":..,"threads":..,"iters":..,"elapsed_ns":..} per loop: the
 * time from the first thread's start to the last one's end, as the threads
 * themselves read it (with two cores busy, the main thread may not run until
 * a worker is done), so process and thread start-up are not measured.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "common.h"

#define MAX_THREADS 16

enum kind { MUTEX, CONTENDED, RDLOCK, WRLOCK, SYSCALL };

/* One lock per cache line, so "uncontended" threads share nothing. */
struct padded {
	union {
		pthread_mutex_t m;
		pthread_rwlock_t rw;
	};
	char pad[128 - sizeof(pthread_rwlock_t)];
} __attribute__((aligned(128)));

struct loop {
	enum kind kind;
	unsigned long iters;
	pthread_barrier_t start;
	struct padded own[MAX_THREADS];
	struct padded shared;
};

struct worker {
	struct loop *loop;
	int idx;
	uint64_t start, end;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct loop *l = w->loop;
	pthread_mutex_t *m = l->kind == CONTENDED ? &l->shared.m : &l->own[w->idx].m;
	pthread_rwlock_t *rw = l->kind == RDLOCK ? &l->shared.rw : &l->own[w->idx].rw;

	pthread_barrier_wait(&l->start);
	w->start = now_ns();
	switch (l->kind) {
	case MUTEX:
	case CONTENDED:
		for (unsigned long i = 0; i < l->iters; i++) {
			pthread_mutex_lock(m);
			pthread_mutex_unlock(m);
		}
		break;
	case RDLOCK:
		for (unsigned long i = 0; i < l->iters; i++) {
			pthread_rwlock_rdlock(rw);
			pthread_rwlock_unlock(rw);
		}
		break;
	case WRLOCK:
		for (unsigned long i = 0; i < l->iters; i++) {
			pthread_rwlock_wrlock(rw);
			pthread_rwlock_unlock(rw);
		}
		break;
	case SYSCALL:
		for (unsigned long i = 0; i < l->iters; i++)
			syscall(SYS_getppid);	/* glibc's getppid() caches nothing, but be sure */
		break;
	}
	w->end = now_ns();
	return NULL;
}

static void run_loop(int idx, const char *name, enum kind kind, unsigned long iters,
		     int threads)
{
	static struct loop l;
	pthread_t tids[MAX_THREADS];
	struct worker ws[MAX_THREADS];
	uint64_t t0, t1;

	memset(&l, 0, sizeof(l));
	l.kind = kind;
	l.iters = iters;
	pthread_mutex_init(&l.shared.m, NULL);
	pthread_rwlock_init(&l.shared.rw, NULL);
	for (int i = 0; i < threads; i++) {
		pthread_mutex_init(&l.own[i].m, NULL);
		pthread_rwlock_init(&l.own[i].rw, NULL);
	}
	pthread_barrier_init(&l.start, NULL, (unsigned)threads + 1);
	pause_at("before", idx);
	for (int i = 0; i < threads; i++) {
		ws[i] = (struct worker){ .loop = &l, .idx = i };
		if (pthread_create(&tids[i], NULL, worker_main, &ws[i])) {
			fprintf(stderr, "locks: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&l.start);
	t0 = UINT64_MAX;
	t1 = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(tids[i], NULL);
		t0 = ws[i].start < t0 ? ws[i].start : t0;
		t1 = ws[i].end > t1 ? ws[i].end : t1;
	}
	pthread_barrier_destroy(&l.start);
	pause_at("after", idx);
	printf("{\"name\":\"%s\",\"threads\":%d,\"iters\":%lu,\"elapsed_ns\":%llu}\n", name,
	       threads, iters, (unsigned long long)(t1 - t0));
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const struct { const char *name; enum kind kind; } kinds[] = {
		{ "mutex", MUTEX }, { "contended", CONTENDED },
		{ "rdlock", RDLOCK }, { "wrlock", WRLOCK }, { "syscall", SYSCALL },
	};
	int first = 1;

	if (argc > 1 && !strcmp(argv[1], "--wait"))
		first = 2;
	if (first >= argc) {
		fprintf(stderr, "usage: locks [--wait] NAME:ITERS[:THREADS]...\n");
		return 2;
	}
	/* Validate everything before the handshake: a usage error must not
	 * leave the runner waiting for a signal that changes nothing. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1 && first == 2)
			wait_for_go();
		for (int a = first; a < argc; a++) {
			char buf[128], *name, *iters, *threads;
			size_t k;

			snprintf(buf, sizeof(buf), "%s", argv[a]);
			name = strtok(buf, ":");
			iters = strtok(NULL, ":");
			threads = strtok(NULL, ":");
			for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
				if (name && !strcmp(name, kinds[k].name))
					break;
			if (k == sizeof(kinds) / sizeof(kinds[0]) || !iters) {
				fprintf(stderr, "locks: bad loop '%s'\n", argv[a]);
				return 2;
			}
			unsigned long n = parse_count(iters, "iterations");
			unsigned long t = threads ? parse_count(threads, "threads") : 1;

			if (t > MAX_THREADS) {
				fprintf(stderr, "locks: at most %d threads\n", MAX_THREADS);
				return 2;
			}
			if (pass == 1)
				run_loop(a - first, name, kinds[k].kind, n, (int)t);
		}
	}
	return 0;
}
