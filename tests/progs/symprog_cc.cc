/*
 * symprog_cc: the C++ case of the symbolization tests. A worker holds a
 * lock in a namespaced method, fhtest::Registry::hold_the_lock(), through an
 * inlined method, while main forks. Prints one JSON line of facts.
 */
#include <atomic>
#include <chrono>
#include <cstdio>
#include <pthread.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace fhtest {

static int lock_line, call_line;

class Registry {
public:
	__attribute__((noinline)) void hold_the_lock();
	std::atomic<int> held{0};
	std::atomic<int> release{0};

private:
	inline __attribute__((always_inline)) void take()
	{
		pthread_mutex_lock(&mu_); lock_line = __LINE__;
	}
	pthread_mutex_t mu_ = PTHREAD_MUTEX_INITIALIZER;
};

void Registry::hold_the_lock()
{
	take(); call_line = __LINE__;
	held = 1;
	for (int i = 0; i < 5000 && !release; i++)
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	pthread_mutex_unlock(&mu_);
}

} // namespace fhtest

int main()
{
	fhtest::Registry reg;
	std::thread worker([&reg] { reg.hold_the_lock(); });

	for (int i = 0; !reg.held; i++) {
		if (i > 5000)
			return 3;
		std::this_thread::sleep_for(std::chrono::milliseconds(1));
	}
	std::this_thread::sleep_for(std::chrono::milliseconds(20));
	pid_t child = fork();
	if (child == 0)
		_exit(0);
	waitpid(child, nullptr, 0);
	reg.release = 1;
	worker.join();
	std::printf("{\"pid\":%d,\"child\":%d,\"lock_line\":%d,\"call_line\":%d}\n", (int)getpid(),
		    (int)child, fhtest::lock_line, fhtest::call_line);
	return 0;
}
