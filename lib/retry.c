/*
 * retry.c: when to try an HTTP request again, and how long to wait first:
 * one policy for every request the programs make (dyno-backup's stores,
 * dyno-deploy's URL sources), the one curl's --retry follows.  A failure
 * that may pass (the peer unreachable, a timeout, a connection cut, 408,
 * 429 or a 5xx) is tried again after 1 s, then 2, 4 ... up to a cap, or
 * after what the answer's Retry-After says.  Nothing else is: a 404 or a
 * body over its limit will not get better by asking again.  No libcurl
 * here (lib/ also builds with musl): the caller says which of its
 * transport errors may pass.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <string.h>
#include <time.h>

#include "dyno.h"

void
retry_init(struct retry *r, long max_retries, long cap_ms)
{
	r->made = 0;
	r->max = max_retries;
	r->cap_ms = cap_ms;
	r->wait_ms = 1000 < cap_ms ? 1000 : cap_ms;
}

int
retry_worth(int transient, long status)
{
	if (transient)
		return 1;
	return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

/*
 * A Retry-After value in seconds from now: delta-seconds or an HTTP-date
 * (a date gone by is 0).  -1 for anything else, and for a wait of more
 * than a year, which no store means.
 */
long
retry_after_parse(const char *v, time_t now)
{
	static const char *const forms[] = {
		"%a, %d %b %Y %H:%M:%S GMT",	/* Sun, 06 Nov 1994 08:49:37 GMT */
		"%A, %d-%b-%y %H:%M:%S GMT",	/* Sunday, 06-Nov-94 08:49:37 GMT */
		"%a %b %e %H:%M:%S %Y",		/* Sun Nov  6 08:49:37 1994 */
	};
	struct tm tm;
	const char *end;
	size_t i;
	long n;
	time_t t;

	v += strspn(v, " \t");
	if (isdigit((unsigned char)*v)) {
		/* delta-seconds: digits alone, then only blanks */
		for (n = 0; isdigit((unsigned char)*v); v++)
			if ((n = n * 10 + (*v - '0')) > 86400 * 365)
				return -1;
		return v[strspn(v, " \t\r\n")] == '\0' ? n : -1;
	}
	/* an HTTP-date in any of RFC 9110's three forms */
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		memset(&tm, 0, sizeof(tm));
		if ((end = strptime(v, forms[i], &tm)) != NULL &&
		    end[strspn(end, " \t\r\n")] == '\0' &&
		    (t = timegm(&tm)) != -1)
			return t <= now ? 0 : t - now > 86400 * 365 ? -1 :
			    (long)(t - now);
	}
	return -1;
}

long
retry_next(struct retry *r, long retry_after)
{
	long ms;

	if (r->made >= r->max)
		return -1;
	r->made++;
	if (retry_after >= 0)
		ms = retry_after > r->cap_ms / 1000 ? r->cap_ms : retry_after * 1000;
	else
		ms = r->wait_ms;
	r->wait_ms = r->wait_ms * 2 > r->cap_ms ? r->cap_ms : r->wait_ms * 2;
	return ms;
}
