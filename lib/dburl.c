/*
 * dburl.c: a database URL, as DATABASE_URL holds it, read for dyno-backup.
 * A postgres URL loses its password (from the userinfo or a password=
 * parameter) to its own field, so that no command line has to show it,
 * and gets a redacted twin for meta files and messages.  An sqlite URL, or
 * a path ending in .db, .sqlite or .sqlite3, becomes an absolute path.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dyno.h"

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* %XX decoding of s[0..n), into out (NUL-terminated). */
static int
percent_decode(const char *s, size_t n, char *out, size_t outlen)
{
	size_t i, o = 0;
	int h, l;

	for (i = 0; i < n; i++) {
		if (o + 1 >= outlen)
			return -1;
		if (s[i] == '%' && i + 2 < n && (h = hexval(s[i + 1])) >= 0 &&
		    (l = hexval(s[i + 2])) >= 0) {
			out[o++] = (char)(h << 4 | l);
			i += 2;
		} else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return 0;
}

static int
has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

static int
fail(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "database URL: %s", msg);
	errno = EINVAL;
	return -1;
}

/*
 * Where libpq's host list ends in a postgres URL: the user info runs to the
 * first '@' before any '/'; then come the hosts, each a name or a [v6
 * address] with its port, ',' between them, up to a '/' (the path) or a
 * '?' (the query, from the first '?' after the host list).  libpq knows no
 * '#' fragment, so neither do we: a '#' is a byte like any other.  NULL for
 * a '[' with no ']', which libpq refuses.
 */
static const char *
host_end(const char *url)
{
	const char *p = strstr(url, "://") + 3, *at;

	at = p + strcspn(p, "@/");
	p = *at == '@' ? at + 1 : p;
	for (;;) {
		if (*p == '[' && (p = strchr(p, ']')) == NULL)
			return NULL;
		p += strcspn(p, ",/?");
		if (*p != ',')
			return p;
		p++;
	}
}

/*
 * The query of s, or NULL when it has none.  A query with no path before
 * it gets an empty one, "h?x=1" -> "h/?x=1" (libpq reads both alike):
 * without a '/', libpq looks for the user info's '@' in the query too, so
 * taking a parameter out could turn what is left into a user info.  After
 * it, nothing done to the query changes how the rest reads.
 */
static char *
query_pathed(char *s, size_t size)
{
	const char *e = host_end(s);
	char *p;

	if (e == NULL)
		return NULL;
	p = s + (e - s);
	if (*p != '?')
		return strchr(p, '?');
	if (strlen(s) + 2 > size)
		return NULL;
	memmove(p + 1, p, strlen(p) + 1);
	*p = '/';
	return p + 1;
}

/*
 * Take every password parameter out of s (in place), the value of the last
 * to pw; or, with redact, show each value as "***" (s has room for size
 * bytes).  Parameters run from where libpq's query starts to the end, '&'
 * between them, as libpq reads them; a password parameter is one whose
 * name percent-decodes to "password", as libpq decodes it: "pass%77ord="
 * is one too.
 */
static int
take_param(char *s, size_t size, char *pw, size_t pwlen, int redact)
{
	char *q, *p, *e, *eq, name[16], tmp[4096];
	size_t off;

	if ((q = query_pathed(s, size)) == NULL)
		return 0;
	for (p = q + 1; *p != '\0';) {
		e = p + strcspn(p, "&");
		eq = memchr(p, '=', (size_t)(e - p));
		if (eq == NULL || percent_decode(p, (size_t)(eq - p), name,
		    sizeof(name)) == -1 || strcmp(name, "password") != 0) {
			p = *e == '&' ? e + 1 : e;
			continue;
		}
		if (redact) {
			off = (size_t)(eq + 1 - s);
			if (e - eq - 1 != 3 || strncmp(eq + 1, "***", 3) != 0) {
				snprintf(tmp, sizeof(tmp), "%.*s***%s", (int)off, s,
				    e);
				snprintf(s, size, "%s", tmp);
			}
			if (off + 3 > strlen(s))
				break;
			p = s + off + 3;
			if (*p == '&')
				p++;
			continue;
		}
		if (percent_decode(eq + 1, (size_t)(e - eq - 1), pw, pwlen) == -1)
			return -1;
		if (*e == '&')
			memmove(p, e + 1, strlen(e + 1) + 1);
		else {
			memmove(p, e, strlen(e) + 1);
			if (p[-1] == '&' || p[-1] == '?') {
				memmove(p - 1, p, strlen(p) + 1);
				p--;
			}
		}
	}
	return 0;
}

int
dburl_parse(const char *url, const char *basedir, struct dburl *db, char *err,
    size_t errlen)
{
	const char *rest, *at, *colon;
	size_t len = strlen(url);

	memset(db, 0, sizeof(*db));
	/* half the room: redacting "password=" parameters makes it longer */
	if (len >= sizeof(db->url) / 2)
		return fail(err, errlen, "too long (over 2 kB)");
	if (strncmp(url, "postgres://", 11) == 0 ||
	    strncmp(url, "postgresql://", 13) == 0) {
		db->type = DBURL_POSTGRES;
		rest = strstr(url, "://") + 3;
		/* as libpq reads it: the user info is up to the first '@'
		 * before any '/', its password after its first ':' */
		at = rest + strcspn(rest, "@/");
		at = *at == '@' ? at : NULL;
		colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
		if (host_end(url) == NULL)
			return fail(err, errlen, "a '[' with no ']' in the host");
		if (colon != NULL) {
			if (percent_decode(colon + 1, (size_t)(at - colon - 1),
			    db->password, sizeof(db->password)) == -1)
				return fail(err, errlen, "password too long");
			snprintf(db->url, sizeof(db->url), "%.*s%s",
			    (int)(colon - url), url, at);
			snprintf(db->redacted, sizeof(db->redacted), "%.*s:***%s",
			    (int)(colon - url), url, at);
		} else {
			snprintf(db->url, sizeof(db->url), "%s", url);
			snprintf(db->redacted, sizeof(db->redacted), "%s", url);
		}
		if (take_param(db->url, sizeof(db->url), db->password,
		    sizeof(db->password), 0) == -1)
			return fail(err, errlen, "password too long");
		(void)take_param(db->redacted, sizeof(db->redacted), NULL, 0, 1);
		return 0;
	}
	if (strncmp(url, "sqlite:", 7) == 0 || strncmp(url, "sqlite3:", 8) == 0) {
		rest = strchr(url, ':') + 1;
		if (strncmp(rest, "//", 2) == 0)
			rest += 2;	/* sqlite:///abs, sqlite://rel */
	} else if (has_suffix(url, ".db") || has_suffix(url, ".sqlite") ||
	    has_suffix(url, ".sqlite3"))
		rest = url;
	else
		return fail(err, errlen,
		    "not postgres://, postgresql://, sqlite:// or a .db file");
	db->type = DBURL_SQLITE;
	if (*rest == '\0')
		return fail(err, errlen, "no file name");
	if (strchr(rest, '\n') != NULL)
		return fail(err, errlen, "a newline in the file name");
	if ((*rest == '/' ? snprintf(db->path, sizeof(db->path), "%s", rest) :
	    snprintf(db->path, sizeof(db->path), "%s/%s", basedir, rest)) >=
	    (int)sizeof(db->path))
		return fail(err, errlen, "path too long");
	snprintf(db->url, sizeof(db->url), "sqlite://%s", db->path);
	snprintf(db->redacted, sizeof(db->redacted), "%s", db->url);
	return 0;
}

int
xml_tag(const char *xml, const char *tag, char *out, size_t outlen)
{
	char open[64], close[64];
	const char *p, *e;

	out[0] = '\0';
	if (snprintf(open, sizeof(open), "<%s>", tag) >= (int)sizeof(open) ||
	    snprintf(close, sizeof(close), "</%s>", tag) >= (int)sizeof(close))
		return -1;
	if ((p = strstr(xml, open)) == NULL)
		return -1;
	p += strlen(open);
	if ((e = strstr(p, close)) == NULL || (size_t)(e - p) >= outlen)
		return -1;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
	return 0;
}
