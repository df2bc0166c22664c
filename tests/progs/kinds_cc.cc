/*
 * kinds_cc: a worker holds a std::mutex, or a std::shared_mutex exclusively
 * or shared, while main forks. `kinds_cc [--child=lock] [--hang-ms=N]
 * mutex|shared-write|shared-read`; the child takes it (exclusively for a
 * shared-read hold, shared for a shared-write hold). One JSON line of facts.
 */
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <csignal>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static std::mutex mtx;
static std::shared_mutex smtx;
static std::atomic<int> stage, release_all, holder_tid;

int main(int argc, char **argv)
{
	bool lock_child = false;
	int hang_ms = 3000, status = 0, i;
	const char *kind = nullptr;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--child=lock"))
			lock_child = true;
		else if (!strncmp(argv[i], "--hang-ms=", 10))
			hang_ms = atoi(argv[i] + 10);
		else
			kind = argv[i];
	}
	if (!kind)
		return 2;
	std::string k(kind);
	std::thread t([&] {
		holder_tid = (int)syscall(SYS_gettid);
		if (k == "mutex")
			mtx.lock();
		else if (k == "shared-write")
			smtx.lock();
		else
			smtx.lock_shared();
		stage = 1;
		while (!release_all)
			std::this_thread::sleep_for(std::chrono::milliseconds(1));
		if (k == "mutex")
			mtx.unlock();
		else if (k == "shared-write")
			smtx.unlock();
		else
			smtx.unlock_shared();
	});
	while (!stage)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	pid_t child = fork();
	if (child == 0) {
		if (lock_child) {
			if (k == "mutex")
				mtx.lock();
			else if (k == "shared-write")
				smtx.lock_shared();
			else
				smtx.lock();
		}
		_exit(0);
	}
	for (i = 0; i < hang_ms / 10; i++) {
		if (waitpid(child, &status, WNOHANG) == child)
			break;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
	if (i == hang_ms / 10) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	release_all = 1;
	t.join();
	printf("{\"pid\":%d,\"child\":%d,\"child_killed\":%s,\"lock\":\"%p\",\"holder_tid\":%d}\n",
	       (int)getpid(), (int)child,
	       WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "true" : "false",
	       k == "mutex" ? (void *)&mtx : (void *)&smtx, holder_tid.load());
	return 0;
}
