/*
 * sync-count.c: an LD_PRELOAD shim for the acknowledgement benchmark
 * (tests/bench/ack).  It counts the fdatasync() and fsync() calls of the
 * process it is loaded into, and the time they take, in a small file
 * shared with the benchmark, which reads it before and after each run.
 * It also counts the blocking exclusive flock() calls and the time spent
 * in them: the spool's writers queue on such a lock before each write
 * transaction, so that time is the wait for the write lock.
 *
 * Calls are counted apart for request threads (a FastCGI server's
 * workers, which append to the spool before answering: podio-webhook's
 * threads named "pw-worker", or threads that have called libfcgi's
 * FCGX_Accept_r(), in the reference server) and for every other thread
 * (podio-webhook's spool processors).  FCGX_Accept_r() is interposed only
 * to mark its caller; it passes straight through.
 *
 * The file is named by PODIO_BENCH_SYNC_COUNTS; it is created when
 * missing and must not be shared by two benchmarks at once.  It holds
 * SYNC_COUNTERS native-endian 64-bit counters, in this order: for
 * request threads, then for other threads: fdatasync calls, nanoseconds
 * in fdatasync, fsync calls, nanoseconds in fsync, flock(LOCK_EX) calls,
 * nanoseconds in them.  Processes that
 * inherit the variable (children) add to the same counters.  Without the
 * variable, or when the file cannot be mapped, the calls only pass
 * through.
 *
 * The benchmark compiles this file itself (cc -shared -fPIC ... -ldl),
 * outside the build system: it is not part of the product, hence no
 * config.h.
 */
#define _GNU_SOURCE
#include <sys/file.h>
#include <sys/mman.h>

#include <dlfcn.h>
#include <pthread.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

/* Offsets in a group of four counters, and the groups. */
enum {
	SYNC_FDATASYNC_CALLS,
	SYNC_FDATASYNC_NS,
	SYNC_FSYNC_CALLS,
	SYNC_FSYNC_NS,
	SYNC_FLOCK_CALLS,
	SYNC_FLOCK_NS,
	SYNC_GROUP
};
#define SYNC_REQUEST  0
#define SYNC_OTHER    SYNC_GROUP
#define SYNC_COUNTERS (2 * SYNC_GROUP)

typedef int (*sync_fn)(int);
typedef int (*sync_accept_fn)(void *);

int fdatasync(int fd);
int fsync(int fd);
int flock(int fd, int op);
int FCGX_Accept_r(void *request);

/* The shim's own state: it lives as long as the process, set once in the
 * constructor before any thread of the program exists, except the
 * thread's mark, which only that thread writes. */
static _Atomic uint64_t *sync_counters;
static sync_fn sync_real_fdatasync;
static sync_fn sync_real_fsync;
static int (*sync_real_flock)(int, int);
static sync_accept_fn sync_real_accept;
static _Thread_local int sync_request_thread;
static _Thread_local int sync_named;

/* Whether the calling thread is a request thread (see above). */
static int
sync_is_request(void)
{
	char name[16];

	if (!sync_named) {
		sync_named = 1;
		if (pthread_getname_np(pthread_self(), name, sizeof(name)) == 0
		    && strcmp(name, "pw-worker") == 0)
			sync_request_thread = 1;
	}
	return sync_request_thread;
}

/* Maps the counters file named by PODIO_BENCH_SYNC_COUNTS and finds the
 * C library's functions. */
__attribute__((constructor)) static void
sync_init(void)
{
	const char *path = getenv("PODIO_BENCH_SYNC_COUNTS");
	size_t len = SYNC_COUNTERS * sizeof(uint64_t);
	void *map;
	int fd;

	sync_real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
	sync_real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
	sync_real_flock = (int (*)(int, int))dlsym(RTLD_NEXT, "flock");
	sync_real_accept = (sync_accept_fn)dlsym(RTLD_NEXT, "FCGX_Accept_r");
	if (path == NULL || *path == '\0')
		return;
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return;
	if (ftruncate(fd, (off_t)len) == 0) {
		map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    0);
		if (map != MAP_FAILED)
			sync_counters = map;
	}
	close(fd);
}

static uint64_t
sync_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Calls fn(fd), counting the call and its time in the calling thread's
 * group at offset calls (and calls + 1 for the time). */
static int
sync_counted(sync_fn fn, int fd, int calls)
{
	uint64_t t0;
	int rc, i;

	if (fn == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (sync_counters == NULL)
		return fn(fd);
	i = (sync_is_request() ? SYNC_REQUEST : SYNC_OTHER) + calls;
	t0 = sync_now_ns();
	rc = fn(fd);
	atomic_fetch_add(&sync_counters[i + 1], sync_now_ns() - t0);
	atomic_fetch_add(&sync_counters[i], 1);
	return rc;
}

int
fdatasync(int fd)
{
	return sync_counted(sync_real_fdatasync, fd, SYNC_FDATASYNC_CALLS);
}

int
fsync(int fd)
{
	return sync_counted(sync_real_fsync, fd, SYNC_FSYNC_CALLS);
}

/* flock(); a blocking exclusive lock is counted with its wait. */
int
flock(int fd, int op)
{
	uint64_t t0;
	int rc, i;

	if (sync_real_flock == NULL) {
		errno = ENOSYS;
		return -1;
	}
	if (sync_counters == NULL || (op & (LOCK_EX | LOCK_NB)) != LOCK_EX)
		return sync_real_flock(fd, op);
	i = (sync_is_request() ? SYNC_REQUEST : SYNC_OTHER) +
	    SYNC_FLOCK_CALLS;
	t0 = sync_now_ns();
	rc = sync_real_flock(fd, op);
	atomic_fetch_add(&sync_counters[i + 1], sync_now_ns() - t0);
	atomic_fetch_add(&sync_counters[i], 1);
	return rc;
}

/* Marks the caller as a request thread, then accepts as libfcgi does.
 * Only reached in a program linked with libfcgi, whose definition the
 * constructor found. */
int
FCGX_Accept_r(void *request)
{
	sync_request_thread = 1;
	if (sync_real_accept == NULL)
		return -1;
	return sync_real_accept(request);
}
