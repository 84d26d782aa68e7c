/*
 * log.c: Heroku's log line format.  One line per event, prefixed with an
 * RFC 3339 timestamp in UTC with microseconds, then "source[dyno]: ".
 */
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "dyno.h"

size_t
log_timestamp(char *buf, size_t len)
{
	/* The date part changes once a second; a busy router logs many lines
	 * a second, so it is made once and reused. */
	static time_t cached_sec = -1;
	static char cached[32];
	static size_t cached_len;
	struct timeval tv;
	struct tm tm;
	long us;
	int i;

	gettimeofday(&tv, NULL);
	if (tv.tv_sec != cached_sec) {
		gmtime_r(&tv.tv_sec, &tm);
		cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S",
		    &tm);
		cached_sec = tv.tv_sec;
	}
	if (len < cached_len + 14)
		return 0;
	memcpy(buf, cached, cached_len);
	buf[cached_len] = '.';
	for (i = 6, us = (long)tv.tv_usec; i > 0; i--, us /= 10)
		buf[cached_len + (size_t)i] = (char)('0' + us % 10);
	memcpy(buf + cached_len + 7, "+00:00", 7);
	return cached_len + 13;
}

void
log_raw(FILE *fp, const char *source, const char *dyno, const char *text,
    size_t len)
{
	char ts[64];

	log_timestamp(ts, sizeof(ts));
	fprintf(fp, "%s %s[%s]: ", ts, source, dyno);
	fwrite(text, 1, len, fp);
	fputc('\n', fp);
}

void
log_event(FILE *fp, const char *source, const char *dyno, const char *fmt, ...)
{
	char text[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(text))
		n = sizeof(text) - 1;
	log_raw(fp, source, dyno, text, (size_t)n);
}
