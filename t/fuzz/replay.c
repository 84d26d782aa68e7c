/*
 * replay.c: run a libFuzzer harness over its corpus without libFuzzer, so
 * `make check` replays every seed with the normal compiler and flags (and
 * under ASan+UBSan with SAN=1).  Each argument is a file or a folder of
 * files; each file is one input, copied to an exact-size allocation so a
 * read past its end is caught.  A harness that finds a broken property
 * aborts, and so does this program: the exit status fails the build.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dyno.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX (4 * 1024 * 1024)

static const char *current;	/* the input being run, for a crash message */
static int verbose;

/* A harness's trap or abort: name the input, then die of the same signal. */
static void
on_crash(int sig)
{
	static const char msg[] = "replay: crashed on input ";

	if (current != NULL) {
		(void)!write(2, msg, sizeof(msg) - 1);
		(void)!write(2, current, strlen(current));
		(void)!write(2, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int
replay_file(const char *path)
{
	char *text, *copy;
	size_t len;

	if (file_read_alloc(path, &text, &len, INPUT_MAX) == -1) {
		fprintf(stderr, "replay: cannot read %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if ((copy = malloc(len ? len : 1)) == NULL) {
		free(text);
		return -1;
	}
	memcpy(copy, text, len);
	free(text);
	/* -v names each input first: a sanitizer report names none. */
	if (verbose)
		fprintf(stderr, "replay: %s\n", path);
	current = path;
	LLVMFuzzerTestOneInput((const uint8_t *)copy, len);
	current = NULL;
	free(copy);
	return 0;
}

static int
name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file in dir, in name order so runs are alike. */
static int
replay_dir(const char *dir, size_t *count)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL, path[4096];
	size_t n = 0, cap = 0, i;
	int rc = 0;

	if ((d = opendir(dir)) == NULL) {
		fprintf(stderr, "replay: cannot open %s: %s\n", dir,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nn = realloc(names, (cap = cap * 2 + 16) *
			    sizeof(*names));
			if (nn == NULL) {
				rc = -1;
				break;
			}
			names = nn;
		}
		if ((names[n] = strdup(de->d_name)) == NULL) {
			rc = -1;
			break;
		}
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(names, n, sizeof(*names), name_cmp);
	for (i = 0; i < n; i++) {
		struct stat st;

		if (rc == 0 && (size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		    names[i]) < sizeof(path) && stat(path, &st) == 0 &&
		    S_ISREG(st.st_mode)) {
			if (replay_file(path) == -1)
				rc = -1;
			else
				(*count)++;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

int
main(int argc, char **argv)
{
	static const int crashes[] = { SIGABRT, SIGILL, SIGSEGV, SIGBUS, SIGFPE };
	size_t count = 0, k;
	int i = 1;

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		verbose = 1;
		i++;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: replay [-v] FILE|DIR ...\n");
		return 2;
	}
	for (k = 0; k < sizeof(crashes) / sizeof(crashes[0]); k++)
		signal(crashes[k], on_crash);
	for (; i < argc; i++) {
		struct stat st;

		if (stat(argv[i], &st) == -1) {
			fprintf(stderr, "replay: %s: %s\n", argv[i],
			    strerror(errno));
			return 1;
		}
		if (S_ISDIR(st.st_mode) ? replay_dir(argv[i], &count) == -1 :
		    replay_file(argv[i]) == -1)
			return 1;
		if (!S_ISDIR(st.st_mode))
			count++;
	}
	if (count == 0) {
		fprintf(stderr, "replay: no inputs in %s\n", argv[argc - 1]);
		return 1;
	}
	printf("%s: %zu inputs\n", argv[0], count);
	return 0;
}
