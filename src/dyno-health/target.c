/*
 * target.c: what is probed: the dynos of the formation (from run/dynos),
 * filtered by --type, or the --url addresses.
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "health.h"

static struct target *
target_find(const char *name)
{
	size_t i;

	for (i = 0; i < ntargets; i++)
		if (strcmp(targets[i]->name, name) == 0)
			return targets[i];
	return NULL;
}

static struct target *
target_add(const char *name)
{
	struct target *t;

	if (ntargets >= TARGETS_MAX || (t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->healthy = 1;		/* like HAProxy: up until it falls */
	t->backoff_ms = opt.backoff_ms;
	targets[ntargets++] = t;
	return t;
}

void
target_remove(size_t i)
{
	free(targets[i]->body);
	free(targets[i]);
	memmove(&targets[i], &targets[i + 1],
	    (ntargets - i - 1) * sizeof(targets[0]));
	ntargets--;
}

static int
type_wanted(const char *type)
{
	int i;

	if (opt.ntypes == 0)
		return opt.exec != NULL || strcmp(type, "web") == 0;
	for (i = 0; i < opt.ntypes; i++)
		if (strcmp(opt.types[i], type) == 0)
			return 1;
	return 0;
}

/*
 * This round's targets: the dynos that are up, and the URLs.  A known dyno
 * that is not up (being replaced, crashed, booting) is kept but not probed:
 * forgetting it would forget its restarts and their backoff.
 */
void
targets_refresh(void)
{
	struct dyno_info *d = NULL;
	size_t n = 0, i;
	int k;

	for (i = 0; i < ntargets; i++)
		targets[i]->seen = 0;
	if (app_ok && dynos_list(&app, &d, &n) == -1)
		n = 0;
	for (i = 0; i < n; i++) {
		struct target *t;

		if (!type_wanted(d[i].type))
			continue;
		if (strcmp(d[i].state, "up") != 0 ||
		    (opt.exec == NULL && d[i].port <= 0)) {
			if ((t = target_find(d[i].name)) != NULL)
				t->seen = t->idle = 1;
			continue;
		}
		if ((t = target_find(d[i].name)) == NULL &&
		    (t = target_add(d[i].name)) == NULL)
			continue;
		if (t->pid != d[i].pid) {
			/* A new process under the name: count afresh.  A sick
			 * dyno's replacement must still rise to be "back". */
			t->pid = d[i].pid;
			t->fails = t->oks = 0;
		}
		snprintf(t->type, sizeof(t->type), "%s", d[i].type);
		t->port = d[i].port;
		t->probe = opt.exec ? PROBE_EXEC : opt.tcp ? PROBE_TCP : PROBE_HTTP;
		t->seen = 1;
		t->idle = 0;
	}
	free(d);
	for (k = 0; k < opt.nurls; k++) {
		struct target *t = target_find(opt.urls[k]);
		if (t == NULL && (t = target_add(opt.urls[k])) == NULL)
			continue;
		t->probe = PROBE_URL;
		t->seen = 1;
	}
	for (i = ntargets; i-- > 0;)
		if (!targets[i]->seen)
			target_remove(i);
}
