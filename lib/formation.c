/*
 * formation.c: how many dynos of each type should run.  The file holds
 * "TYPE=COUNT" lines; the command line takes TYPE=N, TYPE+N and TYPE-N.
 * dyno-scale and dyno-run both change it through this code.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dyno.h"

#define FORMATION_COUNT_MAX 10000

long
formation_get(const struct formation *f, const char *type)
{
	size_t i;

	for (i = 0; i < f->n; i++)
		if (strcmp(f->entries[i].type, type) == 0)
			return f->entries[i].count;
	return -1;
}

int
formation_set(struct formation *f, const char *type, long count)
{
	size_t i;

	if (!name_valid(type) || count < 0) {
		errno = EINVAL;
		return -1;
	}
	for (i = 0; i < f->n; i++)
		if (strcmp(f->entries[i].type, type) == 0) {
			f->entries[i].count = count;
			return 0;
		}
	if (f->n >= FORMATION_MAX) {
		errno = ENOSPC;
		return -1;
	}
	snprintf(f->entries[f->n].type, DYNO_NAME_MAX, "%s", type);
	f->entries[f->n].count = count;
	f->n++;
	return 0;
}

int
formation_parse(const char *text, size_t len, const char *file,
    struct formation *f, char *err, size_t errlen)
{
	size_t off = 0, lineno = 0;

	f->n = 0;
	while (off < len) {
		const char *p = text + off, *nl, *eq;
		size_t linelen;
		char type[DYNO_NAME_MAX], num[32];
		long count;

		nl = memchr(p, '\n', len - off);
		linelen = nl ? (size_t)(nl - p) : len - off;
		off += linelen + (nl != NULL);
		lineno++;
		if (linelen == 0 || p[0] == '#')
			continue;
		eq = memchr(p, '=', linelen);
		if (eq == NULL || eq == p || (size_t)(eq - p) >= sizeof(type) ||
		    linelen - (size_t)(eq - p) - 1 >= sizeof(num) ||
		    memchr(p, '\0', linelen) != NULL) {
			snprintf(err, errlen, "%s:%zu: expected TYPE=COUNT", file,
			    lineno);
			errno = EINVAL;
			return -1;
		}
		memcpy(type, p, (size_t)(eq - p));
		type[eq - p] = '\0';
		memcpy(num, eq + 1, linelen - (size_t)(eq - p) - 1);
		num[linelen - (size_t)(eq - p) - 1] = '\0';
		if (!name_valid(type) || parse_long(num, 0, FORMATION_COUNT_MAX,
		    &count) == -1) {
			snprintf(err, errlen, "%s:%zu: expected TYPE=COUNT", file,
			    lineno);
			errno = EINVAL;
			return -1;
		}
		if (formation_get(f, type) != -1) {
			snprintf(err, errlen, "%s:%zu: duplicate type \"%s\"", file,
			    lineno, type);
			errno = EINVAL;
			return -1;
		}
		if (formation_set(f, type, count) == -1) {
			snprintf(err, errlen, "%s:%zu: too many types", file, lineno);
			return -1;
		}
	}
	return 0;
}

/* APP/.dyno/formation, read relative to the .dyno app_init opened. */
int
formation_load(const struct app *a, struct formation *f, char *err,
    size_t errlen)
{
	char path[4096], *text;
	size_t len;
	int rc, fd;

	f->n = 0;
	app_path(a, path, sizeof(path), "formation");
	if ((fd = app_openat(a, "formation", O_RDONLY | O_NONBLOCK, 0)) == -1 ||
	    file_read_alloc_fd(fd, &text, &len, 1024 * 1024) == -1) {
		if (errno != ENOENT)
			snprintf(err, errlen, "cannot read %s: %s", path,
			    strerror(errno));
		else
			snprintf(err, errlen, "%s: no formation yet", path);
		return -1;
	}
	rc = formation_parse(text, len, path, f, err, errlen);
	free(text);
	return rc;
}

int
formation_save(const struct app *a, const struct formation *f)
{
	char buf[FORMATION_MAX * (DYNO_NAME_MAX + 24)];
	size_t off = 0, i;

	for (i = 0; i < f->n; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s=%ld\n",
		    f->entries[i].type, f->entries[i].count);
	return app_write(a, "formation", buf, off, 0644, 1);
}

/* Heroku's default: one web dyno if the Procfile has web, none of the rest. */
void
formation_default(struct formation *f, const struct procfile *pf)
{
	size_t i;

	f->n = 0;
	for (i = 0; i < pf->ntypes; i++) {
		if (strcmp(pf->types[i].name, "release") == 0)
			continue;
		formation_set(f, pf->types[i].name,
		    strcmp(pf->types[i].name, "web") == 0 ? 1 : 0);
	}
}

int
formation_apply_arg(struct formation *f, const char *arg,
    const struct procfile *pf, long max, char *err, size_t errlen)
{
	char type[DYNO_NAME_MAX];
	const char *op;
	long n, cur, next;

	/* '-' is legal inside a type name; the operator is the last + - or =. */
	op = strrchr(arg, '=') ? strrchr(arg, '=') :
	    (strrchr(arg, '+') ? strrchr(arg, '+') : strrchr(arg, '-'));
	if (op == NULL || op == arg || (size_t)(op - arg) >= sizeof(type)) {
		snprintf(err, errlen, "%s: expected TYPE=COUNT, TYPE+N or TYPE-N",
		    arg);
		errno = EINVAL;
		return -1;
	}
	memcpy(type, arg, (size_t)(op - arg));
	type[op - arg] = '\0';
	if (!name_valid(type)) {
		snprintf(err, errlen, "%s: invalid process type \"%s\"", arg, type);
		errno = EINVAL;
		return -1;
	}
	if (pf != NULL && (procfile_find(pf, type) == NULL ||
	    strcmp(type, "release") == 0)) {
		snprintf(err, errlen, "%s: no process type \"%s\" in the Procfile",
		    arg, type);
		errno = ENOENT;
		return -1;
	}
	if (parse_long(op + 1, 0, FORMATION_COUNT_MAX, &n) == -1 ||
	    !isdigit((unsigned char)op[1])) {
		snprintf(err, errlen, "%s: count must be a number from 0 to %ld",
		    arg, max);
		errno = EINVAL;
		return -1;
	}
	cur = formation_get(f, type);
	if (cur < 0)	/* Heroku's default, as dyno-run applies it */
		cur = strcmp(type, "web") == 0 ? 1 : 0;
	next = *op == '=' ? n : *op == '+' ? cur + n : cur - n;
	if (next < 0) {
		snprintf(err, errlen, "%s: would make %ld %s dynos", arg, next,
		    type);
		errno = ERANGE;
		return -1;
	}
	if (next > max) {
		snprintf(err, errlen, "%s: at most %ld %s dynos (see --max)", arg,
		    max, type);
		errno = ERANGE;
		return -1;
	}
	return formation_set(f, type, next);
}
