/*
 * deploy.h: what the files of dyno-deploy share: the options, the app,
 * what a failed deploy leaves, and each file's functions that the others
 * call.  See main.c.
 */
#ifndef DEPLOY_H
#define DEPLOY_H

#include <limits.h>
#include <stdio.h>
#include <sys/types.h>

#include "dyno.h"

#define CONFIG_MAX (32 * 1024)
#define BUILDPACKS_MAX 8

struct deploy_opts {
	const char *message, *ref;
	const char *buildpacks[BUILDPACKS_MAX];
	int nbuildpacks;
	int64_t build_ms, wait_ms;
	int wait, rollback_on_failure, keep, no_git;
	long max_source_kb;
	const char *user;	/* -u: the dynos' user, who runs the app's code */
	uid_t uid;
	gid_t gid;
	char **user_env;	/* our environment, HOME, USER, LOGNAME its */
	int trust_dir;
};

extern struct app app;
extern struct deploy_opts opt;
extern char self_dir[PATH_MAX];
extern char failed_build[PATH_MAX], failed_slug[PATH_MAX];
extern char failed_area[PATH_MAX];
extern volatile pid_t build_pgid;

/* A command of the build: what run_cmd needs to start and watch it. */
struct cmd {
	char *const *argv;	/* exec'd as is, found in PATH */
	const char *cwd;	/* NULL: ours */
	char **envp;		/* NULL: ours */
	int in_fd;		/* -1: /dev/null */
	int out_fd;		/* -1: stdout goes where stderr goes */
	int logfd;		/* stderr (and stdout) appended here too, -1: not */
	int quiet;		/* not to our stdout as well */
	int as_user;		/* as the dynos' user (-u), not as us */
};

struct release_spec {
	const char *source;	/* where the code came from */
	const char *commit;
	const char *desc;
	long from;		/* > 0: reuse release `from`'s code */
	const struct env *config;
};

/* main.c */
void usage(FILE *fp);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void state_path(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void remove_tree(const char *path);
void remove_tree_at(int dfd, const char *name);

/* config.c */
void config_load(struct env *e);
void config_load_from(struct env *e, const char *rel);
void config_save(const struct env *e);
int config_show(int show);
int config_get(const char *key);
int config_change(int argc, char **argv, int set);

/* release.c */
long release_current(void);
long *release_list(size_t *n);
int releases_show(void);
void tmp_sweep(void);
int release_reuse(long from, const char *desc, struct env *config,
    int rollback);
int deploy(const char *source);
int rollback_to(long target);

/* slug.c */
void tree_hash(struct sha256 *h, const char *root, const char *rel);
void slug_store(const char *builddir, const char *sha);

/* source.c */
void source_fetch(const char *src, const char *dir, char *commit, size_t clen,
    int logfd);

/* build.c */
int run_logged(char *const argv[], const char *cwd, char **envp, int logfd,
    int quiet);
void area_leave(const char *area, int logfd);
void buildpacks_run(const char *builddir, const struct env *config, int logfd,
    char *procfile_add, size_t addlen);
void sanitize_tree(const char *dir, int logfd);
int procfile_read_code(const char *code, char **text);
void release_phase(const char *builddir, const struct procfile *pf,
    int logfd);

#endif
