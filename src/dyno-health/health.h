/*
 * health.h: what the files of dyno-health share: the options, the
 * targets, and each file's functions that the others call.  See main.c.
 */
#ifndef HEALTH_H
#define HEALTH_H

#include <curl/curl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "dyno.h"

#define TARGETS_MAX 1024
#define TYPES_MAX 16
#define BODY_MAX 65536

enum probe { PROBE_HTTP, PROBE_TCP, PROBE_EXEC, PROBE_URL };

struct target {
	char name[512];		/* a dyno name or a URL */
	char type[DYNO_NAME_MAX];
	long pid, port;
	enum probe probe;
	int seen;		/* still exists this round */
	int idle;		/* exists but is not up: not probed this round */
	int healthy;		/* the thresholded state */
	int fails, oks;		/* in a row */
	/* this round's probe */
	CURL *easy;
	pid_t child;
	int64_t started, deadline;
	int done, ok;
	long latency_ms;
	char code[8], reason[256];
	char *body;
	size_t bodylen;
	/* restart backoff */
	int64_t last_restart, backoff_ms;
	int64_t down_since;
};

struct health_opts {
	const char *path, *expect, *exec, *on_fail;
	int tcp, once, restart, fall, rise;
	int64_t interval_ms, timeout_ms, backoff_ms;
	const char *types[TYPES_MAX];
	int ntypes;
	const char *urls[64];
	int nurls;
};

extern struct health_opts opt;
extern struct app app;
extern int app_ok;
extern struct target *targets[TARGETS_MAX];
extern size_t ntargets;
extern CURLM *multi;
extern int sigfd;
extern volatile int stopping;

extern char **environ;

/* target.c */
void target_remove(size_t i);
void targets_refresh(void);

/* probe.c */
int dyno_env_for(const struct target *t, struct env *env);
pid_t command_start(const char *command, const struct env *env);
void round_run(void);

/* verdict.c */
void health_write(const struct target *t);
void hook_run(const struct target *t, const char *event);
void verdicts(void);

#endif
