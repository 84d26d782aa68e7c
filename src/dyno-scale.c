/*
 * dyno-scale: change the formation and show the dynos, like heroku ps and
 * heroku ps:scale.  The formation file is the truth; the supervisor is only
 * told to look again (SIGHUP).  --auto is a small daemon that scales web
 * toward a p95 target from the router's counters.  See dyno-scale(1).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"

static struct app app;
static long max_per_type = 100;
static volatile sig_atomic_t stop_flag;

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: dyno-scale [-a APP] [--porcelain]\n"
"       dyno-scale [-a APP] [--max N] [--wait[=SECONDS]] TYPE=N|TYPE+N|TYPE-N ...\n"
"       dyno-scale [-a APP] --restart [NAME|TYPE] | --stop NAME\n"
"       dyno-scale [-a APP] --auto web --min N --max N --p95 DUR [options]\n");
}

static void
help(void)
{
	usage(stdout);
	printf(
"\nShow the dynos, or change how many of each type run.\n\n"
"  -a, --app DIR        app directory (default $DYNO_APP, then .)\n"
"      --porcelain      one tab-separated line per dyno, for scripts\n"
"      --max N          most dynos of one type (100; with --auto: the most web)\n"
"      --wait[=SECS]    wait until the formation runs and web is routable (60)\n"
"      --restart [X]    restart a dyno, a type or all, preboot-style\n"
"      --stop NAME      stop one dyno until it is restarted\n"
"      --auto TYPE      autoscale TYPE (web) from the router's p95\n"
"      --min N          fewest dynos when autoscaling (1)\n"
"      --p95 DUR        the p95 service time to hold (e.g. 300ms)\n"
"      --interval DUR   how often the counters are read (10s)\n"
"      --up-every DUR   least time between scale-ups (60s)\n"
"      --down-every DUR least time between scale-downs, and how long load\n"
"                       must stay low first (300s)\n"
"  -h, --help           this help\n");
}

/* ---- ps ------------------------------------------------------------------ */

static void
ago(char *buf, size_t len, long long secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "~ %llds ago", secs);
	else if (secs < 3600)
		snprintf(buf, len, "~ %lldm ago", secs / 60);
	else if (secs < 86400)
		snprintf(buf, len, "~ %lldh ago", secs / 3600);
	else
		snprintf(buf, len, "~ %lldd ago", secs / 86400);
}

/* The last probe's verdict, if it was about this process and not an
 * earlier one under the same name. */
static void
health_of(const struct dyno_info *d, char *out, size_t len)
{
	char rel[1024], text[1024];
	long pid;

	snprintf(out, len, "-");
	if (snprintf(rel, sizeof(rel), "run/health/%s", d->name) >=
	    (int)sizeof(rel) || app_read(&app, rel, text, sizeof(text)) <= 0 ||
	    kv_get_long(text, "pid", &pid) == -1 || pid != d->pid)
		return;
	if (kv_get(text, "state", out, len) == -1)
		snprintf(out, len, "-");
}

static int
show(int porcelain)
{
	struct dyno_info *d;
	size_t n, i;
	char last[DYNO_NAME_MAX] = "", current[32] = "", dir[4096];
	long long now = (long long)time(NULL);
	int supervised = app_supervisor_pid(&app) != 0;
	int rc;

	if (dynos_list(&app, &d, &n) == -1) {
		fprintf(stderr, "dyno-scale: cannot read %s/run/dynos: %s\n",
		    app.state, strerror(errno));
		return 1;
	}
	if (n == 0 && !porcelain) {
		printf("No dynos on %s\n", app.dir);
		if (!supervised)
			printf("(no supervisor runs it: start one with dyno-run)\n");
	}
	/* The release new dynos would run: "dev" without a current one. */
	rc = app_release(&app, current, sizeof(current), dir, sizeof(dir));
	if (rc == 1)
		snprintf(current, sizeof(current), "dev");
	else if (rc == -1)
		current[0] = '\0';
	/* The files say what the last supervisor saw, not what runs now. */
	if (n > 0 && !supervised && !porcelain)
		printf("(no supervisor running: the last known state of each "
		    "dyno, marked \"last known\")\n\n");
	for (i = 0; i < n; i++) {
		char when[64], rel[32], health[32];
		struct tm tm;
		time_t t = (time_t)d[i].started;

		health_of(&d[i], health, sizeof(health));
		if (porcelain) {
			printf("%s\t%s\t%s\t%ld\t%ld\t%ld\t%ld\t%s\t%lld\t%s\n",
			    d[i].name, d[i].type, d[i].state, d[i].pid,
			    d[i].port, d[i].rss_kb, d[i].restarts, d[i].release,
			    d[i].started, health);
			continue;
		}
		if (strcmp(last, d[i].type) != 0) {
			size_t k, count = 0;
			/* Those on their way out are listed, not counted. */
			for (k = i; k < n && strcmp(d[k].type, d[i].type) == 0; k++)
				if (strcmp(d[k].state, "stopping") != 0)
					count++;
			printf("%s=== %s (%zu): %s\n", i ? "\n" : "", d[i].type, count,
			    d[i].command);
			snprintf(last, sizeof(last), "%s", d[i].type);
		}
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y/%m/%d %H:%M:%S +0000", &tm);
		ago(rel, sizeof(rel), now - d[i].started);
		printf("%s: %s%s %s (%s)", d[i].name, d[i].state,
		    supervised ? "" : " (last known)", when, rel);
		if (strcmp(d[i].state, "crashed") == 0 && d[i].next_start > 0)
			printf("  next start in %llds", d[i].next_start > now ?
			    d[i].next_start - now : 0);
		else {
			printf("  ");
			if (d[i].port > 0)
				printf("port=%ld ", d[i].port);
			printf("release=%s", d[i].release[0] ? d[i].release : "-");
			/* Config vars changed or a deploy with no supervisor to
			 * act on it: the dyno still runs the old release. */
			if (current[0] && d[i].release[0] &&
			    strcmp(current, d[i].release) != 0)
				printf(" (current %s)", current);
			/* 0 until the first sample, not a dyno using nothing. */
			if (d[i].rss_kb > 0)
				printf(" rss=%ldMB", d[i].rss_kb / 1024);
			else
				printf(" rss=-");
			printf(" restarts=%ld health=%s", d[i].restarts, health);
		}
		printf("\n");
	}
	free(d);
	return 0;
}

/* ---- scale ----------------------------------------------------------------- */

static int
procfile_current(struct procfile *pf)
{
	char ver[32], dir[4096], path[4200], err[DYNO_ERR_MAX];
	int rc = app_release(&app, ver, sizeof(ver), dir, sizeof(dir));

	if (rc == -1) {
		fprintf(stderr, "dyno-scale: cannot read %s/current: %s\n",
		    app.state, strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "%s/Procfile", rc == 1 ? app.dir : dir);
	if (procfile_load(path, pf, err, sizeof(err)) == -1) {
		fprintf(stderr, "dyno-scale: %s\n", err);
		return -1;
	}
	return 0;
}

static int
formation_current(struct formation *f, const struct procfile *pf)
{
	char err[DYNO_ERR_MAX];

	if (formation_load(&app, f, err, sizeof(err)) == -1) {
		if (errno != ENOENT) {
			fprintf(stderr, "dyno-scale: %s\n", err);
			return -1;
		}
		formation_default(f, pf);
	}
	return 0;
}

/* Reached: every wanted dyno up, nothing extra left, every web one routable. */
static int
formation_reached(const struct formation *f, const struct procfile *pf)
{
	struct dyno_info *d;
	size_t n, i, t;
	int ok = 1;

	if (dynos_list(&app, &d, &n) == -1)
		return 0;
	for (t = 0; t < pf->ntypes && ok; t++) {
		const char *type = pf->types[t].name;
		long want = formation_get(f, type), up = 0;

		if (strcmp(type, "release") == 0)
			continue;
		if (want < 0)
			want = strcmp(type, "web") == 0 ? 1 : 0;
		for (i = 0; i < n; i++) {
			if (strcmp(d[i].type, type) != 0)
				continue;
			if (d[i].index > want) {
				ok = 0;		/* still being scaled down */
				break;
			}
			if (strcmp(d[i].state, "up") == 0 &&
			    (strcmp(type, "web") != 0 || routes_has(&app, d[i].name)))
				up++;
		}
		if (up != want)
			ok = 0;
	}
	free(d);
	return ok;
}

static int
wait_for_formation(const struct formation *f, const struct procfile *pf,
    long secs)
{
	int64_t start = clock_ms(), deadline = start + secs * 1000;

	while (!formation_reached(f, pf)) {
		struct timespec ts = { 0, 50 * 1000000L };
		if (clock_ms() > deadline) {
			fprintf(stderr, "dyno-scale: formation not reached within "
			    "%lds\n", secs);
			return 1;
		}
		nanosleep(&ts, NULL);	/* a poll interval, not a guess */
	}
	printf("Formation reached in %.1fs\n", (clock_ms() - start) / 1000.0);
	return 0;
}

static int
scale(int argc, char **argv, long wait_secs)
{
	char path[4096], err[DYNO_ERR_MAX];
	struct procfile pf;
	struct formation f;
	pid_t sup;
	int i, rc = 0;
	size_t k;

	if (procfile_current(&pf) == -1)
		return 1;
	if (formation_current(&f, &pf) == -1) {
		procfile_free(&pf);
		return 1;
	}
	/* Check every argument before anything is written. */
	for (i = 0; i < argc; i++)
		if (formation_apply_arg(&f, argv[i], &pf, max_per_type, err,
		    sizeof(err)) == -1) {
			fprintf(stderr, "dyno-scale: %s\n", err);
			procfile_free(&pf);
			return 1;
		}
	if (app_prepare(&app) == -1) {
		fprintf(stderr, "dyno-scale: %s\n", app.why);
		procfile_free(&pf);
		return 1;
	}
	app_path(&app, path, sizeof(path), "formation");
	if (formation_save(&app, &f) == -1) {
		fprintf(stderr, "dyno-scale: cannot write %s: %s\n", path,
		    strerror(errno));
		procfile_free(&pf);
		return 1;
	}
	printf("Scaling dynos... done, now running");
	for (k = 0; k < f.n; k++)
		printf("%s %s at %ld", k ? "," : "", f.entries[k].type,
		    f.entries[k].count);
	printf("\n");
	sup = app_supervisor_pid(&app);
	if (sup > 0 && kill(sup, SIGHUP) == -1)
		sup = 0;
	if (sup == 0) {
		printf("No supervisor runs %s: the formation is saved for the "
		    "next dyno-run.\n", app.dir);
		if (wait_secs > 0)
			rc = 1;
	} else if (wait_secs > 0) {
		fflush(stdout);
		rc = wait_for_formation(&f, &pf, wait_secs);
	}
	procfile_free(&pf);
	return rc;
}

static int
control(const char *line)
{
	if (control_send(&app, line) == -1) {
		if (errno == ENXIO || errno == ENOENT)
			fprintf(stderr, "dyno-scale: no supervisor runs %s\n",
			    app.dir);
		else
			fprintf(stderr, "dyno-scale: cannot write to the "
			    "supervisor: %s\n", strerror(errno));
		return 1;
	}
	return 0;
}

/* ---- autoscale -------------------------------------------------------------- */

struct auto_opts {
	const char *type;
	long min, max;
	int64_t p95_ms, interval_ms, up_ms, down_ms;
};

/*
 * Read run/router (and run/router.N of -w workers).  Returns the requests
 * seen since the last call and the worst p95 of the type's dynos.
 */
static long long
router_read(const char *type, long long *last_total, long *p95)
{
	struct dirent *de;
	long long total = 0, fresh;
	size_t tlen = strlen(type);
	DIR *dir;

	*p95 = 0;
	if ((dir = app_opendir(&app, "run")) == NULL)
		return 0;
	while ((de = readdir(dir)) != NULL) {
		char path[4400], text[65536], *line;

		if (strncmp(de->d_name, "router", 6) != 0 ||
		    strcmp(de->d_name, "router.pid") == 0 ||
		    strstr(de->d_name, ".tmp.") ||
		    (de->d_name[6] != '\0' && de->d_name[6] != '.'))
			continue;
		snprintf(path, sizeof(path), "run/%s", de->d_name);
		if (app_read(&app, path, text, sizeof(text)) <= 0)
			continue;
		for (line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
			char name[DYNO_NAME_MAX];
			long long t;
			long p;
			char *q;

			if (sscanf(line, "dyno=%63s", name) != 1 ||
			    strncmp(name, type, tlen) != 0 || name[tlen] != '.')
				continue;
			if ((q = strstr(line, " total=")) != NULL &&
			    sscanf(q, " total=%lld", &t) == 1)
				total += t;
			if ((q = strstr(line, " p95_ms=")) != NULL &&
			    sscanf(q, " p95_ms=%ld", &p) == 1 && p > *p95)
				*p95 = p;
		}
	}
	closedir(dir);
	fresh = *last_total >= 0 && total >= *last_total ? total - *last_total : 0;
	*last_total = total;
	return fresh;
}

static void
on_stop(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static int
autoscale(const struct auto_opts *a)
{
	int64_t last_up = 0, last_down = 0, low_since = 0;
	long long last_total = -1;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);
	log_event(stdout, "heroku", "autoscale",
	    "at=info desc=\"autoscaling %s between %ld and %ld toward p95 %lldms\"",
	    a->type, a->min, a->max, (long long)a->p95_ms);
	router_read(a->type, &last_total, &(long){ 0 });
	while (!stop_flag) {
		struct timespec ts = { (time_t)(a->interval_ms / 1000),
		    (long)(a->interval_ms % 1000) * 1000000L };
		struct procfile pf;
		struct formation f;
		long p95, cur, next;
		long long fresh;
		int64_t now;
		const char *why = NULL;

		nanosleep(&ts, NULL);	/* the sampling interval itself */
		if (stop_flag)
			break;
		fresh = router_read(a->type, &last_total, &p95);
		if (fresh == 0)
			p95 = 0;	/* no requests: no latency to speak of */
		if (procfile_current(&pf) == -1)
			continue;
		if (formation_current(&f, &pf) == -1) {
			procfile_free(&pf);
			continue;
		}
		cur = formation_get(&f, a->type);
		if (cur < 0)
			cur = strcmp(a->type, "web") == 0 ? 1 : 0;
		now = clock_ms();
		next = cur;
		if (cur < a->min) {
			next = a->min;
			why = "below min";
		} else if (cur > a->max) {
			next = a->max;
			why = "above max";
		} else if (p95 > a->p95_ms && cur < a->max &&
		    now - last_up >= a->up_ms) {
			next = cur + 1;
			why = "p95 over target";
		}
		if (p95 * 2 < a->p95_ms) {
			if (low_since == 0)
				low_since = now;
		} else
			low_since = 0;
		if (next == cur && low_since && now - low_since >= a->down_ms &&
		    now - last_down >= a->down_ms && now - last_up >= a->down_ms &&
		    cur > a->min) {
			next = cur - 1;
			why = "p95 under half the target";
		}
		log_event(stdout, "heroku", "autoscale",
		    "at=info decision=%s %s=%ld->%ld p95=%ldms target=%lldms "
		    "requests=%lld%s%s%s", next > cur ? "up" : next < cur ? "down" :
		    "hold", a->type, cur, next, p95, (long long)a->p95_ms, fresh,
		    why ? " reason=\"" : "", why ? why : "", why ? "\"" : "");
		if (next != cur) {
			char arg[DYNO_NAME_MAX + 24], path[4096], err[DYNO_ERR_MAX];
			pid_t sup;
			int bad;

			snprintf(arg, sizeof(arg), "%s=%ld", a->type, next);
			app_path(&app, path, sizeof(path), "formation");
			bad = formation_apply_arg(&f, arg, &pf, max_per_type, err,
			    sizeof(err));
			if (bad == 0 && (bad = formation_save(&app, &f)) == -1)
				snprintf(err, sizeof(err), "cannot write %s: %s",
				    path, strerror(errno));
			if (bad == -1)
				log_event(stdout, "heroku", "autoscale",
				    "at=error desc=\"cannot scale: %s\"", err);
			else if ((sup = app_supervisor_pid(&app)) > 0)
				kill(sup, SIGHUP);
			if (next > cur)
				last_up = now;
			else {
				last_down = now;
				low_since = now;
			}
		}
		procfile_free(&pf);
	}
	return 0;
}

/* ---- main -------------------------------------------------------------------- */

static int64_t
duration_arg(const char *name, const char *arg)
{
	int64_t v;

	if (parse_duration_ms(arg, &v) == -1 || v <= 0) {
		fprintf(stderr, "dyno-scale: --%s: invalid duration \"%s\"\n", name,
		    arg);
		usage(stderr);
		exit(2);
	}
	return v;
}

static long
count_arg(const char *name, const char *arg)
{
	long v;

	if (parse_long(arg, 0, 10000, &v) == -1) {
		fprintf(stderr, "dyno-scale: --%s: invalid number \"%s\"\n", name,
		    arg);
		usage(stderr);
		exit(2);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "app", required_argument, NULL, 'a' },
		{ "auto", required_argument, NULL, 'A' },
		{ "down-every", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ "interval", required_argument, NULL, 'i' },
		{ "max", required_argument, NULL, 'M' },
		{ "min", required_argument, NULL, 'm' },
		{ "p95", required_argument, NULL, 'P' },
		{ "porcelain", no_argument, NULL, 'p' },
		{ "restart", optional_argument, NULL, 'r' },
		{ "stop", required_argument, NULL, 's' },
		{ "up-every", required_argument, NULL, 'U' },
		{ "wait", optional_argument, NULL, 'w' },
		{ NULL, 0, NULL, 0 }
	};
	struct auto_opts au = { NULL, 1, -1, 0, 10000, 60000, 300000 };
	const char *appdir = NULL, *restart = NULL, *stop = NULL;
	int ch, porcelain = 0, do_restart = 0;
	long wait_secs = 0;

	while ((ch = getopt_long(argc, argv, "a:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			appdir = optarg;
			break;
		case 'A':
			au.type = optarg;
			break;
		case 'D':
			au.down_ms = duration_arg("down-every", optarg);
			break;
		case 'h':
			help();
			return 0;
		case 'i':
			au.interval_ms = duration_arg("interval", optarg);
			break;
		case 'M':
			au.max = max_per_type = count_arg("max", optarg);
			break;
		case 'm':
			au.min = count_arg("min", optarg);
			break;
		case 'P':
			au.p95_ms = duration_arg("p95", optarg);
			break;
		case 'p':
			porcelain = 1;
			break;
		case 'r':
			do_restart = 1;
			restart = optarg;
			break;
		case 's':
			stop = optarg;
			break;
		case 'U':
			au.up_ms = duration_arg("up-every", optarg);
			break;
		case 'w':
			wait_secs = optarg ? count_arg("wait", optarg) : 60;
			if (wait_secs == 0)
				wait_secs = 60;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	argc -= optind;
	argv += optind;
	/* "--restart web.1" as two words, as people type it. */
	if (do_restart && restart == NULL && argc == 1) {
		restart = argv[0];
		argc = 0;
	}
	if ((do_restart || stop) && (argc > 0 || (do_restart && stop))) {
		usage(stderr);
		return 2;
	}
	if (au.type != NULL && (argc > 0 || au.p95_ms == 0 || au.max < au.min ||
	    au.max <= 0)) {
		fprintf(stderr, "dyno-scale: --auto needs --p95 and --max >= --min\n");
		usage(stderr);
		return 2;
	}
	if (app_init(&app, appdir) == -1) {
		fprintf(stderr, "dyno-scale: %s\n", app.why);
		return 1;
	}
	if (au.type != NULL)
		return autoscale(&au);
	if (do_restart) {
		char line[256];
		snprintf(line, sizeof(line), "restart %s", restart ? restart : "all");
		return control(line);
	}
	if (stop != NULL) {
		char line[256];
		if (!strchr(stop, '.')) {
			fprintf(stderr, "dyno-scale: --stop takes a dyno name such "
			    "as web.1\n");
			return 2;
		}
		snprintf(line, sizeof(line), "stop %s", stop);
		return control(line);
	}
	if (argc == 0)
		return show(porcelain);
	return scale(argc, argv, wait_secs);
}
