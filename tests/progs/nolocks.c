/*
 * nolocks: a multithreaded program in which forkhazard finds no lock
 * function (built static with musl: its stdio locks are not pthread's).
 * Starts a thread, joins it, stays 300 ms (for the tracer to look at it).
 */
#include <pthread.h>
#include <time.h>

static void *run(void *arg)
{
	return arg;
}

int main(void)
{
	struct timespec ts = { 0, 300 * 1000000L };
	pthread_t t;

	pthread_create(&t, NULL, run, NULL);
	pthread_join(t, NULL);
	nanosleep(&ts, NULL);
	return 0;
}
