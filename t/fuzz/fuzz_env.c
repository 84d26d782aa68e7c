/* fuzz_env.c: libFuzzer harness for the config file and .env parsers. */
#include <stdint.h>
#include <string.h>

#include "dyno.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct env e;
	char err[DYNO_ERR_MAX];
	size_t i;

	if (env_init(&e, NULL) == -1)
		return 0;
	if (env_parse_config(&e, (const char *)data, size, "config", err,
	    sizeof(err)) == 0)
		for (i = 0; i < e.n; i++)
			if (strchr(e.vars[i], '=') == NULL)
				__builtin_trap();
	env_free(&e);
	if (env_init(&e, NULL) == -1)
		return 0;
	(void)env_parse_dotenv(&e, (const char *)data, size, ".env", err,
	    sizeof(err));
	env_free(&e);
	return 0;
}
