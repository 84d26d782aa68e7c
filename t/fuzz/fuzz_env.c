/*
 * fuzz_env.c: libFuzzer harness for the config file and .env parsers.
 * What either accepts is a list of valid KEY=VALUE variables; what the
 * config reader accepts, written back by env_format_config and read again,
 * is the same list.
 */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

#include "dyno.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static void
check_vars(const struct env *e)
{
	size_t i;

	for (i = 0; i < e->n; i++) {
		const char *eq = strchr(e->vars[i], '=');

		CHECK(eq != NULL && key_valid(e->vars[i],
		    (size_t)(eq - e->vars[i])));
	}
	CHECK(e->vars[e->n] == NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env e, again;
	char err[DYNO_ERR_MAX], *text;
	size_t i, len;

	if (env_init(&e, NULL) == -1)
		return 0;
	if (env_parse_config(&e, (const char *)data, size, "config", err,
	    sizeof(err)) == 0) {
		check_vars(&e);
		text = env_format_config(&e, &len);
		CHECK(text != NULL);
		CHECK(env_init(&again, NULL) == 0);
		CHECK(env_parse_config(&again, text, len, "config", err,
		    sizeof(err)) == 0);
		CHECK(again.n == e.n);
		for (i = 0; i < e.n; i++)
			CHECK(strcmp(again.vars[i], e.vars[i]) == 0);
		env_free(&again);
		free(text);
	} else
		CHECK(strncmp(err, "config:", 7) == 0);
	env_free(&e);
	if (env_init(&e, NULL) == -1)
		return 0;
	if (env_parse_dotenv(&e, (const char *)data, size, ".env", err,
	    sizeof(err)) == 0)
		check_vars(&e);
	else
		CHECK(strncmp(err, ".env:", 5) == 0);
	env_free(&e);
	return 0;
}
