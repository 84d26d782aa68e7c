/* fuzz_formation.c: libFuzzer harness for the formation file and TYPE=N arguments. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct formation f;
	char err[DYNO_ERR_MAX], *arg;
	size_t i;

	if (formation_parse((const char *)data, size, "formation", &f, err,
	    sizeof(err)) == 0) {
		for (i = 0; i < f.n; i++)
			if (!name_valid(f.entries[i].type) || f.entries[i].count < 0)
				__builtin_trap();
	} else
		f.n = 0;
	/* The same bytes as a command-line argument. */
	if ((arg = malloc(size + 1)) == NULL)
		return 0;
	memcpy(arg, data, size);
	arg[size] = '\0';
	if (formation_apply_arg(&f, arg, NULL, 100, err, sizeof(err)) == 0) {
		for (i = 0; i < f.n; i++)
			if (f.entries[i].count < 0 || f.entries[i].count > 10000)
				__builtin_trap();
	}
	free(arg);
	return 0;
}
