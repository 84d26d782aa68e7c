/*
 * env.c: the environment a dyno starts with.  Config vars come from
 * .dyno/config (KEY=VALUE lines, "\n" and "\\" escaped in values); dev mode
 * also reads .env the way foreman does (quotes, "export", comments).
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

#define ENV_FILE_MAX (1024 * 1024)

int
key_valid(const char *key, size_t len)
{
	size_t i;

	if (len == 0 || !(isalpha((unsigned char)key[0]) || key[0] == '_'))
		return 0;
	for (i = 1; i < len; i++)
		if (!(isalnum((unsigned char)key[i]) || key[i] == '_'))
			return 0;
	return 1;
}

int
env_init(struct env *e, char **base)
{
	e->vars = NULL;
	e->n = e->cap = 0;
	if ((e->vars = calloc(1, sizeof(char *))) == NULL)
		return -1;
	e->cap = 1;
	for (; base != NULL && *base != NULL; base++) {
		const char *eq = strchr(*base, '=');
		char key[256];

		if (eq == NULL || (size_t)(eq - *base) >= sizeof(key))
			continue;
		memcpy(key, *base, (size_t)(eq - *base));
		key[eq - *base] = '\0';
		if (env_set(e, key, eq + 1) == -1)
			return -1;
	}
	return 0;
}

static ssize_t
env_index(const struct env *e, const char *key, size_t klen)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		if (strncmp(e->vars[i], key, klen) == 0 && e->vars[i][klen] == '=')
			return (ssize_t)i;
	return -1;
}

int
env_set(struct env *e, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = strlen(value);
	ssize_t idx;
	char *s;

	if ((s = malloc(klen + vlen + 2)) == NULL)
		return -1;
	memcpy(s, key, klen);
	s[klen] = '=';
	memcpy(s + klen + 1, value, vlen + 1);
	idx = env_index(e, key, klen);
	if (idx >= 0) {
		free(e->vars[idx]);
		e->vars[idx] = s;
		return 0;
	}
	if (e->n + 2 > e->cap) {
		size_t ncap = e->cap * 2 + 8;
		char **nv = realloc(e->vars, ncap * sizeof(char *));
		if (nv == NULL) {
			free(s);
			return -1;
		}
		e->vars = nv;
		e->cap = ncap;
	}
	e->vars[e->n++] = s;
	e->vars[e->n] = NULL;
	return 0;
}

int
env_unset(struct env *e, const char *key)
{
	ssize_t idx = env_index(e, key, strlen(key));

	if (idx < 0)
		return 0;
	free(e->vars[idx]);
	memmove(&e->vars[idx], &e->vars[idx + 1],
	    (e->n - (size_t)idx) * sizeof(char *));
	e->n--;
	return 0;
}

const char *
env_get(const struct env *e, const char *key)
{
	size_t klen = strlen(key);
	ssize_t idx = env_index(e, key, klen);

	return idx < 0 ? NULL : e->vars[idx] + klen + 1;
}

int
env_copy(struct env *dst, const struct env *src)
{
	return env_init(dst, src->vars);
}

void
env_free(struct env *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->vars[i]);
	free(e->vars);
	e->vars = NULL;
	e->n = e->cap = 0;
}

static int
env_error(char *err, size_t errlen, const char *file, size_t line,
    const char *msg)
{
	snprintf(err, errlen, "%s:%zu: %s", file, line, msg);
	errno = EINVAL;
	return -1;
}

/* Split a line into key and the rest after '='; the key must be valid. */
static int
split_key(const char *p, size_t len, char *key, size_t keylen, size_t *valoff)
{
	const char *eq = memchr(p, '=', len);

	if (eq == NULL || (size_t)(eq - p) >= keylen ||
	    !key_valid(p, (size_t)(eq - p)))
		return -1;
	memcpy(key, p, (size_t)(eq - p));
	key[eq - p] = '\0';
	*valoff = (size_t)(eq - p) + 1;
	return 0;
}

int
env_parse_config(struct env *e, const char *text, size_t len, const char *file,
    char *err, size_t errlen)
{
	size_t off = 0, lineno = 0;
	char key[256], *val;

	if ((val = malloc(len + 1)) == NULL)
		return -1;
	while (off < len) {
		const char *p = text + off, *nl = memchr(p, '\n', len - off);
		size_t linelen = nl ? (size_t)(nl - p) : len - off, voff, i, o = 0;

		off += linelen + (nl != NULL);
		lineno++;
		if (linelen == 0)
			continue;
		if (memchr(p, '\0', linelen) != NULL ||
		    split_key(p, linelen, key, sizeof(key), &voff) == -1) {
			free(val);
			return env_error(err, errlen, file, lineno,
			    "expected KEY=VALUE");
		}
		for (i = voff; i < linelen; i++) {
			if (p[i] != '\\') {
				val[o++] = p[i];
				continue;
			}
			if (++i == linelen || (p[i] != 'n' && p[i] != '\\')) {
				free(val);
				return env_error(err, errlen, file, lineno,
				    "bad escape (only \\n and \\\\)");
			}
			val[o++] = p[i] == 'n' ? '\n' : '\\';
		}
		val[o] = '\0';
		if (env_set(e, key, val) == -1) {
			free(val);
			return -1;
		}
	}
	free(val);
	return 0;
}

/* A .env value: 'single' is literal, "double" knows \n \t \" \\, bare is trimmed. */
static int
dotenv_value(const char *p, size_t len, char *out)
{
	size_t i = 0, o = 0;

	while (i < len && (p[i] == ' ' || p[i] == '\t'))
		i++;
	if (i < len && (p[i] == '\'' || p[i] == '"')) {
		char q = p[i++];
		for (; i < len && p[i] != q; i++) {
			if (q == '"' && p[i] == '\\' && i + 1 < len) {
				i++;
				out[o++] = p[i] == 'n' ? '\n' : p[i] == 't' ? '\t' :
				    p[i];
			} else
				out[o++] = p[i];
		}
		if (i == len)
			return -1;
		for (i++; i < len && (p[i] == ' ' || p[i] == '\t'); i++)
			;
		if (i < len && p[i] != '#')
			return -1;
	} else {
		size_t end = len;
		const char *hash = NULL;
		size_t j;
		for (j = i; j < len; j++)
			if (p[j] == '#' && j > i && (p[j - 1] == ' ' ||
			    p[j - 1] == '\t')) {
				hash = p + j;
				break;
			}
		if (hash != NULL)
			end = (size_t)(hash - p);
		while (end > i && (p[end - 1] == ' ' || p[end - 1] == '\t'))
			end--;
		memcpy(out, p + i, end - i);
		o = end - i;
	}
	out[o] = '\0';
	return 0;
}

int
env_parse_dotenv(struct env *e, const char *text, size_t len, const char *file,
    char *err, size_t errlen)
{
	size_t off = 0, lineno = 0;
	char key[256], *val;

	if ((val = malloc(len + 1)) == NULL)
		return -1;
	while (off < len) {
		const char *p = text + off, *nl = memchr(p, '\n', len - off);
		size_t linelen = nl ? (size_t)(nl - p) : len - off, voff;

		off += linelen + (nl != NULL);
		lineno++;
		if (linelen > 0 && p[linelen - 1] == '\r')
			linelen--;
		while (linelen > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			linelen--;
		}
		if (linelen == 0 || *p == '#')
			continue;
		if (linelen > 7 && strncmp(p, "export ", 7) == 0) {
			p += 7;
			linelen -= 7;
		}
		if (memchr(p, '\0', linelen) != NULL ||
		    split_key(p, linelen, key, sizeof(key), &voff) == -1 ||
		    dotenv_value(p + voff, linelen - voff, val) == -1) {
			free(val);
			return env_error(err, errlen, file, lineno,
			    "expected KEY=VALUE");
		}
		if (env_set(e, key, val) == -1) {
			free(val);
			return -1;
		}
	}
	free(val);
	return 0;
}

/*
 * The config file's text for e, env_parse_config's inverse: KEY=VALUE
 * lines, newline and backslash escaped.  Returns a malloc'd buffer.
 */
char *
env_format_config(const struct env *e, size_t *len)
{
	size_t cap = 64, n = 0, i;
	char *out = malloc(cap);

	for (i = 0; out != NULL && i < e->n; i++) {
		const char *p;
		for (p = e->vars[i]; ; p++) {
			if (n + 3 > cap) {
				char *nb = realloc(out, cap *= 2);
				if (nb == NULL) {
					free(out);
					return NULL;
				}
				out = nb;
			}
			if (*p == '\0') {
				out[n++] = '\n';
				break;
			}
			if (*p == '\n') {
				out[n++] = '\\';
				out[n++] = 'n';
			} else if (*p == '\\') {
				out[n++] = '\\';
				out[n++] = '\\';
			} else
				out[n++] = *p;
		}
	}
	*len = n;
	return out;
}

/* Load path; or, with dirfd not -1, name beneath dirfd (path for messages). */
static int
env_load(struct env *e, int dirfd, const char *name, const char *path,
    char *err, size_t errlen, int (*parse)(struct env *, const char *, size_t,
    const char *, char *, size_t))
{
	char *text;
	size_t len;
	int rc;

	/* .env is the app's own file (dev mode), as its Procfile. */
	if ((dirfd == -1 ? file_read_in(path, &text, &len, ENV_FILE_MAX) :
	    file_read_beneath(dirfd, name, &text, &len, ENV_FILE_MAX)) == -1) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot read %s: %s", path,
		    file_read_error(errno));
		return -1;
	}
	rc = parse(e, text, len, path, err, errlen);
	free(text);
	return rc;
}

int
env_load_config(struct env *e, const char *path, char *err, size_t errlen)
{
	return env_load(e, -1, NULL, path, err, errlen, env_parse_config);
}

/* A config file by its name in the folder dirfd (a .dyno opened once). */
int
env_load_config_at(struct env *e, int dirfd, const char *name,
    const char *path, char *err, size_t errlen)
{
	return env_load(e, dirfd, name, path, err, errlen, env_parse_config);
}

int
env_load_dotenv(struct env *e, const char *path, char *err, size_t errlen)
{
	return env_load(e, -1, NULL, path, err, errlen, env_parse_dotenv);
}
