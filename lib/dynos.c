/*
 * dynos.c: read the supervisor's view of the dynos.  Readers never lock:
 * every file is replaced atomically, so each read sees one whole version.
 * Names with "~" are old processes on their way out; ".tmp." files are
 * writes in progress; run.N are one-off dynos.  See dyno(7).
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

static int
info_cmp(const void *a, const void *b)
{
	const struct dyno_info *x = a, *y = b;
	int c = strcmp(x->type, y->type);

	if (c != 0)
		return c;
	return (x->index > y->index) - (x->index < y->index);
}

static int
info_read(const struct app *a, const char *file, struct dyno_info *d)
{
	char rel[1024], text[8192], buf[64];

	memset(d, 0, sizeof(*d));
	if (snprintf(rel, sizeof(rel), "run/dynos/%s", file) >= (int)sizeof(rel) ||
	    app_read(a, rel, text, sizeof(text)) <= 0)
		return -1;
	if (kv_get(text, "name", d->name, sizeof(d->name)) == -1 ||
	    kv_get(text, "type", d->type, sizeof(d->type)) == -1 ||
	    kv_get(text, "state", d->state, sizeof(d->state)) == -1)
		return -1;
	kv_get(text, "release", d->release, sizeof(d->release));
	kv_get(text, "command", d->command, sizeof(d->command));
	kv_get_long(text, "pid", &d->pid);
	kv_get_long(text, "port", &d->port);
	kv_get_long(text, "rss", &d->rss_kb);
	kv_get_long(text, "restarts", &d->restarts);
	if (kv_get(text, "started", buf, sizeof(buf)) == 0)
		d->started = strtoll(buf, NULL, 10);
	if (kv_get(text, "next_start", buf, sizeof(buf)) == 0)
		d->next_start = strtoll(buf, NULL, 10);
	/*
	 * A state file may be written by whoever the dynos run as: its name
	 * becomes a path (run/health/NAME) and a process to act on, so it
	 * must be the file's own.
	 */
	if (strcmp(d->name, file) != 0 ||
	    (d->index = dyno_name_index(d->name, d->type)) < 0)
		return -1;
	return 0;
}

/* NAME is TYPE.N, TYPE a valid type, N from 1: N; else -1. */
long
dyno_name_index(const char *name, const char *type)
{
	const char *dot = strrchr(name, '.');
	long idx;

	if (dot == NULL || !name_valid(type) ||
	    (size_t)(dot - name) != strlen(type) ||
	    strncmp(name, type, (size_t)(dot - name)) != 0 ||
	    parse_long(dot + 1, 1, 1000000, &idx) == -1)
		return -1;
	return idx;
}

int
dynos_list(const struct app *a, struct dyno_info **out, size_t *n)
{
	struct dyno_info *list = NULL, *nl;
	size_t count = 0, cap = 0;
	struct dirent *de;
	DIR *dir;

	*out = NULL;
	*n = 0;
	if ((dir = app_opendir(a, "run/dynos")) == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || strchr(de->d_name, '~') ||
		    strstr(de->d_name, ".tmp.") ||
		    strncmp(de->d_name, "run.", 4) == 0)
			continue;
		if (count == cap) {
			cap = cap * 2 + 16;
			if ((nl = realloc(list, cap * sizeof(*list))) == NULL) {
				free(list);
				closedir(dir);
				return -1;
			}
			list = nl;
		}
		if (info_read(a, de->d_name, &list[count]) == 0)
			count++;
	}
	closedir(dir);
	if (count > 1)
		qsort(list, count, sizeof(*list), info_cmp);
	*out = list;
	*n = count;
	return 0;
}

int
routes_has(const struct app *a, const char *name)
{
	char text[65536];
	size_t len = strlen(name);
	const char *p;

	if (app_read(a, "run/routes", text, sizeof(text)) < 0)
		return 0;
	for (p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'),
	    p = p ? p + 1 : NULL)
		if (strncmp(p, name, len) == 0 && p[len] == ' ')
			return 1;
	return 0;
}

static int
route_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/*
 * One line of run/routes without its newline: "NAME HOST:PORT" (dyno(7)),
 * NAME a dyno's name ([A-Za-z0-9_.-]) and PORT 1 to 65535.  Each field is
 * copied whole or the line is refused: a name or address cut to fit would
 * be another one.  Blanks around the fields are allowed; nothing else is.
 */
int
route_parse(const char *line, size_t len, char *name, size_t namelen,
    char *addr, size_t addrlen)
{
	size_t i = 0, n0, n1, a0, a1, colon = 0, port = 0;

	while (i < len && route_blank(line[i]))
		i++;
	for (n0 = i; i < len && !route_blank(line[i]); i++)
		if (!isalnum((unsigned char)line[i]) && line[i] != '_' &&
		    line[i] != '-' && line[i] != '.')
			goto bad;
	n1 = i;
	while (i < len && route_blank(line[i]))
		i++;
	for (a0 = i; i < len && !route_blank(line[i]); i++) {
		if ((unsigned char)line[i] <= 0x20 || (unsigned char)line[i] >= 0x7f)
			goto bad;
		if (line[i] == ':')
			colon = i;
	}
	a1 = i;
	while (i < len && route_blank(line[i]))
		i++;
	if (i < len || n1 == n0 || n1 - n0 >= namelen ||
	    n1 - n0 >= DYNO_NAME_MAX || a1 - a0 >= addrlen ||
	    colon <= a0 || colon + 1 == a1 || a1 - colon > 6)
		goto bad;
	for (i = colon + 1; i < a1; i++) {
		if (line[i] < '0' || line[i] > '9')
			goto bad;
		port = port * 10 + (size_t)(line[i] - '0');
	}
	if (port < 1 || port > 65535)
		goto bad;
	memcpy(name, line + n0, n1 - n0);
	name[n1 - n0] = '\0';
	memcpy(addr, line + a0, a1 - a0);
	addr[a1 - a0] = '\0';
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

/*
 * "@web want=W starting=S crashed=C restart=T", exactly as
 * web_status_format writes it: one space between fields, the keys in this
 * order, plain decimals with no sign and no leading zero, the counts at
 * most WEB_STATUS_COUNT_MAX and T at most 15 digits.  A dyno could write
 * this folder, so anything else is refused, not read in part.  "@" starts
 * no dyno name, so route_parse refuses this line and older readers skip it.
 */
static int
status_field(const char *line, size_t len, size_t *i, const char *key,
    size_t maxdigits, long long *out)
{
	size_t klen = strlen(key), d0;
	long long v = 0;

	if (*i >= len || line[*i] != ' ')
		return -1;
	(*i)++;
	if (len - *i < klen + 1 || memcmp(line + *i, key, klen) != 0 ||
	    line[*i + klen] != '=')
		return -1;
	*i += klen + 1;
	for (d0 = *i; *i < len && line[*i] >= '0' && line[*i] <= '9'; (*i)++) {
		if (*i - d0 >= maxdigits)
			return -1;
		v = v * 10 + (line[*i] - '0');
	}
	if (*i == d0 || (line[d0] == '0' && *i - d0 > 1))
		return -1;
	*out = v;
	return 0;
}

int
web_status_parse(const char *line, size_t len, struct web_status *st)
{
	long long want, starting, crashed, restart;
	size_t i = 4;

	if (len < 4 || memcmp(line, "@web", 4) != 0 ||
	    status_field(line, len, &i, "want", 7, &want) == -1 ||
	    status_field(line, len, &i, "starting", 7, &starting) == -1 ||
	    status_field(line, len, &i, "crashed", 7, &crashed) == -1 ||
	    status_field(line, len, &i, "restart", 15, &restart) == -1 ||
	    i != len || want > WEB_STATUS_COUNT_MAX ||
	    starting > WEB_STATUS_COUNT_MAX || crashed > WEB_STATUS_COUNT_MAX ||
	    (crashed == 0) != (restart == 0)) {
		errno = EINVAL;
		return -1;
	}
	st->want = (long)want;
	st->starting = (long)starting;
	st->crashed = (long)crashed;
	st->restart = restart;
	return 0;
}

/* The line without its newline; its length, or -1 if it does not fit. */
int
web_status_format(char *buf, size_t size, const struct web_status *st)
{
	int n = snprintf(buf, size, "@web want=%ld starting=%ld crashed=%ld "
	    "restart=%lld", st->want, st->starting, st->crashed, st->restart);

	return n < 0 || (size_t)n >= size ? -1 : n;
}
