/*
 * verdict.c: from probes to verdicts: fall and rise thresholds, the
 * health files, --on-fail hooks, restarts with backoff.
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

void
health_write(const struct target *t)
{
	char path[4096], buf[1024];
	int n;

	if (!app_ok || t->probe == PROBE_URL)
		return;
	if (app_path(&app, path, sizeof(path), "run/health/%s", t->name) == -1)
		return;
	n = snprintf(buf, sizeof(buf),
	    "name=%s\nstate=%s\npid=%ld\nchecked=%lld\nlatency_ms=%ld\n"
	    "failures=%d\ncode=%s\nreason=%s\n", t->name,
	    t->healthy ? "ok" : "fail", t->pid, (long long)time(NULL),
	    t->latency_ms, t->fails, t->ok ? "" : t->code, t->ok ? "" : t->reason);
	if (n > 0 && app_write(&app, app_rel(&app, path), buf, (size_t)n, 0644,
	    0) == -1)
		fprintf(stderr, "dyno-health: cannot write %s: %s\n", path,
		    strerror(errno));
}

void
hook_run(const struct target *t, const char *event)
{
	char when[32];
	struct env env;

	if (opt.on_fail == NULL)
		return;
	snprintf(when, sizeof(when), "%lld", (long long)time(NULL));
	if ((t->probe != PROBE_URL ? dyno_env_for(t, &env) :
	    env_init(&env, environ)) == -1)
		return;
	if (env_set(&env, "DYNO_HEALTH_EVENT", event) == -1 ||
	    env_set(&env, "DYNO_HEALTH_TARGET", t->name) == -1 ||
	    env_set(&env, "DYNO_HEALTH_CODE", t->ok ? "" : t->code) == -1 ||
	    env_set(&env, "DYNO_HEALTH_REASON", t->ok ? "" : t->reason) == -1 ||
	    env_set(&env, "DYNO_HEALTH_TIME", when) == -1 ||
	    env_set(&env, "DYNO_HEALTH_APP", app_ok ? app.dir : "") == -1 ||
	    command_start(opt.on_fail, &env) == -1)
		log_event(stdout, "heroku", "health", "cannot run the --on-fail "
		    "command: %s", strerror(errno));
	env_free(&env);
}

static void
restart_dyno(struct target *t)
{
	char line[600];
	int64_t now = clock_ms();

	if (!opt.restart || t->probe == PROBE_URL)
		return;
	if (t->last_restart && now - t->last_restart < t->backoff_ms) {
		log_event(stdout, "heroku", t->name,
		    "Not restarting again yet: failed %lds after its last "
		    "restart, backoff %llds", (long)((now - t->last_restart) / 1000),
		    (long long)(t->backoff_ms / 1000));
		return;
	}
	/* Failing soon after a restart doubles the wait before the next. */
	if (t->last_restart && now - t->last_restart < 2 * t->backoff_ms)
		t->backoff_ms = t->backoff_ms * 2 > 600000 ? 600000 :
		    t->backoff_ms * 2;
	else
		t->backoff_ms = opt.backoff_ms;
	t->last_restart = now;
	snprintf(line, sizeof(line), "restart %s", t->name);
	if (control_send(&app, line) == -1)
		log_event(stdout, "heroku", t->name,
		    "cannot ask the supervisor for a restart: %s",
		    errno == ENXIO || errno == ENOENT ? "no supervisor runs" :
		    strerror(errno));
	else
		log_event(stdout, "heroku", t->name,
		    "Restarting: health check failed %d times", t->fails);
}

void
verdicts(void)
{
	size_t i;

	for (i = 0; i < ntargets; i++) {
		struct target *t = targets[i];

		if (t->idle)
			continue;
		if (t->ok) {
			t->fails = 0;
			t->oks++;
		} else {
			t->oks = 0;
			t->fails++;
		}
		if (t->fails >= opt.fall && t->fails % opt.fall == 0) {
			if (t->healthy) {
				t->healthy = 0;
				t->down_since = clock_ms();
				log_event(stdout, "heroku", t->name,
				    "Error %s health check failed: %s", t->code,
				    t->reason);
				hook_run(t, "down");
			} else
				log_event(stdout, "heroku", t->name,
				    "Error %s health check still failing: %s",
				    t->code, t->reason);
			health_write(t);
			restart_dyno(t);	/* with backoff against a tight loop */
			continue;
		}
		if (!t->healthy && t->oks >= opt.rise) {
			t->healthy = 1;
			log_event(stdout, "heroku", t->name,
			    "Health check passing again after %llds",
			    (long long)((clock_ms() - t->down_since) / 1000));
			hook_run(t, "up");
		}
		health_write(t);
	}
}
