/*
 * procfile.c: the Procfile, one "NAME: command" per line.  Comments (#) and
 * blank lines are allowed; anything else that is not a valid entry is an
 * error naming file:line, never silently skipped.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

#define PROCFILE_MAX (1024 * 1024)
#define PROCFILE_TYPES_MAX 64

static int
fail(char *err, size_t errlen, const char *file, size_t line, const char *msg)
{
	snprintf(err, errlen, "%s:%zu: %s", file, line, msg);
	errno = EINVAL;
	return -1;
}

static int
procfile_add(struct procfile *pf, const char *name, size_t namelen,
    const char *cmd, size_t cmdlen)
{
	struct proctype *t;

	t = realloc(pf->types, (pf->ntypes + 1) * sizeof(*t));
	if (t == NULL)
		return -1;
	pf->types = t;
	t = &pf->types[pf->ntypes];
	memcpy(t->name, name, namelen);
	t->name[namelen] = '\0';
	if ((t->command = strndup(cmd, cmdlen)) == NULL)
		return -1;
	pf->ntypes++;
	return 0;
}

/* One line, without its newline: 0 if fine, -1 with err set otherwise. */
static int
procfile_line(struct procfile *pf, const char *p, size_t len, const char *file,
    size_t lineno, char *err, size_t errlen)
{
	size_t i = 0, namelen, start;
	char name[DYNO_NAME_MAX];

	if (len > 0 && p[len - 1] == '\r')
		len--;
	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i == len || p[i] == '#')
		return 0;
	if (memchr(p, '\0', len) != NULL)
		return fail(err, errlen, file, lineno, "NUL byte in line");
	if (i > 0)
		return fail(err, errlen, file, lineno,
		    "process type must start the line");
	while (i < len && (isalnum((unsigned char)p[i]) || p[i] == '_' ||
	    p[i] == '-'))
		i++;
	namelen = i;
	if (namelen == 0 || i == len || p[i] != ':')
		return fail(err, errlen, file, lineno,
		    "expected NAME: command, NAME made of [A-Za-z0-9_-]");
	if (namelen > PROCTYPE_NAME_MAX)	/* room for ".N" in a dyno name */
		return fail(err, errlen, file, lineno, "process type name too long");
	if (namelen == 3 && strncmp(p, "run", 3) == 0)
		return fail(err, errlen, file, lineno,
		    "\"run\" is reserved for one-off dynos (run.N)");
	memcpy(name, p, namelen);
	name[namelen] = '\0';
	for (i++; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
		;
	start = i;
	while (len > start && (p[len - 1] == ' ' || p[len - 1] == '\t' ||
	    p[len - 1] == '\r'))	/* CRs of a doubly converted file too */
		len--;
	if (start == len)
		return fail(err, errlen, file, lineno, "empty command");
	if (procfile_find(pf, name) != NULL) {
		char msg[128];
		snprintf(msg, sizeof(msg), "duplicate process type \"%s\"", name);
		return fail(err, errlen, file, lineno, msg);
	}
	if (pf->ntypes >= PROCFILE_TYPES_MAX)
		return fail(err, errlen, file, lineno, "too many process types");
	if (procfile_add(pf, name, namelen, p + start, len - start) == -1) {
		snprintf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	return 0;
}

int
procfile_parse(const char *text, size_t len, const char *file,
    struct procfile *pf, char *err, size_t errlen)
{
	size_t lineno = 0, off = 0;

	pf->types = NULL;
	pf->ntypes = 0;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t linelen = nl ? (size_t)(nl - (text + off)) : len - off;

		lineno++;
		if (procfile_line(pf, text + off, linelen, file, lineno, err,
		    errlen) == -1) {
			procfile_free(pf);
			return -1;
		}
		off += linelen + (nl != NULL);
	}
	return 0;
}

int
procfile_load(const char *path, struct procfile *pf, char *err, size_t errlen)
{
	char *text;
	size_t len;
	int rc;

	pf->types = NULL;
	pf->ntypes = 0;
	/* The app's own file (dev mode): only a regular file, and not
	 * through a symlink out of its folder. */
	if (file_read_in(path, &text, &len, PROCFILE_MAX) == -1) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    file_read_error(errno));
		return -1;
	}
	rc = procfile_parse(text, len, path, pf, err, errlen);
	free(text);
	return rc;
}

const struct proctype *
procfile_find(const struct procfile *pf, const char *name)
{
	size_t i;

	for (i = 0; i < pf->ntypes; i++)
		if (strcmp(pf->types[i].name, name) == 0)
			return &pf->types[i];
	return NULL;
}

void
procfile_free(struct procfile *pf)
{
	size_t i;

	for (i = 0; i < pf->ntypes; i++)
		free(pf->types[i].command);
	free(pf->types);
	pf->types = NULL;
	pf->ntypes = 0;
}
