/*
 * fuzz_dburl.c: libFuzzer harness for what dyno-backup reads from outside:
 * database URLs (DATABASE_URL, --db), the XML an S3 store answers, and the
 * key=value lines of a meta file.  Asserts that a password never survives
 * into the URL given to pg_dump or into the redacted copy.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

static int
hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Does the URL still carry a password, as libpq reads a URL: "user:pw@"
 * in the user info (up to the first '@' before any '/'), or a parameter
 * whose %XX-decoded name is "password" in the query (from the first '?'
 * after the host list, whose hosts may be [v6] addresses; '&' between
 * parameters, and no '#' fragment)?  "***" is the redacted password.
 */
static int
has_password(const char *url)
{
	const char *rest = strstr(url, "://"), *p, *u, *colon;

	if (rest == NULL)
		return 0;
	rest += 3;
	for (u = rest; *u != '\0' && *u != '@' && *u != '/'; u++)
		;
	p = rest;
	if (*u == '@') {
		colon = memchr(rest, ':', (size_t)(u - rest));
		if (colon != NULL && (u - colon - 1 != 3 ||
		    strncmp(colon + 1, "***", 3) != 0))
			return 1;
		p = u + 1;
	}
	for (;;) {
		if (*p == '[') {
			while (*p != '\0' && *p != ']')
				p++;
			if (*p == '\0')
				return 0;
		}
		while (*p != '\0' && *p != ',' && *p != '/' && *p != '?')
			p++;
		if (*p != ',')
			break;
		p++;
	}
	while (*p != '\0' && *p != '?')
		p++;
	if (*p == '\0')
		return 0;
	for (p++; *p != '\0';) {
		const char *e = p + strcspn(p, "&"), *n;
		char name[16];
		size_t k = 0;

		for (n = p; n < e && *n != '=' && k < sizeof(name) - 1; n++) {
			if (*n == '%' && n + 2 < e && hex(n[1]) >= 0 &&
			    hex(n[2]) >= 0) {
				name[k++] = (char)(hex(n[1]) << 4 | hex(n[2]));
				n += 2;
			} else
				name[k++] = *n;
		}
		name[k] = '\0';
		if (n < e && *n == '=' && strcmp(name, "password") == 0 &&
		    (e - n - 1 != 3 || strncmp(n + 1, "***", 3) != 0))
			return 1;
		p = *e == '&' ? e + 1 : e;
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dburl db;
	char *s, err[DYNO_ERR_MAX], out[256];

	if ((s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (dburl_parse(s, "/app", &db, err, sizeof(err)) == 0) {
		if (db.type == DBURL_POSTGRES &&
		    (has_password(db.url) || has_password(db.redacted)))
			__builtin_trap();
		if (db.type == DBURL_SQLITE && db.path[0] != '/')
			__builtin_trap();
	}
	(void)xml_tag(s, "UploadId", out, sizeof(out));
	(void)xml_tag(s, "Code", out, sizeof(out));
	(void)kv_get(s, "sha256", out, sizeof(out));
	free(s);
	return 0;
}
