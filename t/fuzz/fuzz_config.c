/*
 * fuzz_config.c: libFuzzer harness for the config vars' round trip:
 * dyno-deploy writes them with env_format_config, and dyno-run, dyno-deploy
 * and dyno-backup read them back with env_parse_config.  The input is a
 * list of KEY=VALUE records split at NUL bytes (the one byte a value
 * cannot hold: it comes from argv); a record whose key config:set would
 * refuse gets the key K<n>.  Values keep every other byte: quotes, CR, LF,
 * backslashes, '=' and bytes past ASCII.  What is read back must be
 * exactly what was written, in the same order, one line per variable; and
 * env_copy must copy it exactly too.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static void
check_same(const struct env *a, const struct env *b)
{
	size_t i;

	CHECK(a->n == b->n);
	for (i = 0; i < a->n; i++)
		CHECK(strcmp(a->vars[i], b->vars[i]) == 0);
	CHECK(b->vars[b->n] == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env e, back, copy;
	char *s, *p, *end, *text, err[DYNO_ERR_MAX], key[32];
	size_t len, i, lines = 0, n = 0;

	if (size > 65536 || (s = malloc(size + 1)) == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	CHECK(env_init(&e, NULL) == 0);
	for (p = s, end = s + size; p <= end; p += strlen(p) + 1, n++) {
		char *eq = strchr(p, '=');

		if (eq != NULL && eq - p <= 255 && key_valid(p, (size_t)(eq - p))) {
			*eq = '\0';
			CHECK(env_set(&e, p, eq + 1) == 0);
		} else {
			snprintf(key, sizeof(key), "K%zu", n);
			CHECK(env_set(&e, key, p) == 0);
		}
	}

	text = env_format_config(&e, &len);
	CHECK(text != NULL);
	for (i = 0; i < len; i++)
		lines += text[i] == '\n';
	CHECK(lines == e.n);
	CHECK(memchr(text, '\0', len) == NULL);
	CHECK(env_init(&back, NULL) == 0);
	CHECK(env_parse_config(&back, text, len, "config", err,
	    sizeof(err)) == 0);
	check_same(&e, &back);

	CHECK(env_copy(&copy, &e) == 0);
	check_same(&e, &copy);

	env_free(&copy);
	env_free(&back);
	env_free(&e);
	free(text);
	free(s);
	return 0;
}
