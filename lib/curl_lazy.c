/*
 * curl_lazy.c: libcurl loaded with dlopen() at its first use (built with
 * --enable-lazy-libcurl; see curl_lazy.h).  A CGI process starts once per
 * delivery and most deliveries make no API call: linking libcurl would
 * make every one of them load it and its ~30 libraries (TLS, Kerberos,
 * LDAP, ...), which costs more than the rest of the run.
 *
 * The library is loaded once per process under pthread_once(), then
 * curl_global_init() is called there, so that podio_global_init() does
 * no curl work in this build.  Other threads may be running by then (a
 * FastCGI server's): they wait in pthread_once() while it runs, and
 * libcurl 7.84 and later make curl_global_init() thread-safe anyway
 * (CURL_VERSION_THREADSAFE); an older one initialises its TLS library
 * there, which nothing else in this program does.  It is never
 * dlclose()d: curl keeps process-wide state (its TLS backend's) until
 * exit, and tools such as valgrind and ASan need the library mapped at
 * exit to name its frames.
 *
 * The state below is the one process-wide exception of the library,
 * like curl's own global state: written once inside pthread_once(),
 * read only after it (which orders the reads after the writes).
 */
#include <config.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "curl_lazy.h"
#include "log.h"
#include "util.h"

/* Compiled into the library only with --enable-lazy-libcurl (Makefile.am);
 * builds that compile every lib/ file (the fuzzing harnesses') get
 * nothing from it otherwise. */
#ifdef PODIO_LAZY_CURL

#define CURL_LAZY_SONAME "libcurl.so.4"

/* A generic function pointer: what a FUNCTIONPOINT option carries is read
 * as one and passed on unchanged (every POSIX ABI passes all function
 * pointers alike, and POSIX requires them to convert to and from void *
 * for dlsym()). */
typedef void (*curl_lazy_fn)(void);

static struct {
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_perform)(CURL *);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	void (*easy_reset)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
	time_t (*getdate)(const char *, const time_t *);
	CURLcode (*global_init)(long);
	void (*global_cleanup)(void);
} curl_fn;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static int curl_loaded;
static char curl_error[384];

/* Sets *slot to the address of name in lib.  Returns 0, or -1 with the
 * reason in curl_error.  memcpy: converting the void * of dlsym() to a
 * function pointer is what POSIX defines; the copy says so without a
 * cast compilers warn about. */
static int
curl_lazy_sym(void *lib, const char *name, void *slot)
{
	const char *why;
	void *p;

	(void)dlerror();
	if ((p = dlsym(lib, name)) == NULL) {
		why = dlerror();
		snprintf(curl_error, sizeof(curl_error), "cannot load "
		    CURL_LAZY_SONAME ": %s", why != NULL ? why : name);
		return -1;
	}
	memcpy(slot, &p, sizeof(p));
	return 0;
}

/* pthread_once()'s routine: loads the library, resolves every function,
 * initialises curl.  Leaves curl_loaded at 0 and says why in curl_error
 * (logged here, hence once per process) when any step fails. */
static void
curl_lazy_load_once(void)
{
	const char *why;
	void *lib;
	CURLcode cc;

	_Static_assert(sizeof(void *) == sizeof(curl_lazy_fn),
	    "function pointers are not the size of void *");
	(void)dlerror();
	/* RTLD_NOW: a libcurl too old for one of our calls fails here,
	 * not in the middle of a request.  RTLD_LOCAL: its symbols stay
	 * out of the way of anything else the process loads. */
	if ((lib = dlopen(CURL_LAZY_SONAME, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		why = dlerror();
		snprintf(curl_error, sizeof(curl_error), "cannot load "
		    CURL_LAZY_SONAME ": %s", why != NULL ? why : "not found");
		goto fail;
	}
#define CURL_LAZY_SYM(field, name) \
	if (curl_lazy_sym(lib, (name), &curl_fn.field) != 0) \
		goto fail
	CURL_LAZY_SYM(easy_init, "curl_easy_init");
	CURL_LAZY_SYM(easy_setopt, "curl_easy_setopt");
	CURL_LAZY_SYM(easy_perform, "curl_easy_perform");
	CURL_LAZY_SYM(easy_getinfo, "curl_easy_getinfo");
	CURL_LAZY_SYM(easy_cleanup, "curl_easy_cleanup");
	CURL_LAZY_SYM(easy_reset, "curl_easy_reset");
	CURL_LAZY_SYM(easy_strerror, "curl_easy_strerror");
	CURL_LAZY_SYM(slist_append, "curl_slist_append");
	CURL_LAZY_SYM(slist_free_all, "curl_slist_free_all");
	CURL_LAZY_SYM(getdate, "curl_getdate");
	CURL_LAZY_SYM(global_init, "curl_global_init");
	CURL_LAZY_SYM(global_cleanup, "curl_global_cleanup");
#undef CURL_LAZY_SYM
	if ((cc = curl_fn.global_init(CURL_GLOBAL_DEFAULT)) != CURLE_OK) {
		snprintf(curl_error, sizeof(curl_error), "cannot initialise "
		    CURL_LAZY_SONAME ": %s", curl_fn.easy_strerror(cc));
		goto fail;
	}
	curl_loaded = 1;
	podio__debug("http: loaded " CURL_LAZY_SONAME);
	return;
fail:
	/* lib stays open even then: nothing of it was called but
	 * possibly its constructors, which dlclose() would not undo. */
	podio__err("%s", curl_error);
}

/* 1 when libcurl is loaded and initialised (loading it on first use). */
static int
curl_ready(void)
{
	(void)pthread_once(&curl_once, curl_lazy_load_once);
	return curl_loaded;
}

/* See curl_lazy.h. */
int
podio__curl_load(char *msg, size_t n)
{
	if (curl_ready())
		return 0;
	if (msg != NULL && n > 0)
		podio__strlcpy(msg, curl_error, n);
	return -1;
}

/* See curl_lazy.h.  Never loads libcurl: called from main() after every
 * thread has finished, which orders this read after pthread_once(). */
void
podio__curl_global_cleanup(void)
{
	if (curl_loaded)
		curl_fn.global_cleanup();
}

CURL *
podio__curl_easy_init(void)
{
	return curl_ready() ? curl_fn.easy_init() : NULL;
}

/*
 * curl_easy_setopt() takes one argument whose type the option's number
 * says (curl.h: CURLOPTTYPE_*): long below OBJECTPOINT, a data pointer
 * from OBJECTPOINT (strings, lists and callback data too), a function
 * pointer from FUNCTIONPOINT, a curl_off_t from OFF_T, a struct
 * curl_blob pointer from BLOB.  It is read as that type and passed on.
 */
CURLcode
podio__curl_easy_setopt(CURL *curl, CURLoption option, ...)
{
	va_list ap;
	CURLcode cc;
	long lv;
	void *pv;
	curl_lazy_fn fv;
	curl_off_t ov;

	if (!curl_ready())
		return CURLE_FAILED_INIT;
	va_start(ap, option);
	if (option < CURLOPTTYPE_OBJECTPOINT) {
		lv = va_arg(ap, long);
		cc = curl_fn.easy_setopt(curl, option, lv);
	} else if (option < CURLOPTTYPE_FUNCTIONPOINT) {
		pv = va_arg(ap, void *);
		cc = curl_fn.easy_setopt(curl, option, pv);
	} else if (option < CURLOPTTYPE_OFF_T) {
		fv = va_arg(ap, curl_lazy_fn);
		cc = curl_fn.easy_setopt(curl, option, fv);
	}
#ifdef CURLOPTTYPE_BLOB
	else if (option < CURLOPTTYPE_BLOB) {
#else
	else {
#endif
		ov = va_arg(ap, curl_off_t);
		cc = curl_fn.easy_setopt(curl, option, ov);
	}
#ifdef CURLOPTTYPE_BLOB
	else {
		pv = va_arg(ap, void *);
		cc = curl_fn.easy_setopt(curl, option, pv);
	}
#endif
	va_end(ap);
	return cc;
}

CURLcode
podio__curl_easy_perform(CURL *curl)
{
	return curl_ready() ? curl_fn.easy_perform(curl) : CURLE_FAILED_INIT;
}

/* Every curl_easy_getinfo() takes a pointer to where the answer goes. */
CURLcode
podio__curl_easy_getinfo(CURL *curl, CURLINFO info, ...)
{
	va_list ap;
	void *pv;

	if (!curl_ready())
		return CURLE_FAILED_INIT;
	va_start(ap, info);
	pv = va_arg(ap, void *);
	va_end(ap);
	return curl_fn.easy_getinfo(curl, info, pv);
}

void
podio__curl_easy_cleanup(CURL *curl)
{
	if (curl != NULL && curl_ready())
		curl_fn.easy_cleanup(curl);
}

void
podio__curl_easy_reset(CURL *curl)
{
	if (curl_ready())
		curl_fn.easy_reset(curl);
}

const char *
podio__curl_easy_strerror(CURLcode code)
{
	if (!curl_ready())
		return curl_error;
	return curl_fn.easy_strerror(code);
}

struct curl_slist *
podio__curl_slist_append(struct curl_slist *list, const char *string)
{
	return curl_ready() ? curl_fn.slist_append(list, string) : NULL;
}

/* A list exists only when libcurl made it: nothing to free otherwise. */
void
podio__curl_slist_free_all(struct curl_slist *list)
{
	if (list != NULL && curl_ready())
		curl_fn.slist_free_all(list);
}

time_t
podio__curl_getdate(const char *p, const time_t *unused)
{
	return curl_ready() ? curl_fn.getdate(p, unused) : (time_t)-1;
}

#else /* !PODIO_LAZY_CURL */

/* ISO C wants a declaration in every translation unit. */
typedef int podio__curl_lazy_unused;

#endif /* PODIO_LAZY_CURL */
