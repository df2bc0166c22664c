/*
 * forkhazard's demo: the classic fork hazard, on purpose.
 *
 * A worker thread refreshes a cache under cache_lock. The main thread forks
 * a child to write a report; the child reads the cache, so it takes
 * cache_lock. If the fork happens while the worker holds the lock, the child
 * inherits it locked, with no worker thread to release it: it hangs forever.
 * Here the worker holds the lock long enough that the fork always lands in
 * that window. The demo kills its hung child after two seconds.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static int cache_entries;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void cache_refresh(void)
{
	pthread_mutex_lock(&cache_lock);
	cache_entries++;
	sleep_ms(500);		/* a slow refresh, lock held */
	pthread_mutex_unlock(&cache_lock);
}

static void *refresher_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "refresher");
	for (int i = 0; i < 4; i++) {
		cache_refresh();
		sleep_ms(10);
	}
	return NULL;
}

static void write_report(void)
{
	pthread_mutex_lock(&cache_lock);	/* inherited locked: never returns */
	printf("report: %d cache entries\n", cache_entries);
	pthread_mutex_unlock(&cache_lock);
}

static pid_t spawn_reporter(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		write_report();
		_exit(0);
	}
	return pid;
}

int main(void)
{
	pthread_t refresher;
	int status;
	pid_t child;

	pthread_create(&refresher, NULL, refresher_main, NULL);
	sleep_ms(100);		/* the refresher is inside cache_refresh() now */
	child = spawn_reporter();
	for (int i = 0; i < 20 && waitpid(child, &status, WNOHANG) == 0; i++)
		sleep_ms(100);
	if (waitpid(child, &status, WNOHANG) == 0) {
		printf("demo: child %d hung on the inherited cache_lock; killing it\n", (int)child);
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	pthread_join(refresher, NULL);
	return 0;
}
