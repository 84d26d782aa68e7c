/*
 * fuzz_control.c: libFuzzer harness for what dyno-run reads from its
 * control FIFO, run/control: anyone who can write there (dyno-health,
 * dyno-scale, a person, a process of the app's user) steers the
 * supervisor, so the bytes are untrusted.
 *
 * The input is fed to control_lines_feed the way reads deliver it, in
 * pieces of pseudo-random size (seeded from the input), and the lines that
 * come out must be exactly those of this plain model, whatever the split:
 *
 *   - a line ends at LF; one CR before the LF is dropped; empty lines and
 *     the unfinished last line give nothing;
 *   - a line holding a NUL is dropped whole (it cannot be a command), and
 *     does not hold up the lines after it;
 *   - a line longer than the buffer (4094 bytes before its LF) is dropped
 *     whole: no tail of it ever reads as a command of its own.
 *
 * Each line is then parsed, and control_parse must agree with the grammar
 * in dyno.7: "reload", "restart [WHAT]", "stop NAME".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)
#define LINE_MAX_LEN (sizeof(((struct control_lines *)0)->buf) - 2)

struct seen {
	char **lines;
	size_t n, cap;
};

static void
keep(char *line, void *arg)
{
	struct seen *s = arg;

	if (s->n == s->cap) {
		s->cap = s->cap * 2 + 16;
		s->lines = realloc(s->lines, s->cap * sizeof(*s->lines));
		CHECK(s->lines != NULL);
	}
	s->lines[s->n] = strdup(line);
	CHECK(s->lines[s->n] != NULL);
	s->n++;
}

static void
seen_free(struct seen *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->lines[i]);
	free(s->lines);
}

/* The model: the lines a reader of data[0..size) must hand out. */
static void
model(const uint8_t *data, size_t size, struct seen *out)
{
	size_t start = 0, i;

	for (i = 0; i < size; i++) {
		size_t len = i - start;
		const char *p = (const char *)data + start;

		if (data[i] != '\n')
			continue;
		start = i + 1;
		if (len > LINE_MAX_LEN || memchr(p, '\0', len) != NULL)
			continue;
		if (len > 0 && p[len - 1] == '\r')
			len--;
		if (len == 0)
			continue;
		{
			char *line = strndup(p, len);
			CHECK(line != NULL);
			keep(line, out);
			free(line);
		}
	}
}

static void
check_parse(const char *text)
{
	char *line = strdup(text);
	const char *arg, *sp = strchr(text, ' ');
	size_t vlen = sp ? (size_t)(sp - text) : strlen(text);
	int verb;

	CHECK(line != NULL);
	verb = control_parse(line, &arg);
	if (vlen == 6 && memcmp(text, "reload", 6) == 0 && sp == NULL)
		CHECK(verb == CONTROL_RELOAD);
	else if (vlen == 7 && memcmp(text, "restart", 7) == 0)
		CHECK(verb == CONTROL_RESTART);
	else if (vlen == 4 && memcmp(text, "stop", 4) == 0 && sp != NULL)
		CHECK(verb == CONTROL_STOP);
	else
		CHECK(verb == -1);
	if (verb > 0) {
		CHECK((arg == NULL) == (sp == NULL));
		if (arg != NULL)
			CHECK(strcmp(arg, sp + 1) == 0);
	}
	free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct control_lines cl;
	struct seen want = { 0 }, got = { 0 };
	uint64_t seed = 1469598103934665603ULL;
	size_t have = 0, i;

	if (size > 65536)
		return 0;
	for (i = 0; i < size; i++)
		seed = (seed ^ data[i]) * 1099511628211ULL;
	memset(&cl, 0, sizeof(cl));
	while (have < size) {
		size_t n;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		n = seed & 1 ? 1 + (seed >> 8) % 16 : 1 + (seed >> 8) % 8192;
		if (n > size - have)
			n = size - have;
		control_lines_feed(&cl, (const char *)data + have, n, keep,
		    &got);
		have += n;
	}
	model(data, size, &want);
	CHECK(got.n == want.n);
	for (i = 0; i < got.n; i++) {
		CHECK(strcmp(got.lines[i], want.lines[i]) == 0);
		check_parse(got.lines[i]);
	}
	seen_free(&want);
	seen_free(&got);
	return 0;
}
