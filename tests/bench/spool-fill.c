/*
 * spool-fill.c: fills a spool with item events for the benchmark
 * (tests/bench/ack), as deliveries would have: the same mix as ack.lua's
 * item scenario (of every 5 events, 3 item.update of an item of the pool
 * 1-2000 with a new revision each, one item.create and one item.delete of
 * a new item), each parsed from a form body and appended with
 * podio_spool_append_delivery(), from 16 threads sharing one handle (so
 * that appends share commits, as the server's request threads do).
 *
 * Usage: spool-fill DIR COUNT [RUN [MIX]]
 * RUN (default 99) keeps the new items' ids apart from those of ack.lua's
 * runs: they start at RUN * 1e10.  MIX "import" makes every event an
 * item.update of a new item (an import: one event per item, every item
 * to fetch) instead of the mix above.  Prints the appends per second;
 * exits 1 when an append failed.
 */
#include <config.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "podio.h"
#include "spool.h"

#define FILL_THREADS 16
#define FILL_POOL 2000

struct filler {
	struct podio_spool *spool;
	uint64_t base;          /* the first id of this thread's new items */
	unsigned seed;
	long count;
	long failed;
	int import;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Appends one delivery made of the form body; 0 on success. */
static int
fill_one(struct podio_spool *spool, const char *body)
{
	struct podio_params *params;
	struct podio_delivery *d = NULL;
	char err[256];
	int rc;

	if ((params = podio_params_new(0)) == NULL)
		return -1;
	if (podio_params_parse(params, body, strlen(body), NULL) != PODIO_OK) {
		podio_params_free(params);
		return -1;
	}
	if (podio_delivery_new(params, &d, err, sizeof(err)) != PODIO_OK) {
		fprintf(stderr, "spool-fill: %s\n", err);
		return -1;
	}
	rc = podio_spool_append_delivery(spool, d, NULL, err, sizeof(err));
	if (rc != PODIO_OK)
		fprintf(stderr, "spool-fill: %s\n", err);
	podio_delivery_free(d);
	return rc == PODIO_OK ? 0 : -1;
}

static void *
filler_run(void *p)
{
	struct filler *f = p;
	char body[256];
	uint64_t id;
	long i;

	for (i = 1; i <= f->count; i++) {
		id = f->base + (uint64_t)i;
		switch (f->import ? 2 : i % 5) {
		case 0:
			snprintf(body, sizeof(body), "type=item.create&"
			    "hook_id=1001&item_id=%llu&item_revision_id=1",
			    (unsigned long long)id);
			break;
		case 1:
			snprintf(body, sizeof(body), "type=item.delete&"
			    "hook_id=1001&item_id=%llu",
			    (unsigned long long)id);
			break;
		default:
			if (f->import)
				snprintf(body, sizeof(body), "type=item.update&"
				    "hook_id=1001&item_id=%llu&"
				    "item_revision_id=1",
				    (unsigned long long)id);
			else
				snprintf(body, sizeof(body), "type=item.update&"
				    "hook_id=1001&item_id=%u&"
				    "item_revision_id=%llu",
				    1u + (unsigned)rand_r(&f->seed) % FILL_POOL,
				    (unsigned long long)id);
			break;
		}
		if (fill_one(f->spool, body) != 0)
			f->failed++;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	struct podio_spool *spool = NULL;
	struct filler f[FILL_THREADS];
	pthread_t th[FILL_THREADS];
	char err[256] = "";
	long count, failed = 0;
	uint64_t run = 99;
	double t0, dt;
	int i, import;

	if (argc < 3 || argc > 5 || (count = atol(argv[2])) <= 0 ||
	    (argc == 5 && strcmp(argv[4], "import") != 0 &&
	    strcmp(argv[4], "mix") != 0)) {
		fprintf(stderr, "usage: spool-fill DIR COUNT [RUN [MIX]]\n");
		return 2;
	}
	if (argc >= 4)
		run = strtoull(argv[3], NULL, 10);
	import = argc == 5 && strcmp(argv[4], "import") == 0;
	if (podio_spool_open(argv[1], &spool, err, sizeof(err)) != PODIO_OK) {
		fprintf(stderr, "spool-fill: %s\n", err);
		return 1;
	}
	t0 = now_s();
	for (i = 0; i < FILL_THREADS; i++) {
		f[i].spool = spool;
		f[i].base = run * 10000000000ull +
		    (uint64_t)(i + 1) * 100000000ull;
		f[i].seed = (unsigned)i * 7919u + 1u;
		f[i].count = count / FILL_THREADS +
		    (i < count % FILL_THREADS ? 1 : 0);
		f[i].failed = 0;
		f[i].import = import;
		if (pthread_create(&th[i], NULL, filler_run, &f[i]) != 0) {
			fprintf(stderr, "spool-fill: cannot start a thread\n");
			return 1;
		}
	}
	for (i = 0; i < FILL_THREADS; i++) {
		pthread_join(th[i], NULL);
		failed += f[i].failed;
	}
	dt = now_s() - t0;
	podio_spool_close(spool);
	printf("%ld events appended in %.1f s (%.0f/s)%s\n", count - failed,
	    dt, (double)(count - failed) / dt, failed ? ", some FAILED" : "");
	return failed ? 1 : 0;
}
