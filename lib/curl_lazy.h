/*
 * curl_lazy.h: the libcurl functions lib/http.c and lib/podio.c use.
 * Include it instead of <curl/curl.h>, after <config.h>.
 *
 * In a normal build it is <curl/curl.h> and nothing more.  Built with
 * --enable-lazy-libcurl (PODIO_LAZY_CURL), the program is not linked
 * with libcurl: the names below become wrappers (lib/curl_lazy.c) that
 * load libcurl.so.4 with dlopen() the first time one is called, so that
 * a process that makes no API call (most CGI runs) never loads libcurl
 * and the ~30 libraries it needs.  Internal.
 */
#ifndef PODIO_CURL_LAZY_H
#define PODIO_CURL_LAZY_H

#include <stddef.h>

#ifdef PODIO_LAZY_CURL
/* The type-checking macros of GCC builds (curl/typecheck-gcc.h) would
 * take the place of the names mapped below. */
#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK 1
#endif
#endif
#include <curl/curl.h>

#ifdef PODIO_LAZY_CURL

/*
 * Loads libcurl.so.4 and calls curl_global_init(), once per process
 * (thread-safe).  Returns 0 when libcurl is usable; else -1, with
 * "cannot load libcurl.so.4: REASON" in msg (n bytes, NUL-terminated;
 * msg may be NULL).  The first failure is logged once.
 */
int podio__curl_load(char *msg, size_t n);
/* curl_global_cleanup() when libcurl was loaded; nothing otherwise.
 * Once, from main(), after every thread is done (as curl demands). */
void podio__curl_global_cleanup(void);

/* The wrappers.  Every one first makes sure libcurl is loaded; when it
 * cannot be, they fail as the real function does on failure (NULL,
 * CURLE_FAILED_INIT, -1) and the ones that free do nothing. */
CURL *podio__curl_easy_init(void);
CURLcode podio__curl_easy_setopt(CURL *curl, CURLoption option, ...);
CURLcode podio__curl_easy_perform(CURL *curl);
CURLcode podio__curl_easy_getinfo(CURL *curl, CURLINFO info, ...);
void podio__curl_easy_cleanup(CURL *curl);
void podio__curl_easy_reset(CURL *curl);
const char *podio__curl_easy_strerror(CURLcode code);
struct curl_slist *podio__curl_slist_append(struct curl_slist *list,
    const char *string);
void podio__curl_slist_free_all(struct curl_slist *list);
time_t podio__curl_getdate(const char *p, const time_t *unused);

/* curl.h defines the two variadic ones as macros that count arguments. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#define curl_easy_init podio__curl_easy_init
#define curl_easy_setopt podio__curl_easy_setopt
#define curl_easy_perform podio__curl_easy_perform
#define curl_easy_getinfo podio__curl_easy_getinfo
#define curl_easy_cleanup podio__curl_easy_cleanup
#define curl_easy_reset podio__curl_easy_reset
#define curl_easy_strerror podio__curl_easy_strerror
#define curl_slist_append podio__curl_slist_append
#define curl_slist_free_all podio__curl_slist_free_all
#define curl_getdate podio__curl_getdate

#else /* !PODIO_LAZY_CURL */

/* Linked: libcurl is always there. */
static inline int
podio__curl_load(char *msg, size_t n)
{
	(void)msg;
	(void)n;
	return 0;
}

#endif /* PODIO_LAZY_CURL */

#endif
