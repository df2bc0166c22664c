/*
 * libfhworker.so: a library that starts a worker thread of its own, as
 * OpenBLAS or gRPC do behind a program's back: what a fork event's list of
 * other threads names by its start routine and library.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int worker_tid;

__attribute__((noinline)) void *fh_worker_main(void *arg)
{
	(void)arg;
	atomic_store(&worker_tid, (int)syscall(SYS_gettid));
	for (;;)
		pause();
	return NULL;
}

/* Start the worker; its TID once it runs. */
int fh_worker_start(void)
{
	pthread_t th;

	if (pthread_create(&th, NULL, fh_worker_main, NULL))
		return -1;
	pthread_detach(th);
	while (!atomic_load(&worker_tid))
		usleep(1000);
	return atomic_load(&worker_tid);
}
