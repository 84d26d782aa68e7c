/*
 * probe.c: one round of probes: HTTP and TCP through libcurl's multi
 * interface, --exec commands through lib/spawn.c, each bounded.
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
int
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
pid_t
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
void
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
