/*
 * source.c: putting a SOURCE's code in place: a directory, a git
 * repository, a tarball or a tarball URL (bounded in time and size).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "curlretry.h"
#include "deploy.h"

static int
is_git(const char *src)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), "%s/.git", src);
	if (stat(p, &st) == 0)
		return 1;
	snprintf(p, sizeof(p), "%s/objects", src);
	if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(p, sizeof(p), "%s/HEAD", src);
		return access(p, F_OK) == 0;
	}
	return 0;
}

struct fetch {
	int fd;
	unsigned long long got, max;	/* bytes written; the cap */
	long retry_after;		/* seconds an answer asked for; -1 */
};

/* The body into the file, up to the cap: past it, the transfer stops. */
static size_t
curl_to_fd(char *p, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t n = size * nmemb, off = 0;

	if (f->got + n > f->max) {
		f->got = f->max + 1;
		return 0;
	}
	while (off < n) {
		ssize_t w = write(f->fd, p + off, n - off);
		if (w <= 0)
			return 0;
		off += (size_t)w;
	}
	f->got += n;
	return n;
}

/* A Retry-After in the answer's head (the last answer's, after a redirect). */
static size_t
curl_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct fetch *f = arg;
	size_t n = size * nmemb;
	char v[64];

	if (n > 5 && strncmp(p, "HTTP/", 5) == 0)
		f->retry_after = -1;
	else if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		snprintf(v, sizeof(v), "%.*s", (int)(n - 12), p + 12);
		f->retry_after = retry_after_parse(v, time(NULL));
	}
	return n;
}

/*
 * Fetch a URL into path with libcurl, three tries, as lib/retry.c says
 * (a failure that may pass: 1 s, then 2 s, or what Retry-After says, never
 * longer than --build-timeout).  Each try is bounded: --build-timeout in
 * all, and --max-source-size bytes (a source over it is refused at once,
 * not tried again).
 */
static void
fetch_url(const char *url, const char *path)
{
	struct retry again;
	struct timespec ts;
	long wait_ms;

	retry_init(&again, 2, opt.build_ms);
	for (;;) {
		CURL *c = curl_easy_init();
		struct fetch f = { -1, 0,
		    (unsigned long long)opt.max_source_kb * 1024, -1 };
		long status = 0;
		CURLcode rc;

		f.fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (c == NULL || f.fd == -1)
			die("cannot fetch %s: %s", url, strerror(errno));
		curl_easy_setopt(c, CURLOPT_URL, url);
		curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)opt.build_ms);
		curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
		    (curl_off_t)f.max);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "dyno-deploy");
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, curl_to_fd);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, &f);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, curl_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, &f);
		rc = curl_easy_perform(c);
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_cleanup(c);
		close(f.fd);
		if (rc == CURLE_OK && status >= 200 && status < 300)
			return;
		if (rc == CURLE_FILESIZE_EXCEEDED || f.got > f.max)
			die("cannot fetch %s: over --max-source-size (%ldK)", url,
			    opt.max_source_kb);
		if (rc == CURLE_OK)
			fprintf(stderr, "dyno-deploy: fetching %s (try %ld of 3): "
			    "HTTP %ld\n", url, again.made + 1, status);
		else
			fprintf(stderr, "dyno-deploy: fetching %s (try %ld of 3): "
			    "%s\n", url, again.made + 1, curl_easy_strerror(rc));
		/* A 404 will not get better by asking again. */
		if (!retry_worth(curl_transient(rc), rc == CURLE_OK ? status : 0) ||
		    (wait_ms = retry_next(&again, rc == CURLE_OK ?
		    f.retry_after : -1)) < 0)
			break;
		ts.tv_sec = wait_ms / 1000;
		ts.tv_nsec = (wait_ms % 1000) * 1000000L;
		nanosleep(&ts, NULL);	/* the wait before the next try */
	}
	die("cannot fetch %s", url);
}

/* Unpack a tarball (plain, gzip or zstd, told apart by GNU tar itself). */
static void
untar(const char *file, const char *dir, int logfd)
{
	char *argv[] = { "tar", "-x", "-f", (char *)file, "-C", (char *)dir,
	    "--no-same-owner", NULL };
	unsigned char magic[4] = { 0 };
	char *zargv[] = { "tar", "--zstd", "-x", "-f", (char *)file, "-C",
	    (char *)dir, "--no-same-owner", NULL };
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		die("cannot open %s: %s", file, strerror(errno));
	(void)!read(fd, magic, sizeof(magic));
	close(fd);
	if (run_logged(magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f &&
	    magic[3] == 0xfd ? zargv : argv, NULL, NULL, logfd, 0) != 0)
		die("cannot unpack %s", file);
}

/* A tarball with one top folder (as GitHub makes them): lift its contents. */
static void
lift_single_dir(const char *dir)
{
	char only[PATH_MAX] = "", tmp[PATH_MAX];
	struct dirent *de;
	int count = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		count++;
		snprintf(only, sizeof(only), "%s/%s", dir, de->d_name);
	}
	closedir(d);
	snprintf(tmp, sizeof(tmp), "%s/Procfile", dir);
	if (count != 1 || access(tmp, F_OK) == 0)
		return;
	{
		struct stat st;
		char up[PATH_MAX];
		if (lstat(only, &st) == -1 || !S_ISDIR(st.st_mode))
			return;
		snprintf(up, sizeof(up), "%s.lift", dir);
		if (rename(only, up) == -1 || rmdir(dir) == -1 ||
		    rename(up, dir) == -1)
			die("cannot unpack %s", dir);
	}
}

/* Put SOURCE's code into dir; fill *commit for git sources. */
void
source_fetch(const char *src, const char *dir, char *commit, size_t clen,
    int logfd)
{
	struct stat st;

	commit[0] = '\0';
	if (strncmp(src, "http://", 7) == 0 || strncmp(src, "https://", 8) == 0) {
		char file[PATH_MAX];
		snprintf(file, sizeof(file), "%s.download", dir);
		fetch_url(src, file);
		untar(file, dir, logfd);
		unlink(file);
		lift_single_dir(dir);
		return;
	}
	if (stat(src, &st) == -1)
		die("%s: %s", src, strerror(errno));
	if (S_ISDIR(st.st_mode) && (opt.ref != NULL || (is_git(src) &&
	    !opt.no_git))) {
		/* git: the committed tree at REF, never the work tree. */
		char rev[256], out[PATH_MAX];
		char *revparse[] = { "git", "-C", (char *)src, "rev-parse",
		    "--verify", "--quiet", rev, NULL };
		int fd, rc;

		/* The argv goes to git as is: no shell, so no quoting to get wrong. */
		snprintf(rev, sizeof(rev), "%s^{commit}", opt.ref ? opt.ref : "HEAD");
		snprintf(out, sizeof(out), "%s.rev", dir);
		fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (fd == -1)
			die("cannot open %s: %s", out, strerror(errno));
		rc = run_logged(revparse, NULL, NULL, fd, 1);
		close(fd);
		if (rc != 0 || file_read(out, commit, clen) <= 0) {
			unlink(out);
			die("%s: no git commit %s", src, opt.ref ? opt.ref : "HEAD");
		}
		unlink(out);
		commit[strcspn(commit, "\n")] = '\0';
		{
			char *argv[] = { "sh", "-c",
			    "git -C \"$1\" archive --format=tar \"$2\" | "
			    "tar -x -C \"$3\" --no-same-owner", "sh", (char *)src,
			    commit, (char *)dir, NULL };
			if (run_logged(argv, NULL, NULL, logfd, 0) != 0)
				die("cannot export %s from %s", commit, src);
		}
		return;
	}
	if (S_ISDIR(st.st_mode)) {
		char *argv[] = { "sh", "-c",
		    "tar -C \"$1\" --exclude=./.dyno --exclude=./.git -cf - . | "
		    "tar -C \"$2\" -xf - --no-same-owner", "sh", (char *)src,
		    (char *)dir, NULL };
		if (run_logged(argv, NULL, NULL, logfd, 0) != 0)
			die("cannot copy %s", src);
		return;
	}
	if (S_ISREG(st.st_mode)) {
		untar(src, dir, logfd);
		lift_single_dir(dir);
		return;
	}
	die("%s: not a directory, tarball, git repository or URL", src);
}
