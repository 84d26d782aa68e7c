/*
 * proc.c: what /proc says.  A pid alone can be reused; a pid plus its start
 * time (field 22 of /proc/PID/stat) names one process for good, which is how
 * a new supervisor knows a dyno it finds in a state file is still the same.
 * Memory is counted for the whole dyno, as PSS: see proc_sample_dynos.
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

/*
 * What a dyno is, without a cgroup: every process in its session, every
 * descendant of one (a child that called setsid() is still its parent's),
 * and the orphans of those, which the kernel hands to us, the subreaper:
 * each scan remembers which dyno a process belonged to, by pid and start
 * time, so an orphan is still known once its parent link is gone.  A
 * process that forks, leaves the session and loses its parent between two
 * scans is not known; only a cgroup closes that gap (dyno-run --cgroup).
 */
struct pinfo {
	pid_t pid, ppid, sid;
	unsigned long long start;
	long rss_pages;
	int owner;		/* index into the targets, or one of: */
};
#define OWNER_UNKNOWN	(-2)
#define OWNER_NONE	(-1)

struct member {
	pid_t pid, sid;
	unsigned long long start;
};
static struct member *members;
static size_t nmembers, capmembers;

/* stat's ppid is field 4, right after the state. */
static int
proc_ppid(pid_t pid, pid_t *ppid)
{
	char path[64], buf[1024], *p;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if (file_read(path, buf, sizeof(buf)) <= 0 ||
	    (p = strrchr(buf, ')')) == NULL || p[1] != ' ' || p[2] == '\0' ||
	    p[3] != ' ')
		return -1;
	*ppid = (pid_t)strtol(p + 4, NULL, 10);
	return 0;
}

static int
pinfo_cmp(const void *a, const void *b)
{
	const struct pinfo *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Every live process (not zombies: they are gone but for their status). */
static struct pinfo *
proc_table(size_t *count)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	struct pinfo *t = NULL, *nt;
	size_t n = 0, cap = 0;

	*count = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		struct stat_fields f;
		pid_t pid, ppid;

		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		pid = (pid_t)strtol(de->d_name, NULL, 10);
		if (proc_stat(pid, &f) == -1 || f.state == 'Z' ||
		    proc_ppid(pid, &ppid) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 512;
			if ((nt = realloc(t, cap * sizeof(*t))) == NULL)
				break;
			t = nt;
		}
		t[n].pid = pid;
		t[n].ppid = ppid;
		t[n].sid = f.sid;
		t[n].start = f.start;
		t[n].rss_pages = f.rss_pages;
		t[n].owner = OWNER_UNKNOWN;
		n++;
	}
	closedir(d);
	if (t == NULL)
		return calloc(1, sizeof(*t));	/* none: still not an error */
	qsort(t, n, sizeof(*t), pinfo_cmp);
	*count = n;
	return t;
}

static int
target_of(pid_t sid, const pid_t *sids, size_t nsids)
{
	size_t i;

	for (i = 0; i < nsids; i++)
		if (sids[i] == sid)
			return (int)i;
	return OWNER_NONE;
}

/* Which target dyno t[i] belongs to, up its parent links. */
static int
owner_of(struct pinfo *t, size_t n, size_t i, const pid_t *sids,
    size_t nsids, int depth)
{
	struct pinfo key, *parent;
	size_t k;
	int o;

	if (t[i].owner != OWNER_UNKNOWN)
		return t[i].owner;
	t[i].owner = OWNER_NONE;	/* also ends a loop of parent links */
	if ((o = target_of(t[i].sid, sids, nsids)) >= 0)
		return t[i].owner = o;
	for (k = 0; k < nmembers; k++)
		if (members[k].pid == t[i].pid && members[k].start == t[i].start)
			return t[i].owner = target_of(members[k].sid, sids, nsids);
	/* Our own children that are not in a dyno are nobody's. */
	if (depth > 256 || t[i].ppid <= 1 || t[i].ppid == getpid())
		return OWNER_NONE;
	key.pid = t[i].ppid;
	parent = bsearch(&key, t, n, sizeof(*t), pinfo_cmp);
	if (parent == NULL)
		return OWNER_NONE;
	return t[i].owner = owner_of(t, n, (size_t)(parent - t), sids, nsids,
	    depth + 1);
}

/*
 * Resolve every process against the target dynos and keep what was learnt:
 * the targets' members replace their old entries; entries of processes
 * that are gone are dropped; other dynos' entries stay.
 */
static void
members_learn(struct pinfo *t, size_t n, const pid_t *sids, size_t nsids)
{
	size_t i, k, keep = 0;

	for (i = 0; i < n; i++)
		owner_of(t, n, i, sids, nsids, 0);
	for (k = 0; k < nmembers; k++) {
		struct pinfo key, *p;
		key.pid = members[k].pid;
		p = bsearch(&key, t, n, sizeof(*t), pinfo_cmp);
		if (p == NULL || p->start != members[k].start ||
		    target_of(members[k].sid, sids, nsids) >= 0)
			continue;	/* gone, or re-added below */
		members[keep++] = members[k];
	}
	nmembers = keep;
	for (i = 0; i < n; i++) {
		if (t[i].owner < 0)
			continue;
		if (nmembers == capmembers) {
			size_t cap = capmembers ? capmembers * 2 : 64;
			struct member *nm = realloc(members, cap * sizeof(*nm));
			if (nm == NULL)
				return;
			members = nm;
			capmembers = cap;
		}
		members[nmembers].pid = t[i].pid;
		members[nmembers].start = t[i].start;
		members[nmembers].sid = sids[t[i].owner];
		nmembers++;
	}
}

/* Proportional set size: each shared page charged in equal parts; kB. */
static long
proc_pss_kb(pid_t pid)
{
	char path[64], buf[4096], *p;

	snprintf(path, sizeof(path), "/proc/%ld/smaps_rollup", (long)pid);
	if (file_read(path, buf, sizeof(buf)) <= 0 ||
	    (p = strstr(buf, "\nPss:")) == NULL)
		return -1;
	return strtol(p + 5, NULL, 10);
}

int
proc_sample_dynos(struct proc_sample *s, size_t n, int memory)
{
	pid_t *sids;
	struct pinfo *t;
	size_t count, i;
	long page_kb = sysconf(_SC_PAGESIZE) / 1024;

	if ((sids = calloc(n ? n : 1, sizeof(*sids))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		sids[i] = s[i].sid;
		s[i].mem_kb = 0;
		s[i].nprocs = 0;
	}
	if ((t = proc_table(&count)) == NULL) {
		free(sids);
		return -1;
	}
	members_learn(t, count, sids, n);
	for (i = 0; i < count; i++) {
		long kb;
		if (t[i].owner < 0)
			continue;
		s[t[i].owner].nprocs++;
		if (!memory)
			continue;
		/* RSS only where PSS cannot be read (before Linux 4.14). */
		if ((kb = proc_pss_kb(t[i].pid)) < 0)
			kb = t[i].rss_pages * page_kb;
		s[t[i].owner].mem_kb += kb;
	}
	free(t);
	free(sids);
	return 0;
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
proc_dyno_kill(pid_t sid, int sig)
{
	struct pinfo *t;
	size_t count, i;
	int killed = 0;

	if (sid <= 1) {
		errno = EINVAL;
		return -1;
	}
	/* The group first (cheap, atomic), then those that left it. */
	if (kill(-sid, sig) == 0)
		killed++;
	if ((t = proc_table(&count)) == NULL)
		return killed;
	members_learn(t, count, &sid, 1);
	for (i = 0; i < count; i++) {
		unsigned long long now;
		/* Still the process the scan found, not a new one on its pid. */
		if (t[i].owner == 0 && proc_starttime(t[i].pid, &now) == 0 &&
		    now == t[i].start && kill(t[i].pid, sig) == 0)
			killed++;
	}
	free(t);
	return killed;
}
