/*
 * spool-bench.c: a micro-benchmark of the spool's append path.  Prints
 * the appends per second with 1 and 16 threads appending at once, the
 * commits (flushes) per acknowledged append, and the disk's fdatasync
 * latency for comparison.  Prints figures; never fails on them.
 *
 * Usage: spool-bench [DIR] [APPENDS_PER_THREAD]
 * DIR (default: a new directory under $TMPDIR or /tmp) must be on the
 * disk to measure; it is removed at the end when the benchmark made it.
 */
#include <config.h>

#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "spool.h"

struct arg {
	struct podio_spool *spool;
	int thread;
	int count;
	int failed;
	double *lat;          /* count latencies, seconds */
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *
appender(void *p)
{
	struct arg *a = p;
	struct podio_spool_record r;
	char json[256];
	double t0;
	int i;

	for (i = 0; i < a->count; i++) {
		memset(&r, 0, sizeof(r));
		snprintf(json, sizeof(json), "{\"type\":\"item.update\","
		    "\"hook_id\":1,\"item_id\":%d,\"item_revision_id\":%d,"
		    "\"params\":{\"type\":\"item.update\"}}", a->thread, i);
		r.type = "item.update";
		r.has = PODIO_HAS_HOOK_ID | PODIO_HAS_ITEM_ID |
		    PODIO_HAS_ITEM_REVISION_ID;
		r.hook_id = 1;
		r.item_id = (uint64_t)a->thread + 1;
		r.item_revision_id = (uint64_t)i + 1;
		r.event_json = json;
		r.event_len = strlen(json);
		t0 = now_s();
		if (podio_spool_append(a->spool, &r, NULL, NULL, 0) != PODIO_OK)
			a->failed++;
		a->lat[i] = now_s() - t0;
	}
	return NULL;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts the n latencies of v and prints p50, p99 and the maximum. */
static void
print_latency(double *v, size_t n)
{
	if (n == 0)
		return;
	qsort(v, n, sizeof(*v), cmp_d);
	printf("           latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
	    v[n / 2] * 1000.0, v[(n * 99) / 100] * 1000.0,
	    v[n - 1] * 1000.0);
}

/* Runs nthreads appenders of count appends each on a fresh spool in
 * dir/sub and prints one line. */
static int
run(const char *dir, const char *sub, int nthreads, int count)
{
	struct podio_spool *s = NULL;
	struct podio_spool_stats st;
	struct arg args[64];
	pthread_t th[64];
	char path[1024], err[256] = "";
	double t0, dt, *lat;
	int i, failed = 0;

	if (nthreads > 64 || (lat = calloc((size_t)nthreads * (size_t)count,
	    sizeof(double))) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (podio_spool_open(path, &s, err, sizeof(err)) != PODIO_OK) {
		fprintf(stderr, "spool-bench: %s\n", err);
		free(lat);
		return -1;
	}
	t0 = now_s();
	for (i = 0; i < nthreads; i++) {
		args[i].spool = s;
		args[i].thread = i;
		args[i].count = count;
		args[i].failed = 0;
		args[i].lat = lat + (size_t)i * (size_t)count;
		pthread_create(&th[i], NULL, appender, &args[i]);
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		failed += args[i].failed;
	}
	dt = now_s() - t0;
	podio_spool_stats(s, &st);
	printf("%2d thread%s: %6llu appends in %.2f s = %8.0f appends/s, "
	    "%5llu commits, %.3f commits (fdatasyncs) per append, largest "
	    "commit %llu%s\n", nthreads, nthreads == 1 ? " " : "s",
	    (unsigned long long)st.appends, dt, (double)st.appends / dt,
	    (unsigned long long)st.commits,
	    st.appends ? (double)st.commits / (double)st.appends : 0.0,
	    (unsigned long long)st.max_batch, failed ? " (FAILURES)" : "");
	print_latency(lat, (size_t)nthreads * (size_t)count);
	free(lat);
	podio_spool_close(s);
	return 0;
}

/*
 * nprocs processes, each with its own handle (as CGI or mod_fcgid run
 * the handler), append count events each at once: no group commit
 * between them, only SQLite's locking.
 */
static int
run_procs(const char *dir, const char *sub, int nprocs, int count)
{
	struct podio_spool *s = NULL;
	char path[1024], err[256] = "";
	double t0, dt, *lat;
	size_t n = 0;
	int fds[64][2], i, status, failed = 0;
	pid_t pids[64];

	if (nprocs > 64 || (lat = calloc((size_t)nprocs * (size_t)count,
	    sizeof(double))) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (podio_spool_open(path, &s, err, sizeof(err)) != PODIO_OK) {
		fprintf(stderr, "spool-bench: %s\n", err);
		free(lat);
		return -1;
	}
	podio_spool_close(s);
	fflush(stdout);
	t0 = now_s();
	for (i = 0; i < nprocs; i++) {
		if (pipe(fds[i]) == -1)
			return -1;
		if ((pids[i] = fork()) == 0) {
			struct arg a;

			close(fds[i][0]);
			a.thread = i;
			a.count = count;
			a.failed = 0;
			a.lat = lat;
			if (podio_spool_open(path, &a.spool, NULL, 0) !=
			    PODIO_OK)
				_exit(2);
			appender(&a);
			podio_spool_close(a.spool);
			if (write(fds[i][1], lat, (size_t)count *
			    sizeof(double)) < 0)
				_exit(3);
			_exit(a.failed ? 1 : 0);
		}
		close(fds[i][1]);
	}
	for (i = 0; i < nprocs; i++) {
		ssize_t r;
		size_t want = (size_t)count * sizeof(double), got = 0;

		while (got < want && (r = read(fds[i][0], (char *)(lat + n) +
		    got, want - got)) > 0)
			got += (size_t)r;
		n += got / sizeof(double);
		close(fds[i][0]);
		waitpid(pids[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	dt = now_s() - t0;
	printf("%2d procs  : %6zu appends in %.2f s = %8.0f appends/s, one "
	    "handle each%s\n", nprocs, n, dt, (double)n / dt,
	    failed ? " (FAILURES)" : "");
	print_latency(lat, n);
	free(lat);
	return 0;
}

/* The disk's fdatasync latency: n small writes each followed by one. */
static void
fsync_latency(const char *dir, int n)
{
	char path[1024];
	double t0;
	int fd, i;

	snprintf(path, sizeof(path), "%s/fsync-probe", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) == -1)
		return;
	t0 = now_s();
	for (i = 0; i < n; i++)
		if (write(fd, "0123456789abcdef", 16) != 16 ||
		    fdatasync(fd) == -1)
			break;
	printf("disk: fdatasync of a small write takes %.3f ms\n",
	    (now_s() - t0) * 1000.0 / (i ? i : 1));
	close(fd);
	unlink(path);
}

int
main(int argc, char **argv)
{
	char dir[512], cmd[600];
	const char *t = getenv("TMPDIR");
	int count = argc > 2 ? atoi(argv[2]) : 300, made = 0;

	if (count <= 0)
		count = 300;
	if (argc > 1)
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	else {
		snprintf(dir, sizeof(dir), "%s/spool-bench-XXXXXX",
		    t != NULL && t[0] == '/' ? t : "/tmp");
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			return 1;
		}
		made = 1;
	}
	podio_log_set_level(PODIO_LOG_WARN);
	fsync_latency(dir, 200);
	run(dir, "one", 1, count * 4);
	run(dir, "sixteen", 16, count);
	run_procs(dir, "procs", 16, count / 4 > 0 ? count / 4 : 1);
	if (made) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "spool-bench: could not remove %s\n",
			    dir);
	}
	return 0;
}
