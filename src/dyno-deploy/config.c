/*
 * config.c: the config vars: .dyno/config, and the config, config:get,
 * config:set and config:unset commands.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "deploy.h"

void
config_load(struct env *e)
{
	config_load_from(e, "config");
}

/* The config vars of rel (config, releases/N/config) in the .dyno we
 * opened, never out of it; none if it is missing. */
void
config_load_from(struct env *e, const char *rel)
{
	char path[4096], err[DYNO_ERR_MAX];

	env_init(e, NULL);
	state_path(path, sizeof(path), "%s", rel);
	if (env_load_config_at(e, app.fd, rel, path, err, sizeof(err)) == -1)
		die("%s", err);
}

void
config_save(const struct env *e)
{
	char path[4096], *text;
	size_t len;

	if ((text = env_format_config(e, &len)) == NULL)
		die("out of memory");
	if (len > CONFIG_MAX)
		die("config vars would take %zu bytes; at most %d", len, CONFIG_MAX);
	state_path(path, sizeof(path), "config");
	if (app_write(&app, "config", text, len, 0600, 1) == -1)
		die("cannot write %s: %s", path, strerror(errno));
	free(text);
}

int
config_show(int show)
{
	struct env e;
	size_t i, width = 0;

	config_load(&e);
	for (i = 0; i < e.n; i++) {
		size_t k = (size_t)(strchr(e.vars[i], '=') - e.vars[i]);
		if (k > width)
			width = k;
	}
	printf("=== %s Config Vars\n", app.dir);
	for (i = 0; i < e.n; i++) {
		const char *eq = strchr(e.vars[i], '=');
		int k = (int)(eq - e.vars[i]);
		printf("%.*s:%*s %s\n", k, e.vars[i], (int)(width - (size_t)k), "",
		    show ? eq + 1 : "********");
	}
	env_free(&e);
	return 0;
}

int
config_get(const char *key)
{
	struct env e;
	const char *v;

	config_load(&e);
	v = env_get(&e, key);
	if (v == NULL) {
		env_free(&e);
		return 1;
	}
	fputs(v, stdout);
	fputc('\n', stdout);
	env_free(&e);
	return 0;
}

/* config:set / config:unset: one new release with the same code. */
int
config_change(int argc, char **argv, int set)
{
	char desc[512], names[400] = "";
	struct env e;
	size_t off = 0, len;
	long cur;
	int i;
	char *text;

	if (argc == 0) {
		usage(stderr);
		return 2;
	}
	config_load(&e);
	/* Check every argument before anything changes. */
	for (i = 0; i < argc; i++) {
		const char *eq = strchr(argv[i], '=');
		size_t klen = set ? (eq ? (size_t)(eq - argv[i]) : 0) :
		    strlen(argv[i]);
		/* The config file's reader takes keys of up to 255 bytes. */
		if ((set && eq == NULL) || klen > 255 ||
		    !key_valid(argv[i], klen)) {
			fprintf(stderr, "dyno-deploy: %s: expected %s with KEY "
			    "matching [A-Za-z_][A-Za-z0-9_]{0,254}\n", argv[i],
			    set ? "KEY=VALUE" : "KEY");
			env_free(&e);
			return 2;
		}
	}
	for (i = 0; i < argc; i++) {
		char key[256];
		const char *eq = strchr(argv[i], '=');
		size_t klen = set ? (size_t)(eq - argv[i]) : strlen(argv[i]);
		snprintf(key, sizeof(key), "%.*s", (int)klen, argv[i]);
		if (set)
			env_set(&e, key, eq + 1);
		else
			env_unset(&e, key);
		if (off + klen + 3 < sizeof(names))
			off += (size_t)snprintf(names + off, sizeof(names) - off,
			    "%s%s", i ? ", " : "", key);
	}
	if ((text = env_format_config(&e, &len)) == NULL)
		die("out of memory");
	free(text);
	if (len > CONFIG_MAX) {
		fprintf(stderr, "dyno-deploy: config vars would take %zu bytes; at "
		    "most %d; nothing changed\n", len, CONFIG_MAX);
		env_free(&e);
		return 1;
	}
	snprintf(desc, sizeof(desc), "%s %s config vars", set ? "Set" : "Remove",
	    names);
	cur = release_current();
	if (cur == 0) {
		/* Dev mode: no release to copy; the config file is the truth and
		 * a reload replaces the dynos (their environment changed). */
		pid_t sup;
		config_save(&e);
		env_free(&e);
		printf("%s (dev mode)\n", desc);
		if ((sup = app_supervisor_pid(&app)) > 0 &&
		    control_send(&app, "reload") == -1)
			kill(sup, SIGHUP);
		return 0;
	}
	{
		int rc = release_reuse(cur, desc, &e, 0);
		env_free(&e);
		return rc;
	}
}
