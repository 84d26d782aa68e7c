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
	struct timeval tv;
	struct tm tm;
	size_t n;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	if (n == 0)
		return 0;
	n += (size_t)snprintf(buf + n, len - n, ".%06ld+00:00", (long)tv.tv_usec);
	return n < len ? n : len - 1;
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
