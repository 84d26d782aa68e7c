/* strings.c: number, duration and name parsers that reject trailing garbage. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

int
parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0' || isspace((unsigned char)*s)) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	v = strtol(s, &end, 10);
	if ((errno != 0 && errno != ERANGE) || *end != '\0') {
		errno = EINVAL;
		return -1;
	}
	if (errno == ERANGE || v < min || v > max) {	/* past long too */
		errno = ERANGE;
		return -1;
	}
	*out = v;
	return 0;
}

/* Split "250ms" into 250 and "ms"; the number part must be plain digits. */
static int
split_number(const char *s, long long *num, const char **unit)
{
	long long v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p)) {
		errno = EINVAL;
		return -1;
	}
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (LLONG_MAX - 9) / 10) {
			errno = ERANGE;
			return -1;
		}
		v = v * 10 + (*p - '0');
	}
	*num = v;
	*unit = p;
	return 0;
}

int
parse_duration_ms(const char *s, int64_t *out)
{
	long long v, mul;
	const char *unit;

	if (split_number(s, &v, &unit) == -1)
		return -1;
	if (*unit == '\0' || strcmp(unit, "s") == 0)
		mul = 1000;
	else if (strcmp(unit, "ms") == 0)
		mul = 1;
	else if (strcmp(unit, "m") == 0 || strcmp(unit, "min") == 0)
		mul = 60000;
	else if (strcmp(unit, "h") == 0)
		mul = 3600000;
	else {
		errno = EINVAL;
		return -1;
	}
	if (v > INT64_MAX / mul / 2) {
		errno = ERANGE;
		return -1;
	}
	*out = v * mul;
	return 0;
}

int
parse_size_kb(const char *s, long *out)
{
	long long v, mul;
	const char *unit;

	if (split_number(s, &v, &unit) == -1)
		return -1;
	if (*unit == '\0' || strcasecmp(unit, "M") == 0 ||
	    strcasecmp(unit, "MB") == 0)
		mul = 1024;
	else if (strcasecmp(unit, "K") == 0 || strcasecmp(unit, "KB") == 0)
		mul = 1;
	else if (strcasecmp(unit, "G") == 0 || strcasecmp(unit, "GB") == 0)
		mul = 1024 * 1024;
	else {
		errno = EINVAL;
		return -1;
	}
	if (v > LONG_MAX / mul / 4) {
		errno = ERANGE;
		return -1;
	}
	*out = (long)(v * mul);
	return 0;
}

int
name_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return i > 0 && i < DYNO_NAME_MAX;
}
