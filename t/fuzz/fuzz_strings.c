/*
 * fuzz_strings.c: libFuzzer harness for the number, duration and size
 * parsers every program's options and state files go through
 * (lib/strings.c).  Each answer is checked against a second, plain reading
 * done here in 128-bit arithmetic:
 *
 *   - accepted: the text is exactly [+-]digits (parse_long) or digits and a
 *     known unit (durations, sizes), and the value is the exact product,
 *     inside its bounds, never wrapped;
 *   - refused: the text is not of that form, or the exact value is out of
 *     range (parse_long) or past the limit that keeps sums of values from
 *     overflowing (half of int64 for milliseconds, a quarter of long for
 *     KB);
 *   - a value printed back in the smallest unit parses to itself;
 *   - a Retry-After value (lib/retry.c, read from what a remote store or
 *     source server answers) is -1 or a wait of at most a year (a date
 *     further ahead is not believed), and digits alone read as themselves.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dyno.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

typedef __int128 big;

/* Plain digits from s; *end after them.  Saturates far above any limit. */
static int
digits(const char *s, big *v, const char **end)
{
	const char *p = s;

	*v = 0;
	for (; *p >= '0' && *p <= '9'; p++)
		if (*v < ((big)1 << 100))
			*v = *v * 10 + (*p - '0');
	*end = p;
	return p > s;
}

static void
check_long(const char *s, long min, long max)
{
	const char *p = s, *end;
	long out = 12345;
	big v;
	int neg = 0, form, rc;

	if (*p == '+' || *p == '-')
		neg = *p++ == '-';
	form = digits(p, &v, &end) && *end == '\0';
	if (neg)
		v = -v;
	rc = parse_long(s, min, max, &out);
	if (!form) {
		CHECK(rc == -1);
		return;
	}
	if (v < min || v > max) {
		CHECK(rc == -1 && errno == ERANGE);
		CHECK(out == 12345);	/* untouched */
		return;
	}
	CHECK(rc == 0 && (big)out == v);
}

static void
check_duration(const char *s)
{
	static const struct {
		const char *unit;
		big mul;
	} units[] = {
		{ "", 1000 }, { "s", 1000 }, { "ms", 1 }, { "m", 60000 },
		{ "min", 60000 }, { "h", 3600000 },
	};
	const char *end;
	big v, mul = 0;
	int64_t out = -7, again;
	char text[64];
	size_t i;
	int rc = parse_duration_ms(s, &out);

	if (!digits(s, &v, &end)) {
		CHECK(rc == -1);
		return;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0)
			mul = units[i].mul;
	if (mul == 0) {
		CHECK(rc == -1);
		return;
	}
	if (v * mul > INT64_MAX / 2) {
		CHECK(rc == -1);
		return;
	}
	CHECK(rc == 0 && (big)out == v * mul && out >= 0);
	snprintf(text, sizeof(text), "%lldms", (long long)out);
	CHECK(parse_duration_ms(text, &again) == 0 && again == out);
}

static void
check_size(const char *s)
{
	static const struct {
		const char *unit;
		big mul;
	} units[] = {
		{ "", 1024 }, { "m", 1024 }, { "mb", 1024 }, { "k", 1 },
		{ "kb", 1 }, { "g", 1024 * 1024 }, { "gb", 1024 * 1024 },
	};
	const char *end;
	big v, mul = 0;
	long out = -7, again;
	char text[64];
	size_t i;
	int rc = parse_size_kb(s, &out);

	if (!digits(s, &v, &end)) {
		CHECK(rc == -1);
		return;
	}
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcasecmp(end, units[i].unit) == 0)
			mul = units[i].mul;
	if (mul == 0) {
		CHECK(rc == -1);
		return;
	}
	if (v * mul > LONG_MAX / 4) {
		CHECK(rc == -1);
		return;
	}
	CHECK(rc == 0 && (big)out == v * mul && out >= 0);
	snprintf(text, sizeof(text), "%ldK", out);
	CHECK(parse_size_kb(text, &again) == 0 && again == out);
}

static void
check_name(const char *s)
{
	size_t i, n = strlen(s);
	int ok = n > 0 && n < DYNO_NAME_MAX;

	for (i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '_' || s[i] == '-'))
			ok = 0;
	CHECK(name_valid(s) == ok);
}

static void
check_retry_after(const char *s)
{
	/* 2001-09-09 01:46:40 UTC: a date past it is a wait, one before none */
	long got = retry_after_parse(s, (time_t)1000000000);
	size_t n = strspn(s, "0123456789");
	__int128 v = 0;
	size_t i;

	if (got < -1 || got > 86400L * 365)
		__builtin_trap();
	if (n > 0 && n == strlen(s)) {
		for (i = 0; i < n && v <= 86400L * 365; i++)
			v = v * 10 + (s[i] - '0');
		if (v > 86400L * 365 ? got != -1 : got != (long)v)
			__builtin_trap();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s;

	if (size > 4096 || (s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';		/* the text is what comes before any NUL */
	check_long(s, LONG_MIN, LONG_MAX);
	check_long(s, 0, 100);
	check_long(s, 2, INT_MAX);
	check_long(s, -5, -1);
	check_duration(s);
	check_size(s);
	check_name(s);
	check_retry_after(s);
	free(s);
	return 0;
}
