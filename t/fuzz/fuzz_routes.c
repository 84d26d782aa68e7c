/*
 * fuzz_routes.c: libFuzzer harness for run/routes as dyno-route reads it:
 * "NAME HOST:PORT" lines that dyno-run writes, in a folder a process of
 * the app could write to.  Every line goes through route_parse, whose
 * answer must match this harness's own plain reading:
 *
 *   - accepted exactly when the line is two blank-separated fields, a
 *     dyno name ([A-Za-z0-9_.-], under DYNO_NAME_MAX bytes) and an address
 *     of visible ASCII that fits, ending in :PORT with PORT 1 to 65535;
 *   - the fields come back whole, never cut to fit the caller's buffers;
 *   - a route written the way dyno-run writes it ("%s 127.0.0.1:%d\n")
 *     reads back as itself;
 *   - the web status line ("@web want=W starting=S crashed=C restart=T")
 *     goes through web_status_parse, accepted exactly when sscanf reads it
 *     whole, the values are in bounds and printing them again gives the
 *     same bytes (one spelling only), never by route_parse; and every
 *     status web_status_format writes reads back as itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

/* This harness's reading of one line: 1 and the two fields, or 0. */
static int
reading(const char *line, size_t len, char **name, char **addr)
{
	char *s, *tok[3], *save, *colon;
	size_t i, n = 0;
	long port;

	if (memchr(line, '\0', len) != NULL)
		return 0;
	s = strndup(line, len);
	CHECK(s != NULL);
	for (i = 0; i < len; i++)
		if (s[i] == '\t' || s[i] == '\r')
			s[i] = ' ';
	for (char *t = strtok_r(s, " ", &save); t != NULL && n < 3;
	    t = strtok_r(NULL, " ", &save))
		tok[n++] = t;
	if (n != 2 || strlen(tok[0]) >= DYNO_NAME_MAX || strlen(tok[1]) >= 128)
		goto no;
	for (i = 0; tok[0][i] != '\0'; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789_.-", tok[0][i]) == NULL)
			goto no;
	for (i = 0; tok[1][i] != '\0'; i++)
		if ((unsigned char)tok[1][i] < 0x21 ||
		    (unsigned char)tok[1][i] > 0x7e)
			goto no;
	colon = strrchr(tok[1], ':');
	if (colon == NULL || colon == tok[1] || strlen(colon + 1) > 5 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    parse_long(colon + 1, 1, 65535, &port) == -1)
		goto no;
	*name = strdup(tok[0]);
	*addr = strdup(tok[1]);
	CHECK(*name != NULL && *addr != NULL);
	free(s);
	return 1;
no:
	free(s);
	return 0;
}

/* This harness's reading of a status line: 1 and the values, or 0. */
static int
status_reading(const char *line, size_t len, struct web_status *st)
{
	char *s, again[256];
	long want, starting, crashed;
	long long restart;
	int end = -1, ok;

	if (memchr(line, '\0', len) != NULL)
		return 0;
	s = strndup(line, len);
	CHECK(s != NULL);
	ok = sscanf(s, "@web want=%ld starting=%ld crashed=%ld restart=%lld%n",
	    &want, &starting, &crashed, &restart, &end) == 4 &&
	    end == (int)len && want >= 0 && starting >= 0 && crashed >= 0 &&
	    want <= WEB_STATUS_COUNT_MAX && starting <= WEB_STATUS_COUNT_MAX &&
	    crashed <= WEB_STATUS_COUNT_MAX && restart >= 0 &&
	    restart < 1000000000000000LL && (crashed == 0) == (restart == 0);
	if (ok) {
		snprintf(again, sizeof(again), "@web want=%ld starting=%ld "
		    "crashed=%ld restart=%lld", want, starting, crashed, restart);
		ok = strcmp(again, s) == 0;
	}
	free(s);
	if (ok) {
		st->want = want;
		st->starting = starting;
		st->crashed = crashed;
		st->restart = restart;
	}
	return ok;
}

static void
check_status(const char *line, size_t len)
{
	struct web_status got, want;
	int ok = web_status_parse(line, len, &got) == 0;

	CHECK(ok == status_reading(line, len, &want));
	if (ok)
		CHECK(got.want == want.want && got.starting == want.starting &&
		    got.crashed == want.crashed && got.restart == want.restart);
}

static void
check_line(const char *line, size_t len)
{
	char name[DYNO_NAME_MAX], addr[128], *rname = NULL, *raddr = NULL;
	int ok = route_parse(line, len, name, sizeof(name), addr,
	    sizeof(addr)) == 0;

	CHECK(ok == reading(line, len, &rname, &raddr));
	if (ok) {
		CHECK(strcmp(name, rname) == 0 && strcmp(addr, raddr) == 0);
		/* Smaller buffers refuse rather than cut. */
		CHECK(route_parse(line, len, name, strlen(rname), addr,
		    sizeof(addr)) == -1);
		CHECK(route_parse(line, len, name, sizeof(name), addr,
		    strlen(raddr)) == -1);
	}
	free(rname);
	free(raddr);
	check_status(line, len);
}

/* dyno-run's own lines, from names and ports the input gives. */
static void
check_written(const uint8_t *data, size_t size)
{
	char name[DYNO_NAME_MAX], addr[128], got[DYNO_NAME_MAX], gaddr[128];
	char line[256];
	size_t i, n = 0;
	int len;

	for (i = 0; i + 2 < size && n < 16; i += 3, n++) {
		unsigned port = (unsigned)data[i] << 8 | data[i + 1];
		static const char *const types[] = { "web", "worker", "a_b-c" };

		if (port == 0)
			port = 1;
		snprintf(name, sizeof(name), "%s.%u", types[data[i + 2] % 3],
		    data[i + 2]);
		snprintf(addr, sizeof(addr), "127.0.0.1:%u", port);
		len = snprintf(line, sizeof(line), "%s %s\n", name, addr);
		CHECK(route_parse(line, (size_t)len - 1, got, sizeof(got),
		    gaddr, sizeof(gaddr)) == 0);
		CHECK(strcmp(got, name) == 0 && strcmp(gaddr, addr) == 0);
	}
	/* dyno-run's status lines, from values the input gives. */
	for (i = 0; i + 7 < size; i += 8) {
		struct web_status st, back;
		uint64_t r = 0;

		st.want = data[i] % 101;
		st.starting = data[i + 1] % 101;
		st.crashed = data[i + 2] % 101;
		for (int k = 3; k < 8; k++)
			r = r << 8 | data[i + k];
		st.restart = st.crashed ? (long long)(r % 999999999999999ULL) + 1 : 0;
		len = web_status_format(line, sizeof(line), &st);
		CHECK(len > 0);
		CHECK(route_parse(line, (size_t)len, got, sizeof(got), gaddr,
		    sizeof(gaddr)) == -1);
		CHECK(web_status_parse(line, (size_t)len, &back) == 0);
		CHECK(back.want == st.want && back.starting == st.starting &&
		    back.crashed == st.crashed && back.restart == st.restart);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char *copy;

	if (size > 65536)
		return 0;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);

		/* Exact size, so a read past the line is caught. */
		copy = malloc(len ? len : 1);
		CHECK(copy != NULL);
		if (len > 0)
			memcpy(copy, p, len);
		check_line(copy, len);
		free(copy);
		p += len + 1;
	}
	check_written(data, size);
	return 0;
}
