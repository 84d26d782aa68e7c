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
#include "health.h"

struct health_opts opt = {
	"/", NULL, NULL, NULL,
	0, 0, 1, 3, 2,
	2000, 5000, 30000,
	{ NULL }, 0, { NULL }, 0,
};

struct app app;
int app_ok;
struct target *targets[TARGETS_MAX];
size_t ntargets;
CURLM *multi;
int sigfd = -1;
volatile int stopping;

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
		fprintf(stderr, "dyno-health: %s\n", app.why);
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
		fprintf(stderr, "dyno-health: %s\n", app.why);
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

