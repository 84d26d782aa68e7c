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
	pid_t ppid, pgrp, sid;
	unsigned long long start;
	long rss_pages, threads;
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
		case 4:
			f->ppid = (pid_t)strtol(p, NULL, 10);
			break;
		case 5:
			f->pgrp = (pid_t)strtol(p, NULL, 10);
			break;
		case 6:
			f->sid = (pid_t)strtol(p, NULL, 10);
			break;
		case 20:
			f->threads = strtol(p, NULL, 10);
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

pid_t
proc_session(pid_t pid)
{
	struct stat_fields f;

	return proc_stat(pid, &f) == -1 ? -1 : f.sid;
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
 * Every uid of pid (real, effective, saved, filesystem) when they are one;
 * -1 with EPERM when they differ.  A dyno runs with no_new_privs, so none of
 * its processes can hold a uid it was not started with: one that does (a
 * set-id program, a daemon that dropped only some) is not a dyno's.
 */
int
proc_uid(pid_t pid, uid_t *uid)
{
	char path[64], buf[4096], *p, *end;
	unsigned long long v[4];
	int k;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if (file_read(path, buf, sizeof(buf)) <= 0)
		return -1;
	if ((p = strstr(buf, "\nUid:")) == NULL) {
		errno = EINVAL;
		return -1;
	}
	p += 5;
	for (k = 0; k < 4; k++) {
		errno = 0;
		v[k] = strtoull(p, &end, 10);
		if (end == p || errno != 0 || (uid_t)v[k] != v[k]) {
			errno = EINVAL;
			return -1;
		}
		p = end;
	}
	if (v[1] != v[0] || v[2] != v[0] || v[3] != v[0]) {
		errno = EPERM;
		return -1;
	}
	*uid = (uid_t)v[0];
	return 0;
}

/*
 * What a dyno is, without a cgroup: every process in its session, every
 * descendant of one (a child that called setsid() is still its parent's),
 * and the orphans of those, which the kernel hands to us, the subreaper:
 * each look remembers which dyno a process belonged to, by pid and start
 * time, so an orphan is still known once its parent link is gone.  A
 * process that forks, leaves the session and loses its parent between two
 * looks is not known; only a cgroup closes that gap (dyno-run --cgroup).
 *
 * Since all of that is below us, we find it by walking down from our own
 * children (/proc/PID/task/TID/children), not by reading every process on
 * the host: the cost follows the dynos, not the host.  A dyno adopted from
 * an earlier supervisor is not below us (its orphans went to init), so a
 * look that includes one still scans all of /proc.
 *
 * Found is not proven: a session id or a parent link can be had by a
 * process that is not the dyno's (a state file is untrusted; a session
 * whose leader is gone may hold anyone's stragglers).  A process belongs
 * to the dyno only if it runs as the dynos' uid, all of its uids, and did
 * not start before the dyno's first process did; see owner_proven.
 */
struct pinfo {
	pid_t pid, ppid, sid;
	unsigned long long start;
	long rss_pages, threads;
	int owner;		/* index into the targets, or one of: */
};
#define OWNER_UNKNOWN	(-2)
#define OWNER_NONE	(-1)
#define OWNER_REFUSED	(-3)	/* found with a dyno, but not proven its */

struct member {
	pid_t pid, sid;
	unsigned long long start;
};
static struct member *members;
static size_t nmembers, capmembers;
static int subreaper;		/* orphans below us stay below us: walk */

/*
 * A set of pids, open addressing: the members' index (value: the member's
 * position) and the walk's "seen" set.  Never shrinks; cleared for reuse.
 */
struct pidmap {
	pid_t *keys;		/* 0: empty slot */
	size_t *vals;
	size_t cap, n;		/* cap: a power of two, or 0 */
};

static size_t
pidmap_slot(const struct pidmap *m, pid_t pid)
{
	size_t i = ((size_t)pid * 2654435761u) & (m->cap - 1);

	while (m->keys[i] != 0 && m->keys[i] != pid)
		i = (i + 1) & (m->cap - 1);
	return i;
}

static void
pidmap_clear(struct pidmap *m)
{
	if (m->cap)
		memset(m->keys, 0, m->cap * sizeof(*m->keys));
	m->n = 0;
}

/* 1 if added, 0 if already there, -1 out of memory. */
static int
pidmap_put(struct pidmap *m, pid_t pid, size_t val)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap) {
		struct pidmap g = { NULL, NULL, m->cap ? 2 * m->cap : 64, 0 };
		if ((g.keys = calloc(g.cap, sizeof(*g.keys))) == NULL ||
		    (g.vals = calloc(g.cap, sizeof(*g.vals))) == NULL) {
			free(g.keys);
			return -1;
		}
		for (i = 0; i < m->cap; i++)
			if (m->keys[i] != 0) {
				size_t j = pidmap_slot(&g, m->keys[i]);
				g.keys[j] = m->keys[i];
				g.vals[j] = m->vals[i];
			}
		g.n = m->n;
		free(m->keys);
		free(m->vals);
		*m = g;
	}
	i = pidmap_slot(m, pid);
	if (m->keys[i] == pid)
		return 0;
	m->keys[i] = pid;
	m->vals[i] = val;
	m->n++;
	return 1;
}

static const size_t *
pidmap_get(const struct pidmap *m, pid_t pid)
{
	size_t i;

	if (m->cap == 0)
		return NULL;
	i = pidmap_slot(m, pid);
	return m->keys[i] == pid ? &m->vals[i] : NULL;
}

static struct pidmap member_index;

static const struct member *
member_find(pid_t pid, unsigned long long start)
{
	const size_t *k = pidmap_get(&member_index, pid);

	return k != NULL && members[*k].start == start ? &members[*k] : NULL;
}

static int
pinfo_cmp(const void *a, const void *b)
{
	const struct pinfo *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

/* Append pid to the table if it is a live process (not a zombie). */
static int
table_add(struct pinfo **t, size_t *n, size_t *cap, pid_t pid)
{
	struct stat_fields f;
	struct pinfo *nt;

	if (proc_stat(pid, &f) == -1 || f.state == 'Z')
		return 0;
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		if ((nt = realloc(*t, c * sizeof(*nt))) == NULL)
			return -1;
		*t = nt;
		*cap = c;
	}
	(*t)[*n].pid = pid;
	(*t)[*n].ppid = f.ppid;
	(*t)[*n].sid = f.sid;
	(*t)[*n].start = f.start;
	(*t)[*n].rss_pages = f.rss_pages;
	(*t)[*n].threads = f.threads;
	(*t)[*n].owner = OWNER_UNKNOWN;
	(*n)++;
	return 1;
}

static struct pinfo *
table_done(struct pinfo *t, size_t n, size_t *count)
{
	if (t == NULL)
		return calloc(1, sizeof(*t));	/* none: still not an error */
	qsort(t, n, sizeof(*t), pinfo_cmp);
	*count = n;
	return t;
}

/* Every live process on the host. */
static struct pinfo *
proc_table(size_t *count)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	struct pinfo *t = NULL;
	size_t n = 0, cap = 0;

	*count = 0;
	if (d == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL)
		if (isdigit((unsigned char)de->d_name[0]) &&
		    table_add(&t, &n, &cap,
		    (pid_t)strtol(de->d_name, NULL, 10)) == -1)
			break;
	closedir(d);
	return table_done(t, n, count);
}

/* Add the pids listed in one children file that are not seen yet. */
static int
children_add(const char *path, struct pinfo **t, size_t *n, size_t *cap,
    struct pidmap *seen)
{
	char buf[4096];
	size_t have = 0;
	ssize_t got;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd == -1)
		return 0;	/* gone meanwhile */
	for (;;) {
		char *p = buf, *end;
		got = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (got == -1 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		have += (size_t)got;
		buf[have] = '\0';
		/* Whole numbers only; a split one waits for the next read. */
		while ((end = strchr(p, ' ')) != NULL) {
			pid_t pid = (pid_t)strtol(p, NULL, 10);
			p = end + 1;
			if (pid > 0 && pidmap_put(seen, pid, 0) == 1 &&
			    (rc = table_add(t, n, cap, pid)) == -1)
				goto out;
		}
		have = strlen(p);
		memmove(buf, p, have);
	}
out:
	close(fd);
	return rc == -1 ? -1 : 0;
}

/* The children of every thread of pid. */
static int
walk_children(pid_t pid, long threads, struct pinfo **t, size_t *n,
    size_t *cap, struct pidmap *seen)
{
	char path[96];
	DIR *d;
	struct dirent *de;
	int rc = 0;

	if (threads <= 1) {
		snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children",
		    (long)pid, (long)pid);
		return children_add(path, t, n, cap, seen);
	}
	snprintf(path, sizeof(path), "/proc/%ld/task", (long)pid);
	if ((d = opendir(path)) == NULL)
		return 0;
	while (rc == 0 && (de = readdir(d)) != NULL) {
		if (!isdigit((unsigned char)de->d_name[0]))
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/task/%.20s/children",
		    (long)pid, de->d_name);
		rc = children_add(path, t, n, cap, seen);
	}
	closedir(d);
	return rc;
}

/*
 * Every live process below us: our children (the dynos, and the orphans
 * handed to us) and theirs, down the tree.  We are in the table too, as the
 * root that owner_of stops at.
 */
static struct pinfo *
proc_walk(size_t *count)
{
	static struct pidmap seen;
	struct pinfo *t = NULL;
	size_t n = 0, cap = 0, i;

	*count = 0;
	pidmap_clear(&seen);
	if (pidmap_put(&seen, getpid(), 0) == -1 ||
	    table_add(&t, &n, &cap, getpid()) != 1) {
		free(t);
		return NULL;
	}
	for (i = 0; i < n; i++)
		if (walk_children(t[i].pid, t[i].threads, &t, &n, &cap,
		    &seen) == -1)
			break;
	return table_done(t, n, count);
}

static int
target_of(pid_t sid, const struct proc_dyno *ds, size_t nds)
{
	size_t i;

	for (i = 0; i < nds; i++)
		if (ds[i].sid == sid)
			return (int)i;
	return OWNER_NONE;
}

/* Found with dyno d; is it d's?  Its uids, then its age. */
static int
owner_proven(const struct pinfo *p, const struct proc_dyno *d)
{
	uid_t uid;

	return p->start >= d->start && proc_uid(p->pid, &uid) == 0 &&
	    uid == d->uid;
}

/* Which target dyno t[i] belongs to, up its parent links. */
static int
owner_of(struct pinfo *t, size_t n, size_t i, const struct proc_dyno *ds,
    size_t nds, int depth)
{
	struct pinfo key, *parent;
	const struct member *m;
	int o;

	if (t[i].owner != OWNER_UNKNOWN)
		return t[i].owner;
	t[i].owner = OWNER_NONE;	/* also ends a loop of parent links */
	if ((o = target_of(t[i].sid, ds, nds)) >= 0)
		;
	else if ((m = member_find(t[i].pid, t[i].start)) != NULL)
		o = target_of(m->sid, ds, nds);
	/* Our own children that are not in a dyno are nobody's. */
	else if (depth > 256 || t[i].ppid <= 1 || t[i].ppid == getpid())
		return OWNER_NONE;
	else {
		key.pid = t[i].ppid;
		parent = bsearch(&key, t, n, sizeof(*t), pinfo_cmp);
		if (parent == NULL)
			return OWNER_NONE;
		o = owner_of(t, n, (size_t)(parent - t), ds, nds, depth + 1);
	}
	if (o >= 0 && !owner_proven(&t[i], &ds[o]))
		o = OWNER_REFUSED;
	return t[i].owner = o;
}

/*
 * Resolve every process against the target dynos and keep what was learnt:
 * the targets' members replace their old entries; entries of processes
 * that are gone are dropped; other dynos' entries stay.  A walk does not
 * see an adopted dyno's processes: those are dropped only once dead.
 */
static void
members_learn(struct pinfo *t, size_t n, const struct proc_dyno *ds,
    size_t nds, int walked)
{
	size_t i, k, keep = 0;

	for (i = 0; i < n; i++)
		owner_of(t, n, i, ds, nds, 0);
	for (k = 0; k < nmembers; k++) {
		struct pinfo key, *p;
		key.pid = members[k].pid;
		p = bsearch(&key, t, n, sizeof(*t), pinfo_cmp);
		if (target_of(members[k].sid, ds, nds) >= 0)
			continue;	/* re-added below if still there */
		if (p != NULL ? p->start != members[k].start :
		    !walked || !proc_alive(members[k].pid, members[k].start))
			continue;	/* gone */
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
				break;
			members = nm;
			capmembers = cap;
		}
		members[nmembers].pid = t[i].pid;
		members[nmembers].start = t[i].start;
		members[nmembers].sid = ds[t[i].owner].sid;
		nmembers++;
	}
	pidmap_clear(&member_index);
	for (k = 0; k < nmembers; k++)
		if (pidmap_put(&member_index, members[k].pid, k) == -1)
			break;
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
	struct proc_dyno *ds;
	struct pinfo *t;
	size_t count, i;
	long page_kb = sysconf(_SC_PAGESIZE) / 1024;
	int walk = subreaper;

	if ((ds = calloc(n ? n : 1, sizeof(*ds))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		ds[i] = s[i].dyno;
		s[i].mem_kb = 0;
		s[i].nprocs = 0;
	}
	for (i = 0; i < n; i++)
		if (s[i].dyno.adopted)
			walk = 0;
	if ((t = walk ? proc_walk(&count) : proc_table(&count)) == NULL) {
		free(ds);
		return -1;
	}
	members_learn(t, count, ds, n, walk);
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
	free(ds);
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
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == -1)
		return -1;
	subreaper = 1;
#endif
	return 0;
}

int
proc_dyno_kill(const struct proc_dyno *d, int sig, int *refused)
{
	int walk = subreaper && !d->adopted;

	struct pinfo *t;
	size_t count, i;
	int killed = 0;

	if (refused != NULL)
		*refused = 0;
	if (d->sid <= 1) {
		errno = EINVAL;
		return -1;
	}
	/* Look before signalling: a dying parent hands its children to us or
	 * to init, and with the parent link goes what tied them to the dyno.
	 * Then the group (atomic), then those that left it.  The group only
	 * for a dyno we started: what is in it came from our child, which
	 * cannot change uid (no_new_privs).  An adopted dyno's pid is only
	 * what a file said, so it is signalled one proven process at a time. */
	t = walk ? proc_walk(&count) : proc_table(&count);
	if (!d->adopted && kill(-d->sid, sig) == 0)
		killed++;
	if (t == NULL)
		return killed;
	members_learn(t, count, d, 1, walk);
	for (i = 0; i < count; i++) {
		unsigned long long now;
		if (t[i].owner == OWNER_REFUSED && refused != NULL)
			(*refused)++;
		/* Still the process we found, not a new one on its pid. */
		if (t[i].owner == 0 && proc_starttime(t[i].pid, &now) == 0 &&
		    now == t[i].start && kill(t[i].pid, sig) == 0)
			killed++;
	}
	free(t);
	return killed;
}
