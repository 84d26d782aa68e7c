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

/* Does the URL still carry a password: "user:pw@" or a password= parameter? */
static int
has_password(const char *url)
{
	const char *rest = strstr(url, "://"), *end, *at, *q, *p;

	if (rest == NULL)
		return 0;
	rest += 3;
	end = rest + strcspn(rest, "/?#");
	at = NULL;
	for (p = rest; p < end; p++)
		if (*p == '@')
			at = p;
	if (at != NULL && memchr(rest, ':', (size_t)(at - rest)) != NULL &&
	    strncmp(memchr(rest, ':', (size_t)(at - rest)), ":***@", 5) != 0)
		return 1;
	if ((q = strchr(url, '?')) != NULL)
		for (p = q; (p = strstr(p, "password=")) != NULL; p++)
			if ((p[-1] == '?' || p[-1] == '&') &&
			    strncmp(p + 9, "***", 3) != 0)
				return 1;
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
