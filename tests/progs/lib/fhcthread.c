/*
 * libfhcthread.so: a thread of C code, with no Python in it, that takes a
 * pthread mutex and keeps it, for a Python program to start through
 * ctypes (tests/progs/py_fork_hang.py cthread): the lock a C extension's
 * own thread holds.
 */
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static volatile int holder_tid;

static void *hold(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&held);
	holder_tid = (int)syscall(SYS_gettid);
	for (;;)
		pause();
	return NULL;
}

/* Start the thread; 0 once it holds the mutex. */
int fh_cthread_start(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, hold, NULL))
		return -1;
	while (!holder_tid)
		usleep(1000);
	return 0;
}

int fh_cthread_tid(void)
{
	return holder_tid;
}

void *fh_cthread_mutex(void)
{
	return &held;
}
