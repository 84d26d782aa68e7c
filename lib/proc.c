/*
 * proc.c: what /proc says.  A pid alone can be reused; a pid plus its start
 * time (field 22 of /proc/PID/stat) names one process for good, which is how
 * a new supervisor knows a dyno it finds in a state file is still the same.
 * Memory is counted for the whole dyno: every process in its session.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <string.h>
#include <unistd.h>

#include "dyno.h"

struct stat_fields {
	char state;
	pid_t pgrp, sid;
	unsigned long long start;
	long rss_pages;
};

/* Parse the fields after "(comm)"; comm may hold spaces and parentheses. */
static int
proc_stat(pid_t pid, struct stat_fields *f)
{
	char path[64], buf[1024], *p;
	int field;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (file_read(path, buf, sizeof(buf)) <= 0)
		return -1;
	if ((p = strrchr(buf, ')')) == NULL) {
		errno = EINVAL;
		return -1;
	}
	p++;
	/* p is at field 3 (state) minus one space. */
	for (field = 3; field <= 24 && p != NULL; field++) {
		while (*p == ' ')
			p++;
		switch (field) {
		case 3:
			f->state = *p;
			break;
		case 5:
			f->pgrp = (pid_t)strtol(p, NULL, 10);
			break;
		case 6:
			f->sid = (pid_t)strtol(p, NULL, 10);
			break;
		case 22:
			f->start = strtoull(p, NULL, 10);
			break;
		case 24:
			f->rss_pages = strtol(p, NULL, 10);
			return 0;
		}
		p = strchr(p, ' ');
	}
	errno = EINVAL;
	return -1;
}

int
proc_starttime(pid_t pid, unsigned long long *start)
{
	struct stat_fields f;

	if (proc_stat(pid, &f) == -1)
		return -1;
	*start = f.start;
	return 0;
}

int
proc_alive(pid_t pid, unsigned long long start)
{
	unsigned long long now;
	char path[64], buf[1024], *p;

	if (pid <= 0 || proc_starttime(pid, &now) == -1)
		return 0;
	if (now != start)
		return 0;
	/* A zombie is not alive: it only waits to be reaped. */
	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (file_read(path, buf, sizeof(buf)) > 0 &&
	    (p = strrchr(buf, ')')) != NULL && p[1] == ' ' && p[2] == 'Z')
		return 0;
	return 1;
}

static void
proc_each(void (*fn)(pid_t, const struct stat_fields *, void *), void *arg)
{
	DIR *d = opendir("/proc");
	struct dirent *de;

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		struct stat_fields f;
		pid_t pid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)strtol(de->d_name, NULL, 10);
		if (proc_stat(pid, &f) == 0)
			fn(pid, &f, arg);
	}
	closedir(d);
}

struct sample_ctx {
	struct proc_sample *s;
	size_t n;
	long page_kb;
};

static void
sample_one(pid_t pid, const struct stat_fields *f, void *arg)
{
	struct sample_ctx *c = arg;
	size_t i;

	(void)pid;
	if (f->state == 'Z')	/* exited, waiting for its parent: gone */
		return;
	for (i = 0; i < c->n; i++)
		if (c->s[i].sid == f->sid) {
			c->s[i].rss_kb += f->rss_pages * c->page_kb;
			c->s[i].nprocs++;
			return;
		}
}

int
proc_sample_sessions(struct proc_sample *s, size_t n)
{
	struct sample_ctx c = { s, n, sysconf(_SC_PAGESIZE) / 1024 };
	size_t i;

	for (i = 0; i < n; i++) {
		s[i].rss_kb = 0;
		s[i].nprocs = 0;
	}
	proc_each(sample_one, &c);
	return 0;
}

struct kill_ctx {
	pid_t sid;
	int sig, count;
};

static void
kill_one(pid_t pid, const struct stat_fields *f, void *arg)
{
	struct kill_ctx *c = arg;

	if (f->sid == c->sid && kill(pid, c->sig) == 0)
		c->count++;
}

/*
 * Orphans of our dynos are re-parented to us rather than to init, so we
 * reap them at once and a stopping dyno's session empties on time.
 */
int
proc_become_subreaper(void)
{
#ifdef PR_SET_CHILD_SUBREAPER
	return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
#else
	return 0;
#endif
}

int
proc_session_kill(pid_t sid, int sig)
{
	struct kill_ctx c = { sid, sig, 0 };

	if (sid <= 1) {
		errno = EINVAL;
		return -1;
	}
	/* The group first (cheap, atomic), then stragglers that left it. */
	if (kill(-sid, sig) == 0)
		c.count++;
	proc_each(kill_one, &c);
	return c.count;
}
