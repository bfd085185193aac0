/*
 * test-tokencache.c: the token cache file (lib/tokencache.c) without any
 * network: the round trip, the checks that make a file untrusted (mode,
 * owner, symbolic link, owner key, corrupt contents), dropping a refused
 * token, and the cross-process lock, including a holder killed with
 * SIGKILL.
 */
#include <config.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "podio.h"
#include "tokencache.h"
#include "util.h"
#include "tap.h"

#define OWNER "test-client http://127.0.0.1:1 app:1234"
#define ACCESS "access-7f3a9c1d"
#define REFRESH "refresh-0b5e2d44"

static char dir[256];
static char path[512];
static char logpath[512];

/* Writes text to path with the given mode (after umask: chmod). */
static int
put_file(const char *p, const char *text, mode_t mode)
{
	FILE *f;

	(void)unlink(p);
	if ((f = fopen(p, "w")) == NULL)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0)
		return -1;
	return chmod(p, mode);
}

/* The whole file at p in a static buffer ("" if unreadable). */
static const char *
slurp(const char *p)
{
	static char buf[65536];
	FILE *f;
	size_t n = 0;

	buf[0] = '\0';
	if ((f = fopen(p, "r")) == NULL)
		return buf;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Writes a valid entry for OWNER with the test tokens. */
static enum podio_err
write_good(const char *p)
{
	struct podio__cached_token tok;

	tok.access_token = (char *)ACCESS;
	tok.refresh_token = (char *)REFRESH;
	tok.expires_at_ms = 1900000000000LL;
	tok.refresh_at_ms = 1899999700000LL;
	tok.user_id = 0;
	return podio__tokencache_write(p, OWNER, &tok);
}

/* Loads path for owner, returning the result, the reason in why. */
static enum podio_err
load(const char *owner, char *why, size_t whylen)
{
	struct podio__cached_token tok = { NULL, NULL, 0, 0, 0 };
	enum podio_err rc;

	rc = podio__tokencache_load(path, owner, &tok, why, whylen);
	if (rc != PODIO_OK && tok.access_token != NULL)
		rc = PODIO_ERR_HTTP; /* a failed load must not fill tok */
	podio__cached_token_clear(&tok);
	return rc;
}

/* Runs lock(path, timeout_ms) in a child; 1 if it got the lock, 0 if not,
 * -1 if the child failed otherwise. */
static int
child_locks(long timeout_ms)
{
	pid_t pid;
	int status;

	fflush(NULL);
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		int fd = podio__tokencache_lock(path, timeout_ms);
		_exit(fd >= 0 ? 10 : 11);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status) == 10 ? 1 :
	    WEXITSTATUS(status) == 11 ? 0 : -1;
}

static void
test_round_trip(void)
{
	struct podio__cached_token tok = { NULL, NULL, 0, 0, 0 };
	struct podio__cached_token in;
	struct stat st;

	tap_ok(podio__tokencache_read(path, OWNER, &tok) ==
	    PODIO_ERR_NOT_FOUND, "a missing file reads as not found");
	tap_ok(write_good(path) == PODIO_OK, "write succeeds");
	if (stat(path, &st) == -1)
		st.st_mode = 0;
	tap_ok((st.st_mode & 07777) == 0600,
	    "the written file has mode 0600 (got %04o)",
	    (unsigned)(st.st_mode & 07777));
	tap_ok(podio__tokencache_read(path, OWNER, &tok) == PODIO_OK,
	    "read of the written file succeeds");
	tap_ok(tok.access_token != NULL &&
	    strcmp(tok.access_token, ACCESS) == 0,
	    "access token round-trips");
	tap_ok(tok.refresh_token != NULL &&
	    strcmp(tok.refresh_token, REFRESH) == 0,
	    "refresh token round-trips");
	tap_ok(tok.expires_at_ms == 1900000000000LL &&
	    tok.refresh_at_ms == 1899999700000LL && tok.user_id == 0,
	    "expires_at and refresh_at round-trip exactly, no user_id");
	podio__cached_token_clear(&tok);
	tap_ok(tok.access_token == NULL && tok.refresh_token == NULL,
	    "clear empties the entry");

	in.access_token = (char *)"second";
	in.refresh_token = NULL;
	in.expires_at_ms = 1234;
	in.refresh_at_ms = 1000;
	in.user_id = 4503599627370497ULL;
	tap_ok(podio__tokencache_write(path, OWNER, &in) == PODIO_OK &&
	    podio__tokencache_read(path, OWNER, &tok) == PODIO_OK &&
	    strcmp(tok.access_token, "second") == 0 &&
	    tok.refresh_token == NULL && tok.expires_at_ms == 1234 &&
	    tok.user_id == 4503599627370497ULL,
	    "an entry without a refresh token, with a user id, round-trips "
	    "(rewritten over the old one)");
	podio__cached_token_clear(&tok);
}

/* One untrusted file: checks that it is ignored and that the reason
 * contains want. */
static void
check_ignored(const char *name, const char *want)
{
	char why[256];
	enum podio_err rc;

	rc = load(OWNER, why, sizeof(why));
	tap_ok(rc == PODIO_ERR_INVALID && strstr(why, want) != NULL &&
	    strstr(why, ACCESS) == NULL,
	    "%s: ignored (rc %d, reason \"%s\")", name, (int)rc, why);
}

static void
test_untrusted(void)
{
	char text[1024], half[1024];
	char why[256];
	struct stat st;
	size_t n;

	write_good(path);
	{
		enum podio_err rc = load("other-client http://127.0.0.1:1 "
		    "app:1234", why, sizeof(why));
		tap_ok(rc == PODIO_ERR_INVALID && strstr(why, "another") != NULL,
		    "a cache of another owner is ignored (%s)", why);
	}

	podio__strlcpy(text, slurp(path), sizeof(text));
	n = strlen(text);
	tap_ok(n > 20, "the file has content to truncate");
	memcpy(half, text, n / 2);
	half[n / 2] = '\0';
	put_file(path, half, 0600);
	check_ignored("a truncated file", "JSON");

	put_file(path, "{\"version\":1,,,}", 0600);
	check_ignored("corrupt JSON", "JSON");

	put_file(path, "", 0600);
	check_ignored("an empty file", "empty");

	put_file(path, "[1,2,3]", 0600);
	check_ignored("a JSON array", "object");

	snprintf(text, sizeof(text), "{\"version\":1,\"owner\":\"%s\","
	    "\"access_token\":\"" ACCESS "\",\"refresh_token\":null,"
	    "\"expires_at\":\"1900000000000\",\"refresh_at\":1}", OWNER);
	put_file(path, text, 0600);
	check_ignored("expires_at as a string", "expires_at");

	snprintf(text, sizeof(text), "{\"version\":1,\"owner\":\"%s\","
	    "\"access_token\":12345,\"refresh_token\":null,"
	    "\"expires_at\":1900000000000,\"refresh_at\":1}", OWNER);
	put_file(path, text, 0600);
	check_ignored("access_token as a number", "access_token");

	snprintf(text, sizeof(text), "{\"version\":1,\"owner\":\"%s\","
	    "\"access_token\":\"" ACCESS "\",\"refresh_token\":[],"
	    "\"expires_at\":1900000000000,\"refresh_at\":1}", OWNER);
	put_file(path, text, 0600);
	check_ignored("refresh_token as an array", "refresh_token");

	snprintf(text, sizeof(text), "{\"version\":1,\"owner\":\"%s\","
	    "\"access_token\":\"" ACCESS "\",\"refresh_token\":null,"
	    "\"expires_at\":1900000000000}", OWNER);
	put_file(path, text, 0600);
	check_ignored("refresh_at missing", "refresh_at");

	snprintf(text, sizeof(text), "{\"version\":2,\"owner\":\"%s\","
	    "\"access_token\":\"" ACCESS "\",\"refresh_token\":null,"
	    "\"expires_at\":1900000000000,\"refresh_at\":1}", OWNER);
	put_file(path, text, 0600);
	check_ignored("an unknown version", "version");

	/* The same valid-looking text with mode 0600 is accepted: the cases
	 * above fail for their content, not for the way they were made. */
	snprintf(text, sizeof(text), "{\"version\":1,\"owner\":\"%s\","
	    "\"access_token\":\"" ACCESS "\",\"refresh_token\":null,"
	    "\"expires_at\":1900000000000,\"refresh_at\":1}", OWNER);
	put_file(path, text, 0600);
	tap_ok(load(OWNER, why, sizeof(why)) == PODIO_OK,
	    "a hand-written valid file with mode 0600 is accepted (%s)", why);

	chmod(path, 0644);
	check_ignored("a file readable by group and others (0644)", "0644");
	chmod(path, 0620);
	check_ignored("a file writable by group (0620)", "0620");
	chmod(path, 0600);

	if (geteuid() == 0) {
		if (chown(path, 65534, 65534) == 0) {
			check_ignored("a file owned by another user",
			    "owned by uid 65534");
		} else {
			tap_ok(0, "chown to 65534 failed: %s",
			    strerror(errno));
		}
		(void)chown(path, 0, 0);
	} else {
		tap_skip("not running as root, cannot chown the file to "
		    "another user", "a file owned by another user");
	}

	/* A symbolic link to a perfectly good file is still refused. */
	{
		char target[600];

		snprintf(target, sizeof(target), "%s/real.json", dir);
		write_good(target);
		unlink(path);
		tap_ok(symlink(target, path) == 0 &&
		    lstat(path, &st) == 0 && S_ISLNK(st.st_mode),
		    "made a symbolic link at the cache path");
		check_ignored("a symbolic link", "symbolic link");
		tap_ok(write_good(path) == PODIO_OK &&
		    lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    (st.st_mode & 07777) == 0600,
		    "a write replaces the link with a regular 0600 file");
		unlink(target);
	}

	unlink(path);
	tap_ok(mkdir(path, 0700) == 0, "made a directory at the cache path");
	check_ignored("a directory", "regular file");
	rmdir(path);

	{
		char *big = malloc(PODIO__TOKENCACHE_MAX + 100);

		if (big != NULL) {
			memset(big, ' ', PODIO__TOKENCACHE_MAX + 99);
			big[0] = '{';
			big[PODIO__TOKENCACHE_MAX + 98] = '}';
			big[PODIO__TOKENCACHE_MAX + 99] = '\0';
			put_file(path, big, 0600);
			free(big);
		}
		check_ignored("a file over the size cap", "larger");
	}

	/* A bad file is replaced by the next write, with the right mode. */
	put_file(path, "garbage", 0644);
	tap_ok(write_good(path) == PODIO_OK && stat(path, &st) == 0 &&
	    (st.st_mode & 07777) == 0600 &&
	    load(OWNER, why, sizeof(why)) == PODIO_OK,
	    "a write replaces a 0644 file with a good 0600 one");
}

static void
test_warnings(void)
{
	struct podio__cached_token tok = { NULL, NULL, 0, 0, 0 };
	const char *log;

	/* podio__tokencache_read() warns, naming path and reason. */
	write_good(path);
	chmod(path, 0644);
	tap_ok(podio__tokencache_read(path, OWNER, &tok) ==
	    PODIO_ERR_INVALID && tok.access_token == NULL,
	    "read ignores a 0644 file");
	chmod(path, 0600);
	log = slurp(logpath);
	tap_ok(strstr(log, path) != NULL && strstr(log, "0644") != NULL,
	    "the warning names the path and the mode");
	tap_ok(strstr(slurp(logpath), ACCESS) == NULL &&
	    strstr(slurp(logpath), REFRESH) == NULL,
	    "no warning ever contained a token");
}

static void
test_drop(void)
{
	struct podio__cached_token tok = { NULL, NULL, 0, 0, 0 };
	int fd;

	write_good(path);
	podio__tokencache_drop(path, OWNER, "some-other-token");
	tap_ok(podio__tokencache_read(path, OWNER, &tok) == PODIO_OK &&
	    strcmp(tok.access_token, ACCESS) == 0,
	    "drop of another token leaves the entry alone");
	podio__cached_token_clear(&tok);

	podio__tokencache_drop(path, "other-owner", ACCESS);
	tap_ok(podio__tokencache_read(path, OWNER, &tok) == PODIO_OK &&
	    strcmp(tok.access_token, ACCESS) == 0,
	    "drop for another owner leaves the entry alone");
	podio__cached_token_clear(&tok);

	/* While someone else holds the lock (a child: flock is per open
	 * file, but take it from another process to be realistic) the drop
	 * is skipped: that holder is about to write a new token. */
	fd = podio__tokencache_lock(path, 1000);
	tap_ok(fd >= 0, "lock taken before a drop");
	fflush(NULL);
	{
		pid_t pid = fork();
		int status = 0;

		if (pid == 0) {
			podio__tokencache_drop(path, OWNER, ACCESS);
			_exit(0);
		}
		waitpid(pid, &status, 0);
	}
	tap_ok(podio__tokencache_read(path, OWNER, &tok) == PODIO_OK &&
	    strcmp(tok.access_token, ACCESS) == 0,
	    "a drop while another process holds the lock changes nothing");
	podio__cached_token_clear(&tok);
	podio__tokencache_unlock(fd);

	podio__tokencache_drop(path, OWNER, ACCESS);
	tap_ok(podio__tokencache_read(path, OWNER, &tok) == PODIO_OK &&
	    tok.access_token != NULL && tok.access_token[0] == '\0' &&
	    tok.expires_at_ms == 0,
	    "drop of the held token empties the access token");
	tap_ok(tok.refresh_token != NULL &&
	    strcmp(tok.refresh_token, REFRESH) == 0,
	    "drop keeps the refresh token");
	podio__cached_token_clear(&tok);
	tap_ok(strstr(slurp(path), ACCESS) == NULL,
	    "the dropped token is no longer in the file");
}

static void
test_lock(void)
{
	char lockpath[600];
	struct stat st;
	int fd, fd2, pipefd[2];
	pid_t holder;
	char c;
	int status;

	snprintf(lockpath, sizeof(lockpath), "%s.lock", path);
	unlink(lockpath);
	fd = podio__tokencache_lock(path, 1000);
	tap_ok(fd >= 0, "lock succeeds when nobody holds it");
	if (stat(lockpath, &st) == -1)
		st.st_mode = 0;
	tap_ok(S_ISREG(st.st_mode) &&
	    (st.st_mode & 077) == 0, "the lock file exists with no group or "
	    "other permissions (%04o)", (unsigned)(st.st_mode & 07777));
	tap_ok(child_locks(200) == 0,
	    "a second lock in another process times out while it is held");
	podio__tokencache_unlock(fd);
	tap_ok(child_locks(200) == 1,
	    "the lock can be had again after unlock");

	/* A holder killed with SIGKILL: the kernel releases its flock. */
	if (pipe(pipefd) == -1) {
		tap_ok(0, "pipe: %s", strerror(errno));
		return;
	}
	fflush(NULL);
	if ((holder = fork()) == 0) {
		int hfd = podio__tokencache_lock(path, 1000);

		c = hfd >= 0 ? 'L' : 'F';
		if (write(pipefd[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(pipefd[1]);
	c = 0;
	tap_ok(holder > 0 && read(pipefd[0], &c, 1) == 1 && c == 'L',
	    "a holder process took the lock");
	close(pipefd[0]);
	fd2 = podio__tokencache_lock(path, 150);
	tap_ok(fd2 == -1, "lock times out (-1) while the holder lives");
	podio__tokencache_unlock(fd2);
	tap_ok(kill(holder, SIGKILL) == 0 &&
	    waitpid(holder, &status, 0) == holder && WIFSIGNALED(status) &&
	    WTERMSIG(status) == SIGKILL, "the holder was killed with SIGKILL");
	fd2 = podio__tokencache_lock(path, 5000);
	tap_ok(fd2 >= 0, "lock succeeds after the holder was killed");
	podio__tokencache_unlock(fd2);
}

static void
test_write_failure(void)
{
	char bad[600];
	struct podio__cached_token tok = { NULL, NULL, 0, 0, 0 };

	snprintf(bad, sizeof(bad), "%s/no-such-dir/cache.json", dir);
	tap_ok(write_good(bad) == PODIO_ERR_IO,
	    "a write into a missing directory fails with PODIO_ERR_IO");
	tap_ok(podio__tokencache_read(bad, OWNER, &tok) ==
	    PODIO_ERR_NOT_FOUND, "and leaves nothing to read");
}

/* Removes what the test made. */
static void
cleanup(void)
{
	char p[600];

	unlink(path);
	snprintf(p, sizeof(p), "%s.lock", path);
	unlink(p);
	unlink(logpath);
	rmdir(dir);
}

int
main(void)
{
	const char *tmp = getenv("TMPDIR");
	char target[600];

	snprintf(dir, sizeof(dir), "%s/tokencache-XXXXXX",
	    tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	umask(022);
	snprintf(path, sizeof(path), "%s/token-cache.json", dir);
	snprintf(logpath, sizeof(logpath), "%s/log", dir);
	snprintf(target, sizeof(target), "file:%s", logpath);
	if (podio_log_set_target(target) != PODIO_OK)
		tap_diag("cannot log to %s; warnings go to stderr", logpath);

	test_round_trip();
	test_untrusted();
	test_warnings();
	test_drop();
	test_lock();
	test_write_failure();

	podio_log_set_target("stderr");
	cleanup();
	return tap_done();
}
