/* kv.c: look a key up in "key=value" lines, as sed -n 's/^key=//p' would. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "dyno.h"

int
kv_get(const char *text, const char *key, char *out, size_t outlen)
{
	size_t klen = strlen(key);
	const char *p = text;

	while (p != NULL && *p != '\0') {
		const char *eol = strchr(p, '\n');
		size_t linelen = eol ? (size_t)(eol - p) : strlen(p);

		if (linelen > klen && strncmp(p, key, klen) == 0 &&
		    p[klen] == '=') {
			size_t vlen = linelen - klen - 1;
			if (vlen >= outlen) {
				errno = ENAMETOOLONG;
				return -1;
			}
			memcpy(out, p + klen + 1, vlen);
			out[vlen] = '\0';
			return 0;
		}
		p = eol ? eol + 1 : NULL;
	}
	errno = ENOENT;
	return -1;
}

int
kv_get_long(const char *text, const char *key, long *out)
{
	char buf[32];

	if (kv_get(text, key, buf, sizeof(buf)) == -1)
		return -1;
	return parse_long(buf, LONG_MIN, LONG_MAX, out);
}
