/*
 * pairs: N lock+unlock pairs of one kind, between handshakes, so that a test
 * can read the lock probes' hit counters before and after exactly those N
 * operations (tests/test_cost.py).
 *
 *   pairs KIND N
 *
 * KIND: mutex rwlock-write rwlock-read sem (sem_wait + sem_post) sem-try
 * (sem_trywait + sem_post) sem-try-fail (sem_trywait on a taken semaphore:
 * fails) mutex-try-fail (pthread_mutex_trylock on a taken mutex) spin
 * rwlock-trywrite rwlock-tryread (try, then unlock) rwlock-trywrite-fail
 * (pthread_rwlock_trywrlock on a write-locked rwlock).
 *
 * A second thread exists throughout (what a multithreaded program is).
 * Handshake: prints "ready", waits for a byte on stdin, runs the N
 * operations, prints "done", waits for a byte on stdin, then prints one JSON
 * line of facts. Nothing between the two stdin reads takes a lock but the N
 * operations.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_spinlock_t spin;
static sem_t sem, taken;
static atomic_int stop;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void handshake(const char *say)
{
	char c;

	printf("%s\n", say);
	fflush(stdout);
	if (read(0, &c, 1) != 1) {
		fprintf(stderr, "pairs: stdin closed\n");
		exit(3);
	}
}

static void *idle(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		sleep_ms(5);
	return NULL;
}

int main(int argc, char **argv)
{
	const char *kind;
	long n, failed = 0;
	pthread_t t;

	if (argc != 3) {
		fprintf(stderr, "usage: pairs KIND N\n");
		return 2;
	}
	kind = argv[1];
	n = atol(argv[2]);
	pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
	sem_init(&sem, 0, 1);
	sem_init(&taken, 0, 0);
	pthread_create(&t, NULL, idle, NULL);
	if (!strcmp(kind, "mutex-try-fail"))
		pthread_mutex_lock(&mutex);
	if (!strcmp(kind, "rwlock-trywrite-fail"))
		pthread_rwlock_wrlock(&rwlock);
	handshake("ready");
	for (long i = 0; i < n; i++) {
		if (!strcmp(kind, "mutex")) {
			pthread_mutex_lock(&mutex);
			pthread_mutex_unlock(&mutex);
		} else if (!strcmp(kind, "rwlock-write")) {
			pthread_rwlock_wrlock(&rwlock);
			pthread_rwlock_unlock(&rwlock);
		} else if (!strcmp(kind, "rwlock-read")) {
			pthread_rwlock_rdlock(&rwlock);
			pthread_rwlock_unlock(&rwlock);
		} else if (!strcmp(kind, "sem")) {
			sem_wait(&sem);
			sem_post(&sem);
		} else if (!strcmp(kind, "sem-try")) {
			failed += sem_trywait(&sem) != 0;
			sem_post(&sem);
		} else if (!strcmp(kind, "sem-try-fail")) {
			failed += sem_trywait(&taken) != 0;
		} else if (!strcmp(kind, "mutex-try-fail")) {
			failed += pthread_mutex_trylock(&mutex) != 0;
		} else if (!strcmp(kind, "rwlock-trywrite")) {
			failed += pthread_rwlock_trywrlock(&rwlock) != 0;
			pthread_rwlock_unlock(&rwlock);
		} else if (!strcmp(kind, "rwlock-tryread")) {
			failed += pthread_rwlock_tryrdlock(&rwlock) != 0;
			pthread_rwlock_unlock(&rwlock);
		} else if (!strcmp(kind, "rwlock-trywrite-fail")) {
			failed += pthread_rwlock_trywrlock(&rwlock) != 0;
		} else if (!strcmp(kind, "spin")) {
			pthread_spin_lock(&spin);
			pthread_spin_unlock(&spin);
		} else {
			fprintf(stderr, "pairs: unknown kind %s\n", kind);
			return 2;
		}
	}
	handshake("done");
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"kind\":\"%s\",\"n\":%ld,\"failed\":%ld}\n", (int)getpid(), kind, n,
	       failed);
	return 0;
}
