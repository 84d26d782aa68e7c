/*
 * fuzz_procfile.c: libFuzzer harness for the Procfile parser.  Accepted:
 * unique, valid type names with room for ".N", never "run", and commands
 * of one line without the blanks and CR around them.  Refused: a message
 * that names the file.
 */
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
		for (i = 0; i < pf.ntypes; i++) {
			const char *c = pf.types[i].command;
			size_t n = strlen(c);

			/* A dyno name is TYPE.N: the type leaves room. */
			if (!name_valid(pf.types[i].name) ||
			    strlen(pf.types[i].name) > PROCTYPE_NAME_MAX ||
			    strcmp(pf.types[i].name, "run") == 0 ||
			    n == 0 || strchr(c, '\n') != NULL ||
			    c[0] == ' ' || c[0] == '\t' || c[n - 1] == ' ' ||
			    c[n - 1] == '\t' || c[n - 1] == '\r' ||
			    procfile_find(&pf, pf.types[i].name) != &pf.types[i])
				__builtin_trap();
		}
		procfile_free(&pf);
	} else if (strncmp(err, "Procfile:", 9) != 0)
		__builtin_trap();	/* every error names file:line */
	return 0;
}
