/* fuzz_procfile.c: libFuzzer harness for the Procfile parser. */
#include <stdint.h>
#include <string.h>

#include "dyno.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct procfile pf;
	char err[DYNO_ERR_MAX];
	size_t i;

	if (procfile_parse((const char *)data, size, "Procfile", &pf, err,
	    sizeof(err)) == 0) {
		for (i = 0; i < pf.ntypes; i++)
			if (!name_valid(pf.types[i].name) ||
			    pf.types[i].command[0] == '\0' ||
			    procfile_find(&pf, pf.types[i].name) != &pf.types[i])
				__builtin_trap();
		procfile_free(&pf);
	} else if (strncmp(err, "Procfile:", 9) != 0)
		__builtin_trap();	/* every error names file:line */
	return 0;
}
