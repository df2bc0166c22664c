/*
 * libfhlock.so: a library with its own lock, for --lock-fn tests. A futex
 * word: 0 free, else the owner's TID (so a child's wait on it is a futex
 * wait, a confirmed deadlock). fh_lock_try returns 0 when it took the lock.
 */
#include <linux/futex.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

struct fh_lock {
	atomic_int word;
};

int fh_lock_try(struct fh_lock *l)
{
	int expected = 0;

	return atomic_compare_exchange_strong(&l->word, &expected, (int)syscall(SYS_gettid)) ? 0 : -1;
}

void fh_lock_acquire(struct fh_lock *l)
{
	int seen;

	while (fh_lock_try(l)) {
		seen = atomic_load(&l->word);
		if (seen)
			syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, seen, NULL, NULL, 0);
	}
}

void fh_lock_release(struct fh_lock *l)
{
	atomic_store(&l->word, 0);
	syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
