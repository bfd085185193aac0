/*
 * test-http.c: lib/http.c without the network: URL escaping (the
 * library's own, RFC 3986 unreserved characters kept), and, in a build
 * with --enable-lazy-libcurl, that making a handle, escaping and freeing
 * load no libcurl while podio__http_ready() does.  Requests themselves
 * are tested against the simulator (tests/test-client.py).
 */
#include <config.h>

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PODIO_LAZY_CURL
#include <curl/curl.h>
#endif

#include "podio.h"
#include "http.h"
#include "tap.h"

/* 1 when escaping in gives want. */
static int
escapes_to(struct podio__http *h, const char *in, const char *want)
{
	char *e = podio__http_escape(h, in);
	int ok = e != NULL && strcmp(e, want) == 0;

	if (!ok)
		tap_diag("escape(\"%s\"): got \"%s\", want \"%s\"", in,
		    e != NULL ? e : "(null)", want);
	free(e);
	return ok;
}

static void
test_escape(struct podio__http *h)
{
	tap_ok(escapes_to(h, "", ""), "escape: empty");
	tap_ok(escapes_to(h, "AZaz09-._~", "AZaz09-._~"),
	    "escape: unreserved characters are kept");
	tap_ok(escapes_to(h, " +/&=?#%:@!$'()*,;[]\"<>\\^`{|}",
	    "%20%2B%2F%26%3D%3F%23%25%3A%40%21%24%27%28%29%2A%2C%3B%5B%5D"
	    "%22%3C%3E%5C%5E%60%7B%7C%7D"),
	    "escape: reserved and other ASCII become %%XX (upper case)");
	tap_ok(escapes_to(h, "\x01\x1f\x7f\n\t", "%01%1F%7F%0A%09"),
	    "escape: control characters");
	tap_ok(escapes_to(h, "caf\xc3\xa9 \xe2\x82\xac\xff",
	    "caf%C3%A9%20%E2%82%AC%FF"), "escape: every byte of UTF-8 and "
	    "of invalid text");
	tap_ok(escapes_to(NULL, "a b", "a%20b"), "escape: without a handle");
	tap_ok(podio__http_escape(h, NULL) == NULL, "escape: NULL gives NULL");
}

#ifndef PODIO_LAZY_CURL
/* The escaping replaced curl_easy_escape(): both agree on every byte. */
static void
test_escape_like_curl(struct podio__http *h)
{
	char in[256], *mine, *theirs;
	int i, ok;

	for (i = 1; i < 256; i++)
		in[i - 1] = (char)i;
	in[255] = '\0';
	mine = podio__http_escape(h, in);
	theirs = curl_easy_escape(NULL, in, 0);
	ok = mine != NULL && theirs != NULL && strcmp(mine, theirs) == 0;
	tap_ok(ok, "escape: as curl_easy_escape() for bytes 1 to 255");
	if (!ok)
		tap_diag("mine:   %s\ncurl's: %s", mine != NULL ? mine : "-",
		    theirs != NULL ? theirs : "-");
	free(mine);
	curl_free(theirs);
}
#endif

/* 1 when libcurl.so.4 is mapped in this process (loads nothing). */
static int
curl_mapped(void)
{
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_NOLOAD);

	if (lib == NULL)
		return 0;
	dlclose(lib);   /* drops only the reference NOLOAD took */
	return 1;
}

int
main(void)
{
	struct podio__http_opts opts;
	struct podio__http *h;
	char why[256];

	if (podio_global_init() != PODIO_OK) {
		printf("Bail out! podio_global_init failed\n");
		return 1;
	}
	memset(&opts, 0, sizeof(opts));
	if ((h = podio__http_new(&opts)) == NULL) {
		printf("Bail out! podio__http_new failed\n");
		return 1;
	}
	test_escape(h);
	podio__http_free(h);
#ifdef PODIO_LAZY_CURL
	tap_ok(!curl_mapped(), "a handle made, used to escape and freed "
	    "loaded no libcurl");
	why[0] = '\0';
	tap_ok(podio__http_ready(why, sizeof(why)) == 0 && curl_mapped(),
	    "podio__http_ready() loads libcurl");
	if (why[0] != '\0')
		tap_diag("%s", why);
#else
	if ((h = podio__http_new(&opts)) != NULL)
		test_escape_like_curl(h);
	podio__http_free(h);
	tap_ok(podio__http_ready(why, sizeof(why)) == 0 && curl_mapped(),
	    "linked libcurl is ready");
#endif
	podio_global_cleanup();
	return tap_done();
}
