/*
 * db.c: DATABASE_URL and the tools' environment: passwords in
 * PGPASSWORD, never in argv.
 */
#define _GNU_SOURCE
#include <ctype.h>
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
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "backup.h"

int
has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

static void
db_parse(const char *url, struct dburl *db)
{
	char err[DYNO_ERR_MAX];

	if (dburl_parse(url, app.dir, db, err, sizeof(err)) == -1)
		die("%s", err);
}

/* --db, else DATABASE_URL from the config vars, else from .env. */
void
db_resolve(struct dburl *db)
{
	struct env e;
	char path[PATH_MAX], err[DYNO_ERR_MAX];
	const char *v = NULL;

	if (opt.db != NULL) {
		db_parse(opt.db, db);
		return;
	}
	env_init(&e, NULL);
	if (app_path(&app, path, sizeof(path), "config") == 0 &&
	    access(path, F_OK) == 0) {
		if (env_load_config(&e, path, err, sizeof(err)) == -1)
			die("%s", err);
		v = env_get(&e, "DATABASE_URL");
	}
	if (v == NULL) {
		path_in(path, sizeof(path), app.dir, ".env");
		if (access(path, F_OK) == 0) {
			if (env_load_dotenv(&e, path, err, sizeof(err)) == -1)
				die("%s", err);
			v = env_get(&e, "DATABASE_URL");
		}
	}
	if (v == NULL || *v == '\0')
		die("no database: give --db URL or set DATABASE_URL (dyno-deploy config:set DATABASE_URL=...)");
	db_parse(v, db);
	env_free(&e);
}

/* The environment for a postgres tool: ours plus PGPASSWORD. */
char **
pg_env(const struct dburl *db)
{
	static struct env e;

	env_free(&e);
	env_init(&e, environ);
	if (db->password[0] != '\0')
		env_set(&e, "PGPASSWORD", db->password);
	return e.vars;
}

/* Hide the password of --db in our own argv, so ps does not show it. */
void
scrub_argv(int argc, char **argv)
{
	int i;
	char *p, *at, *colon;

	for (i = 1; i < argc; i++) {
		p = argv[i];
		if (strncmp(p, "--db=", 5) == 0)
			p += 5;
		if (strncmp(p, "postgres", 8) != 0 || strstr(p, "://") == NULL)
			continue;
		p = strstr(p, "://") + 3;
		at = strrchr(p, '@');
		colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
		if (colon != NULL)
			memset(colon + 1, '*', (size_t)(at - colon - 1));
		if ((p = strstr(argv[i], "password=")) != NULL)
			for (p += 9; *p != '\0' && *p != '&'; p++)
				*p = '*';
	}
}
