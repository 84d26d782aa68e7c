/*
 * slug.c: the code's checksum, and the slug store: code kept once per
 * checksum in .dyno/slugs.
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
#include "deploy.h"

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A checksum of a tree: names, kinds, modes, contents, in sorted order. */
void
tree_hash(struct sha256 *h, const char *root, const char *rel)
{
	char path[PATH_MAX], **names = NULL;
	size_t n = 0, cap = 0, i;
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s%s%s", root, rel[0] ? "/" : "", rel);
	if ((d = opendir(path)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap * 2 + 32) * sizeof(char *));
			if (nn == NULL)
				die("out of memory");
			names = nn;
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(char *), cmp_str);
	for (i = 0; i < n; i++) {
		char sub[PATH_MAX], full[PATH_MAX], head[64];
		struct stat st;

		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
		snprintf(full, sizeof(full), "%s/%s", root, sub);
		if (lstat(full, &st) == -1)
			continue;
		snprintf(head, sizeof(head), "%c%o", S_ISDIR(st.st_mode) ? 'd' :
		    S_ISLNK(st.st_mode) ? 'l' : 'f', (unsigned)(st.st_mode & 07777));
		sha256_update(h, sub, strlen(sub) + 1);
		sha256_update(h, head, strlen(head) + 1);
		if (S_ISDIR(st.st_mode))
			tree_hash(h, root, sub);
		else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t k = readlink(full, target, sizeof(target));
			if (k > 0)
				sha256_update(h, target, (size_t)k);
		} else if (S_ISREG(st.st_mode)) {
			char buf[65536];
			ssize_t k;
			int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
			    O_NONBLOCK);
			while (fd >= 0 && (k = read(fd, buf, sizeof(buf))) > 0)
				sha256_update(h, buf, (size_t)k);
			if (fd >= 0)
				close(fd);
		}
		free(names[i]);
	}
	free(names);
}

/*
 * The built code's bytes must be on disk before a release can name them: a
 * power cut after the release is published must not leave it empty files.
 * The code was written by cp, tar or a buildpack, none of which syncs, so
 * sync the file system it is on once (syncfs), rather than fsync each of
 * possibly many thousand files.
 */
static int
sync_tree(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd == -1)
		return -1;
	rc = syncfs(fd);
	close(fd);
	return rc;
}

/*
 * Move the built code into the slug store under its checksum, unless the
 * same code is there already, and leave a relative symlink in its place.
 */
void
slug_store(const char *builddir, const char *sha)
{
	char code[PATH_MAX], slug[4096], slugs[4096], link[128];

	snprintf(code, sizeof(code), "%s/app", builddir);
	state_path(slugs, sizeof(slugs), "slugs");
	if (mkdir_mode(slugs, 0755) == -1)
		die("cannot make %s: %s", slugs, strerror(errno));
	state_path(slug, sizeof(slug), "slugs/%s", sha);
	if (access(slug, F_OK) == 0)
		remove_tree(code);		/* stored once already */
	else if (sync_tree(code) == -1)
		die("cannot sync the built code %s: %s", code, strerror(errno));
	else if (rename(code, slug) == -1)
		die("cannot store the slug %s: %s", slug, strerror(errno));
	else {
		snprintf(failed_slug, sizeof(failed_slug), "%s", slug);
		(void)dir_fsync(slugs);
	}
	snprintf(link, sizeof(link), "../../slugs/%s", sha);
	if (symlink(link, code) == -1)
		die("cannot link %s: %s", code, strerror(errno));
}
