/*
 * dyno-health: probe the dynos (and outside URLs), say which are sick,
 * and ask the supervisor to replace them.  Every probe of a round runs at
 * once (libcurl multi, plus child processes for --exec), so one hung dyno
 * never delays the others.  Thresholds follow HAProxy: a dyno falls after
 * `fall` failures in a row and rises after `rise` successes.  See
 * dyno-health(1).
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

extern char **environ;

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

static struct {
	const char *path, *expect, *exec, *on_fail;
	int tcp, once, restart, fall, rise;
	int64_t interval_ms, timeout_ms, backoff_ms;
	const char *types[TYPES_MAX];
	int ntypes;
	const char *urls[64];
	int nurls;
} opt = {
	"/", NULL, NULL, NULL,
	0, 0, 1, 3, 2,
	2000, 5000, 30000,
	{ NULL }, 0, { NULL }, 0,
};

static struct app app;
static int app_ok;
static struct target *targets[TARGETS_MAX];
static size_t ntargets;
static CURLM *multi;
static int sigfd = -1;
static volatile int stopping;

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: dyno-health [-a APP] [--once] [--path PATH] "
	    "[--expect TEXT] [--tcp | --exec CMD]\n"
	    "                   [--type TYPE] [--url URL] [--on-fail CMD] "
	    "[options]\n");
}

static void
help(void)
{
	usage(stdout);
	printf(
"\nProbe the app's dynos, report, and have sick ones replaced.\n\n"
"  -a, --app DIR          app directory (default $DYNO_APP, then .)\n"
"      --once             probe once, print a table, exit 0 if all healthy,\n"
"                         1 if not (for cron and scripts)\n"
"      --path PATH        HTTP path probed on web dynos (/)\n"
"      --expect TEXT      the body must contain TEXT too\n"
"      --tcp              a TCP connect instead of HTTP\n"
"      --exec CMD         run CMD per dyno (DYNO and PORT set); exit 0 is healthy\n"
"      --type TYPE        probe dynos of TYPE (web; every type with --exec)\n"
"      --url URL          also probe an outside URL (repeatable)\n"
"      --interval DUR     between rounds (2s)\n"
"      --timeout DUR      per probe (5s)\n"
"      --fall N           failures in a row that make it sick (3)\n"
"      --rise N           successes in a row that make it well (2)\n"
"      --no-restart       report only; do not ask for restarts\n"
"      --restart-backoff DUR  least time between restarts of one dyno,\n"
"                         doubling while it keeps failing (30s)\n"
"      --on-fail CMD      run CMD when something goes down or comes back\n"
"  -h, --help             this help\n");
}

/* ---- targets --------------------------------------------------------------- */

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

static void
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
static void
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

/* ---- probes ------------------------------------------------------------------ */

static size_t
body_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct target *t = arg;
	size_t n = size * nmemb, room;

	if (t->body == NULL && (t->body = malloc(BODY_MAX + 1)) == NULL)
		return 0;
	room = BODY_MAX - t->bodylen;
	if (n < room)
		room = n;
	memcpy(t->body + t->bodylen, p, room);
	t->bodylen += room;
	t->body[t->bodylen] = '\0';
	return n;	/* keep reading past the cap; only the start is kept */
}

static void
probe_fail(struct target *t, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
probe_fail(struct target *t, const char *code, const char *fmt, ...)
{
	va_list ap;

	t->ok = 0;
	snprintf(t->code, sizeof(t->code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
	va_end(ap);
}

/*
 * How long a probe may take.  Watching, rounds are --interval apart, and a
 * probe that has not answered by the next round counts as failed there:
 * so a hung dyno falls after about interval x fall (6 s at the defaults),
 * not timeout x fall, however long --timeout is.
 */
static int64_t
probe_limit_ms(void)
{
	if (!opt.once && opt.interval_ms < opt.timeout_ms)
		return opt.interval_ms;
	return opt.timeout_ms;
}

/* Our environment with the dyno's DYNO and PORT (none for a worker). */
static int
dyno_env_for(const struct target *t, struct env *env)
{
	char port[16];

	snprintf(port, sizeof(port), "%ld", t->port);
	if (env_init(env, environ) == -1)
		return -1;
	if (env_set(env, "DYNO", t->name) == -1 || (t->port > 0 ?
	    env_set(env, "PORT", port) : env_unset(env, "PORT")) == -1) {
		env_free(env);
		return -1;
	}
	return 0;
}

/*
 * An operator's command (--exec, --on-fail) by sh -c, in a session of its
 * own, our stdout and stderr, stdin /dev/null.  Set-id programs keep
 * working in it (a hook may mail through a setgid sendmail).
 */
static pid_t
command_start(const char *command, const struct env *env)
{
	char *argv[] = { "sh", "-c", (char *)command, NULL };
	struct spawn_opts so;

	memset(&so, 0, sizeof(so));
	so.argv = argv;
	so.envp = env->vars;
	so.in_fd = -1;
	so.out_fd = 1;
	so.err_fd = 2;
	so.new_session = 1;
	so.setid_ok = 1;
	return spawn_process(&so);
}

static void
probe_start(struct target *t)
{
	char url[600];

	t->done = t->ok = 0;
	t->code[0] = t->reason[0] = '\0';
	t->bodylen = 0;
	if (t->body != NULL)
		t->body[0] = '\0';	/* an empty body must not pass on the last one */
	if (t->idle) {
		t->done = 1;
		return;
	}
	t->started = clock_ms();
	t->deadline = t->started + probe_limit_ms();
	if (t->probe == PROBE_EXEC) {
		struct env env;
		pid_t pid = -1;

		/* Its own session, so a timeout kills all it started. */
		if (dyno_env_for(t, &env) == 0) {
			pid = command_start(opt.exec, &env);
			env_free(&env);
		}
		if (pid == -1) {
			t->done = 1;
			probe_fail(t, "H99", "cannot start the check: %s",
			    strerror(errno));
		}
		t->child = pid;
		return;
	}
	if (t->probe == PROBE_URL)
		snprintf(url, sizeof(url), "%s", t->name);
	else
		snprintf(url, sizeof(url), "http://127.0.0.1:%ld%s", t->port,
		    opt.path);
	if ((t->easy = curl_easy_init()) == NULL) {
		t->done = 1;
		probe_fail(t, "H99", "cannot start a probe");
		return;
	}
	curl_easy_setopt(t->easy, CURLOPT_URL, url);
	curl_easy_setopt(t->easy, CURLOPT_PRIVATE, t);
	curl_easy_setopt(t->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(t->easy, CURLOPT_TIMEOUT_MS, (long)probe_limit_ms());
	curl_easy_setopt(t->easy, CURLOPT_CONNECTTIMEOUT_MS,
	    (long)probe_limit_ms());
	curl_easy_setopt(t->easy, CURLOPT_USERAGENT, "dyno-health");
	curl_easy_setopt(t->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(t->easy, CURLOPT_WRITEFUNCTION, body_write);
	curl_easy_setopt(t->easy, CURLOPT_WRITEDATA, t);
	if (t->probe == PROBE_TCP)
		curl_easy_setopt(t->easy, CURLOPT_CONNECT_ONLY, 1L);
	curl_multi_add_handle(multi, t->easy);
}

static void
probe_curl_done(struct target *t, CURLcode rc)
{
	long status = 0;
	double connect = 0;

	t->done = 1;
	t->latency_ms = (long)(clock_ms() - t->started);
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(t->easy, CURLINFO_CONNECT_TIME, &connect);
	if (rc == CURLE_COULDNT_CONNECT)
		probe_fail(t, "H21", "connection refused");
	else if (rc == CURLE_OPERATION_TIMEDOUT && connect <= 0)
		probe_fail(t, "H19", "no connection within %lldms",
		    (long long)probe_limit_ms());
	else if (rc == CURLE_OPERATION_TIMEDOUT)
		probe_fail(t, "H12", "no response within %lldms",
		    (long long)probe_limit_ms());
	else if (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
	    rc == CURLE_PARTIAL_FILE)
		probe_fail(t, "H13", "connection closed without response");
	else if (rc != CURLE_OK)
		probe_fail(t, "H13", "%s", curl_easy_strerror(rc));
	else if (t->probe == PROBE_TCP)
		t->ok = 1;
	else if (status < 200 || status >= 400)
		probe_fail(t, "H17", "status %ld", status);
	else if (opt.expect != NULL && (t->body == NULL ||
	    strstr(t->body, opt.expect) == NULL))
		probe_fail(t, "H17", "body lacks \"%s\"", opt.expect);
	else
		t->ok = 1;
	curl_multi_remove_handle(multi, t->easy);
	curl_easy_cleanup(t->easy);
	t->easy = NULL;
}

static void
probe_exec_check(struct target *t, int64_t now)
{
	int status;
	pid_t r;

	if (t->child <= 0 || t->done)
		return;
	r = waitpid(t->child, &status, WNOHANG);
	if (r == 0 && now < t->deadline)
		return;
	t->done = 1;
	t->latency_ms = (long)(now - t->started);
	if (r == -1)
		probe_fail(t, "H99", "cannot wait for the probe: %s",
		    strerror(errno));
	else if (r == 0) {
		kill(-t->child, SIGKILL);
		kill(t->child, SIGKILL);
		waitpid(t->child, &status, 0);
		probe_fail(t, "H12", "no answer within %lldms",
		    (long long)probe_limit_ms());
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		t->ok = 1;
	else if (WIFEXITED(status))
		probe_fail(t, "H17", "exit status %d", WEXITSTATUS(status));
	else
		probe_fail(t, "H17", "killed by signal %d", WTERMSIG(status));
	t->child = 0;
}

/* Run one probe per target, all at once, until every one is done. */
static void
round_run(void)
{
	size_t i;
	int pending;

	for (i = 0; i < ntargets; i++)
		probe_start(targets[i]);
	for (;;) {
		CURLMsg *m;
		int left, running;
		int64_t now = clock_ms();

		curl_multi_perform(multi, &running);
		while ((m = curl_multi_info_read(multi, &left)) != NULL) {
			struct target *t;
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE,
			    (char **)&t);
			probe_curl_done(t, m->data.result);
		}
		pending = 0;
		for (i = 0; i < ntargets; i++) {
			probe_exec_check(targets[i], now);
			if (!targets[i]->done)
				pending = 1;
		}
		if (!pending)
			break;
		curl_multi_poll(multi, NULL, 0, 20, NULL);
	}
}

/* ---- verdicts ---------------------------------------------------------------- */

static void
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
	if (n > 0 && atomicfile_write(path, buf, (size_t)n, 0644, 0) == -1)
		fprintf(stderr, "dyno-health: cannot write %s: %s\n", path,
		    strerror(errno));
}

static void
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

static void
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

/* ---- main ---------------------------------------------------------------------- */

static int
once(void)
{
	size_t i;
	int bad = 0;

	round_run();
	printf("%-24s %-6s %8s  %s\n", "TARGET", "STATE", "LATENCY", "REASON");
	for (i = 0; i < ntargets; i++) {
		struct target *t = targets[i];
		char lat[32];

		snprintf(lat, sizeof(lat), "%ldms", t->latency_ms);
		printf("%-24s %-6s %8s  %s%s%s\n", t->name, t->ok ? "ok" : "fail",
		    lat, t->ok ? "" : t->code, t->ok ? "" : " ", t->ok ? "" :
		    t->reason);
		t->healthy = t->ok;
		t->fails = t->ok ? 0 : 1;
		health_write(t);
		if (!t->ok) {
			bad = 1;
			hook_run(t, "down");	/* cron: tell a human now */
		}
	}
	if (ntargets == 0)
		printf("(nothing to probe)\n");
	fflush(stdout);
	while (wait(NULL) > 0 || errno == EINTR)	/* the hooks finish first */
		;
	return bad;
}

static int
daemon_loop(void)
{
	int ready = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!stopping) {
		int64_t next = clock_ms() + opt.interval_ms;
		int sig;

		targets_refresh();
		round_run();
		verdicts();
		while (waitpid(-1, NULL, WNOHANG) > 0)	/* finished hooks */
			;
		if (!ready) {
			notify_send("READY=1\nSTATUS=probing");
			ready = 1;
		}
		for (;;) {
			struct pollfd pfd = { sigfd, POLLIN, 0 };
			int64_t now = clock_ms();
			if (now >= next || stopping)
				break;
			poll(&pfd, 1, (int)(next - now));
			while (selfpipe_read(&sig))
				if (sig == SIGTERM || sig == SIGINT)
					stopping = 1;
		}
	}
	notify_send("STOPPING=1");
	return 0;
}

static int64_t
duration_arg(const char *name, const char *arg)
{
	int64_t v;

	if (parse_duration_ms(arg, &v) == -1 || v <= 0) {
		fprintf(stderr, "dyno-health: --%s: invalid duration \"%s\"\n",
		    name, arg);
		usage(stderr);
		exit(2);
	}
	return v;
}

static int
count_arg(const char *name, const char *arg)
{
	long v;

	if (parse_long(arg, 1, 1000, &v) == -1) {
		fprintf(stderr, "dyno-health: --%s: invalid number \"%s\"\n", name,
		    arg);
		usage(stderr);
		exit(2);
	}
	return (int)v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "app", required_argument, NULL, 'a' },
		{ "exec", required_argument, NULL, 'e' },
		{ "expect", required_argument, NULL, 'E' },
		{ "fall", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "interval", required_argument, NULL, 'i' },
		{ "no-restart", no_argument, NULL, 'N' },
		{ "on-fail", required_argument, NULL, 'F' },
		{ "once", no_argument, NULL, 'o' },
		{ "path", required_argument, NULL, 'p' },
		{ "restart-backoff", required_argument, NULL, 'B' },
		{ "rise", required_argument, NULL, 'r' },
		{ "tcp", no_argument, NULL, 'T' },
		{ "timeout", required_argument, NULL, 't' },
		{ "type", required_argument, NULL, 'y' },
		{ "url", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 }
	};
	static const int sigs[] = { SIGHUP, SIGINT, SIGTERM };
	const char *appdir = NULL;
	int ch, rc;

	while ((ch = getopt_long(argc, argv, "a:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			appdir = optarg;
			break;
		case 'B':
			opt.backoff_ms = duration_arg("restart-backoff", optarg);
			break;
		case 'e':
			opt.exec = optarg;
			break;
		case 'E':
			opt.expect = optarg;
			break;
		case 'f':
			opt.fall = count_arg("fall", optarg);
			break;
		case 'F':
			opt.on_fail = optarg;
			break;
		case 'h':
			help();
			return 0;
		case 'i':
			opt.interval_ms = duration_arg("interval", optarg);
			break;
		case 'N':
			opt.restart = 0;
			break;
		case 'o':
			opt.once = 1;
			break;
		case 'p':
			if (optarg[0] != '/') {
				fprintf(stderr, "dyno-health: --path must start "
				    "with /\n");
				return 2;
			}
			opt.path = optarg;
			break;
		case 'r':
			opt.rise = count_arg("rise", optarg);
			break;
		case 'T':
			opt.tcp = 1;
			break;
		case 't':
			opt.timeout_ms = duration_arg("timeout", optarg);
			break;
		case 'u':
			if (opt.nurls == 64 || (strncmp(optarg, "http://", 7) != 0 &&
			    strncmp(optarg, "https://", 8) != 0)) {
				fprintf(stderr, "dyno-health: --url: expected an "
				    "http(s) URL, not \"%s\"\n", optarg);
				return 2;
			}
			opt.urls[opt.nurls++] = optarg;
			break;
		case 'y':
			if (opt.ntypes == TYPES_MAX || !name_valid(optarg)) {
				fprintf(stderr, "dyno-health: --type: invalid "
				    "\"%s\"\n", optarg);
				return 2;
			}
			opt.types[opt.ntypes++] = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || (opt.tcp && opt.exec)) {
		usage(stderr);
		return 2;
	}
	/* With only --url, no app directory is needed. */
	if (app_init(&app, appdir) == 0 && (appdir != NULL || opt.nurls == 0))
		app_ok = 1;
	else if (appdir != NULL || opt.nurls == 0) {
		fprintf(stderr, "dyno-health: app directory %s: %s\n",
		    appdir ? appdir : ".", strerror(errno));
		return 2;
	}
	if (app_ok && access(app.state, F_OK) == -1) {
		char procfile[4200];

		/* Not an app: say so rather than make .dyno in any folder. */
		snprintf(procfile, sizeof(procfile), "%s/Procfile", app.dir);
		if (access(procfile, F_OK) == -1) {
			fprintf(stderr, "dyno-health: %s is not an app directory "
			    "(no Procfile, no .dyno)\n", app.dir);
			return 2;
		}
	}
	if (app_ok && app_prepare(&app) == -1) {
		fprintf(stderr, "dyno-health: cannot prepare %s: %s\n", app.state,
		    strerror(errno));
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 ||
	    (multi = curl_multi_init()) == NULL) {
		fprintf(stderr, "dyno-health: cannot start libcurl\n");
		return 1;
	}
	if ((sigfd = selfpipe_open(sigs, sizeof(sigs) / sizeof(sigs[0]))) == -1) {
		fprintf(stderr, "dyno-health: signals: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (opt.once) {
		targets_refresh();
		rc = once();
	} else
		rc = daemon_loop();
	while (ntargets > 0)
		target_remove(ntargets - 1);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return rc;
}
