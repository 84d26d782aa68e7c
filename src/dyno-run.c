/*
 * dyno-run: the supervisor.  It keeps the formation running from the
 * current release: one record per dyno, each an explicit state machine
 * (starting -> up -> stopping -> down, crashed between restarts), driven by
 * one poll loop whose timeout is the nearest deadline.  Files are the truth:
 * run/dynos/NAME and run/routes are rewritten after every change, and a new
 * supervisor adopts the dynos an old one left running.  See dyno-run(1) and
 * dyno(7).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"

#define LINE_MAX_BYTES 10000	/* longer dyno lines are split here */
#define PROBE_MS 50		/* how often a booting web dyno's port is tried */
#define READY_RETRY_MS 250	/* between readiness check attempts */
#define READY_HTTP_MS 2000	/* one HTTP readiness attempt, connect to head */
#define READY_COMMAND_MS 10000	/* one readiness command */
#define READY_HEAD_MAX 4096	/* a readiness answer's head, at most */
#define READY_PATH_MAX 1024
#define READY_MAX 64		/* --ready options */
#define ADOPT_POLL_MS 1000	/* liveness check where pidfd is missing */
#define DYNOS_MAX 1024

enum state { ST_STARTING, ST_UP, ST_STOPPING, ST_CRASHED, ST_DOWN };
static const char *state_names[] = {
	"starting", "up", "stopping", "crashed", "down"
};

/* Why a dyno is being stopped: decides what happens when it exits. */
enum stop_reason { STOP_NONE, STOP_REMOVE, STOP_HOLD, STOP_CRASH };

struct dyno {
	char name[DYNO_NAME_MAX];
	char type[DYNO_NAME_MAX];
	char release[32];
	char *command;
	enum state state;
	enum stop_reason stop_reason;
	int retiring;		/* the old half of a preboot replacement */
	pid_t pid;
	unsigned long long pid_start;
	int port;
	time_t started;		/* wall clock, for people */
	int64_t since;		/* monotonic: entered this state */
	int64_t deadline;	/* boot timeout or stop grace */
	int64_t probe_at;	/* next port probe while starting */
	int64_t next_start;	/* when crashed */
	int64_t last_start;
	int64_t cycle_at;	/* daily restart */
	int64_t reset_at;	/* backoff resets when up this long */
	int crashes;		/* for backoff; reset after a long enough run */
	int was_up;		/* its last run got up: killed, not a broken app */
	int restarts;		/* for people */
	long rss_kb;
	long rss_written;
	int adopted, pidfd;
	int logfd;
	char logpath[4096];
	char *line;
	size_t linelen;
	int dirty;
	int term_pending;	/* SIGTERM goes out after routes are rewritten */
	int leader_gone;	/* stopping: its shell exited, children still drain */
	int exit_code;		/* the shell's status, logged once all are gone;
				 * -1 unknown */
	char cgroup[4096];	/* its own cgroup under --cgroup, or "" */
	char envsum[17];	/* digest of the config it started with */
	/* --ready: checked after the bind, before the dyno is up. */
	int bound;		/* web: $PORT took a connect */
	int ready_fd;		/* an HTTP attempt in flight, or -1 */
	pid_t ready_pid;	/* a command attempt in flight, or 0 */
	int64_t ready_end;	/* this attempt's deadline */
	size_t ready_sent, ready_len;
	char ready_buf[READY_HEAD_MAX];	/* the request, then the answer */
	char ready_why[128];	/* the last attempt's failure, for R10 */
};

/* --ready TYPE=CHECK: a path ("/healthz") or a command. */
struct ready_check {
	char type[DYNO_NAME_MAX];
	const char *check;
};

static struct {
	int64_t boot_ms, grace_ms, backoff_cap_ms, backoff_reset_ms;
	int64_t cycle_ms, cycle_jitter_ms, mem_interval_ms;
	long quota_kb, nofile, max_per_type;
	int port_base;
	const char *user;
	uid_t uid;
	gid_t gid;
	const char *cgroup;	/* a delegated cgroup v2 folder, or NULL: /proc */
	const char *release_dir;	/* --one-off in this release, not current */
	struct ready_check ready[READY_MAX];
	size_t nready;
} opt = {
	60000, 30000, 320000, 60000,
	86400000, 216 * 60000, 5000,
	512 * 1024, 10000, 100,
	5000, NULL, 0, 0, NULL, NULL, { { "", NULL } }, 0,
};

static struct app app;
static struct dyno *dynos[DYNOS_MAX];
static size_t ndynos;
static struct procfile procfile;
static struct formation formation;
static struct env base_env;
static char release[32] = "dev";
static char envsum[17];		/* changes when config vars or .env change */
static char code_dir[4096];
static char routes_last[65536];
static int routes_written;
static int shutting_down, ready_sent, initial_started;
static int64_t mem_next;
static unsigned long log_seq;
static int control_fd = -1;
/* Sessions of exited dynos still to be swept for stragglers: after the
 * replacement has been started, so the crash-to-exec path reads no /proc. */
static struct proc_dyno sweeps[DYNOS_MAX];
static size_t nsweep;
static struct control_lines control_in;

static void dyno_stop(struct dyno *d, enum stop_reason why);
static void ready_stop(struct dyno *d);

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: dyno-run [-a APP] [-p PORT] [-u USER] [options] [TYPE=COUNT ...]\n"
"       dyno-run [-a APP] --one-off COMMAND [ARG ...]\n");
}

static void
help(void)
{
	usage(stdout);
	printf(
"\nRun and watch the app's formation of dynos in the foreground.\n\n"
"  -a, --app DIR            app directory (default $DYNO_APP, then .)\n"
"  -p, --port-base PORT     first port for web dynos (default 5000)\n"
"  -u, --user USER          run dynos as USER (when started as root)\n"
"      --trust-app-dir      with -u: run even if USER can write the app\n"
"                           directory, .dyno or the folder above\n"
"      --boot-timeout DUR   web dyno must accept on $PORT (and pass --ready)\n"
"                           within (60s, R10)\n"
"      --ready TYPE=CHECK   TYPE is up only once CHECK passes: /PATH answers\n"
"                           2xx on $PORT, or a command exits 0 (repeatable)\n"
"      --stop-grace DUR     SIGTERM to SIGKILL (30s, R12)\n"
"      --backoff-cap DUR    longest wait between crash restarts (320s)\n"
"      --backoff-reset DUR  up this long forgets earlier crashes (60s)\n"
"  -m, --memory SIZE        memory quota per dyno (512M; R14 over, R15 over 2x)\n"
"      --memory-interval DUR  how often memory is sampled (5s)\n"
"      --cycle DUR          restart each dyno after DUR (24h; 0 turns it off)\n"
"      --cycle-jitter DUR   plus a random 0..DUR (216m)\n"
"      --no-cycle           no daily cycling\n"
"      --cgroup DIR         a delegated cgroup v2 folder (or v1 memory folder):\n"
"                           one child cgroup per dyno, memory from\n"
"                           memory.current (v1: memory.usage_in_bytes)\n"
"                           (default: PSS from /proc)\n"
"      --nofile N           open-file limit for dynos (10000)\n"
"      --max N              most dynos of one type (100)\n"
"      --one-off CMD ...    run CMD once as run.N, attached, and exit with its status\n"
"      --release DIR        with --one-off: in release folder DIR, not current\n"
"  -h, --help               this help\n\n"
"Durations take ms, s, m or h (default s).  Control: SIGHUP or 'reload',\n"
"'restart NAME|TYPE|all', 'stop NAME' written to APP/.dyno/run/control.\n");
}

/* ---- records ---------------------------------------------------------- */

static void
statefile_path(const struct dyno *d, char *buf, size_t len)
{
	if (d->retiring)
		app_path(&app, buf, len, "run/dynos/%s~%ld", d->name,
		    (long)d->pid);
	else
		app_path(&app, buf, len, "run/dynos/%s", d->name);
}

static void
dyno_write(struct dyno *d)
{
	char path[4096], buf[8192];
	int n;

	statefile_path(d, path, sizeof(path));
	n = snprintf(buf, sizeof(buf),
	    "name=%s\ntype=%s\nstate=%s\npid=%ld\npid_start=%llu\nport=%d\n"
	    "release=%s\nstarted=%lld\nrestarts=%d\nrss=%ld\nlog=%s\n"
	    "next_start=%lld\nsupervisor=%ld\ncgroup=%s\nenvsum=%s\n"
	    "command=%s\n",
	    d->name, d->type, state_names[d->state], (long)d->pid,
	    d->pid_start, d->port, d->release, (long long)d->started,
	    d->restarts, d->rss_kb, d->logpath,
	    d->state == ST_CRASHED ? (long long)(time(NULL) +
	    (d->next_start - clock_ms()) / 1000) : 0LL,
	    (long)getpid(), d->cgroup, d->envsum, d->command);
	if (n < 0 || (size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	if (app_write(&app, app_rel(&app, path), buf, (size_t)n, 0644, 0) == -1)
		fprintf(stderr, "dyno-run: cannot write %s: %s\n", path,
		    strerror(errno));
	d->rss_written = d->rss_kb;
	d->dirty = 0;
}

static void
dyno_set_state(struct dyno *d, enum state s)
{
	if (s != ST_STARTING)
		ready_stop(d);	/* no check outlives the boot it was for */
	if (d->state != s)
		log_event(stdout, "heroku", d->name,
		    "State changed from %s to %s", state_names[d->state],
		    state_names[s]);
	d->state = s;
	d->since = clock_ms();
	d->dirty = 1;
}

static struct dyno *
dyno_new(const char *type, int index)
{
	struct dyno *d;

	if (ndynos >= DYNOS_MAX || (d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	if ((d->line = malloc(LINE_MAX_BYTES)) == NULL) {
		free(d);
		return NULL;
	}
	snprintf(d->type, sizeof(d->type), "%s", type);
	snprintf(d->name, sizeof(d->name), "%s.%d", type, index);
	d->logfd = d->pidfd = d->ready_fd = -1;
	d->state = ST_DOWN;
	dynos[ndynos++] = d;
	return d;
}

static void
dyno_free(struct dyno *d)
{
	char path[4096];
	size_t i;

	statefile_path(d, path, sizeof(path));
	app_unlinkat(&app, app_rel(&app, path));
	ready_stop(d);
	if (d->logfd >= 0)
		close(d->logfd);
	if (d->pidfd >= 0)
		close(d->pidfd);
	if (d->logpath[0])
		app_unlinkat(&app, app_rel(&app, d->logpath));
	for (i = 0; i < ndynos; i++)
		if (dynos[i] == d) {
			memmove(&dynos[i], &dynos[i + 1],
			    (ndynos - i - 1) * sizeof(dynos[0]));
			ndynos--;
			break;
		}
	free(d->command);
	free(d->line);
	free(d);
}

static struct dyno *
dyno_find(const char *name, int retiring)
{
	size_t i;

	for (i = 0; i < ndynos; i++)
		if (strcmp(dynos[i]->name, name) == 0 &&
		    dynos[i]->retiring == retiring)
			return dynos[i];
	return NULL;
}

/* ---- dyno output ------------------------------------------------------ */

static void
dyno_output(struct dyno *d, const char *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (buf[i] == '\n') {
			log_raw(stdout, "app", d->name, d->line, d->linelen);
			d->linelen = 0;
			continue;
		}
		d->line[d->linelen++] = buf[i];
		if (d->linelen == LINE_MAX_BYTES) {
			log_raw(stdout, "app", d->name, d->line, d->linelen);
			d->linelen = 0;
		}
	}
}

/* Read what the dyno wrote; at exit, drain everything and keep a partial line. */
static void
dyno_read_output(struct dyno *d, int final)
{
	char buf[65536];
	ssize_t n;

	if (d->logfd < 0)
		return;
	for (;;) {
		n = read(d->logfd, buf, sizeof(buf));
		if (n > 0) {
			dyno_output(d, buf, (size_t)n);
			if (!final && n < (ssize_t)sizeof(buf))
				break;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		break;
	}
	if (final && d->linelen > 0) {
		log_raw(stdout, "app", d->name, d->line, d->linelen);
		d->linelen = 0;
	}
}

/* ---- ports ------------------------------------------------------------ */

static int
port_taken(int port)
{
	struct sockaddr_in sin;
	size_t i;
	int fd, one = 1, rc;

	for (i = 0; i < ndynos; i++)
		if (dynos[i]->port == port && dynos[i]->state != ST_DOWN)
			return 1;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_ANY);
	rc = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	close(fd);
	return rc == -1;
}

static int
port_pick(int avoid)
{
	int port;

	for (port = opt.port_base; port < 65536; port++)
		if (port != avoid && !port_taken(port))
			return port;
	return -1;
}

static int
port_accepts(int port)
{
	struct sockaddr_in sin;
	int fd, rc;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return 0;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rc = connect(fd, (struct sockaddr *)&sin, sizeof(sin));
	/* A connect that met itself is no listener, and no dyno up. */
	if (rc == 0 && sock_is_self(fd) != 0)
		rc = -1;
	close(fd);
	return rc == 0;
}

/* ---- release and environment ----------------------------------------- */

/*
 * Read the current release (or the app itself in dev mode): its Procfile,
 * its config vars and where its code is.  On failure nothing changes, so a
 * bad Procfile on reload leaves the running dynos alone.
 */
static int
release_load(char *err, size_t errlen)
{
	char ver[32] = "dev", dir[4096], pfpath[4096], cfg[4096], dotenv[4096];
	struct procfile pf;
	struct env env;
	int rc;

	rc = app_release(&app, ver, sizeof(ver), dir, sizeof(dir));
	if (opt.release_dir != NULL) {
		/* dyno-deploy's release phase: a release not yet current. */
		char meta[4200], text[4096], v[32];
		if (realpath(opt.release_dir, dir) == NULL) {
			snprintf(err, errlen, "release %s: %s", opt.release_dir,
			    strerror(errno));
			return -1;
		}
		snprintf(meta, sizeof(meta), "%s/meta", dir);
		snprintf(ver, sizeof(ver), "new");
		if (file_read(meta, text, sizeof(text)) > 0 &&
		    kv_get(text, "version", v, sizeof(v)) == 0)
			snprintf(ver, sizeof(ver), "v%s", v);
		rc = 0;
	}
	if (rc == -1) {
		snprintf(err, errlen, "cannot read %s/current: %s", app.state,
		    strerror(errno));
		return -1;
	}
	if (env_init(&env, environ) == -1)
		return -1;
	env_unset(&env, "NOTIFY_SOCKET");
	env_unset(&env, "LISTEN_FDS");
	env_unset(&env, "LISTEN_PID");
	env_unset(&env, "DYNO_APP");
	env_unset(&env, "PORT");	/* only web dynos get one, and ours */
	env_unset(&env, "DYNO");
	if (rc == 1) {		/* dev mode, like foreman start */
		snprintf(ver, sizeof(ver), "dev");
		snprintf(dir, sizeof(dir), "%s", app.dir);
		snprintf(pfpath, sizeof(pfpath), "%s/Procfile", app.dir);
		snprintf(dotenv, sizeof(dotenv), "%s/.env", app.dir);
		app_path(&app, cfg, sizeof(cfg), "config");
		if (env_load_dotenv(&env, dotenv, err, errlen) == -1 ||
		    env_load_config_at(&env, app.fd, "config", cfg, err,
		    errlen) == -1)
			goto fail;
	} else {
		snprintf(pfpath, sizeof(pfpath), "%s/Procfile", dir);
		snprintf(cfg, sizeof(cfg), "%s/config", dir);
		if (env_load_config(&env, cfg, err, errlen) == -1)
			goto fail;
		if (strlen(dir) + 5 < sizeof(dir))
			strcat(dir, "/app");
	}
	if (procfile_load(pfpath, &pf, err, errlen) == -1)
		goto fail;
	{
		/* A digest of the config vars (not of our own environment, which
		 * a restarted supervisor may not share): a config change
		 * replaces dynos even in dev mode, where the release name
		 * never changes. */
		struct sha256 h;
		struct env cfgvars;
		char hex[65];
		size_t i;
		env_init(&cfgvars, NULL);
		if (rc == 1)
			env_load_dotenv(&cfgvars, dotenv, err, errlen);
		env_load_config(&cfgvars, cfg, err, errlen);
		sha256_init(&h);
		for (i = 0; i < cfgvars.n; i++)
			sha256_update(&h, cfgvars.vars[i],
			    strlen(cfgvars.vars[i]) + 1);
		sha256_hex(&h, hex);
		snprintf(envsum, sizeof(envsum), "%.16s", hex);
		env_free(&cfgvars);
	}
	procfile_free(&procfile);
	procfile = pf;
	env_free(&base_env);
	base_env = env;
	snprintf(release, sizeof(release), "%s", ver);
	snprintf(code_dir, sizeof(code_dir), "%s", dir);
	return 0;
fail:
	env_free(&env);
	return -1;
}

static int
formation_read(char *err, size_t errlen)
{
	struct formation f;

	if (formation_load(&app, &f, err, errlen) == -1) {
		if (errno != ENOENT)
			return -1;
		formation_default(&f, &procfile);
	}
	formation = f;
	return 0;
}

static long
formation_want(const char *type)
{
	long n;

	if (strcmp(type, "release") == 0 || procfile_find(&procfile, type) == NULL)
		return 0;
	n = formation_get(&formation, type);
	if (n < 0)	/* Heroku's default for a type the formation lacks */
		n = strcmp(type, "web") == 0 ? 1 : 0;
	return n > opt.max_per_type ? opt.max_per_type : n;
}

/* ---- start and stop --------------------------------------------------- */

static int64_t
cycle_deadline(void)
{
	if (opt.cycle_ms <= 0)
		return 0;
	return clock_ms() + opt.cycle_ms +
	    (opt.cycle_jitter_ms > 0 ? (int64_t)(random() % opt.cycle_jitter_ms) : 0);
}

/* The environment a dyno, and its readiness command, run with. */
static int
dyno_env(const struct dyno *d, struct env *env)
{
	char portbuf[16];

	if (env_copy(env, &base_env) == -1)
		return -1;
	env_set(env, "DYNO", d->name);
	if (d->port > 0) {
		snprintf(portbuf, sizeof(portbuf), "%d", d->port);
		env_set(env, "PORT", portbuf);
	}
	return 0;
}

static const char *
ready_find(const char *type)
{
	size_t i;

	for (i = 0; i < opt.nready; i++)
		if (strcmp(opt.ready[i].type, type) == 0)
			return opt.ready[i].check;
	return NULL;
}

static int
dyno_spawn(struct dyno *d, int avoid_port)
{
	const struct proctype *pt = procfile_find(&procfile, d->type);
	struct spawn_opts so;
	struct env env;
	const char *rel;
	int outfd;

	if (pt == NULL)
		return -1;
	free(d->command);
	d->command = strdup(pt->command);
	snprintf(d->release, sizeof(d->release), "%s", release);
	snprintf(d->envsum, sizeof(d->envsum), "%s", envsum);
	d->port = 0;
	if (strcmp(d->type, "web") == 0 && (d->port = port_pick(avoid_port)) < 0) {
		log_event(stdout, "heroku", d->name, "no free port from %d",
		    opt.port_base);
		return -1;
	}
	app_path(&app, d->logpath, sizeof(d->logpath), "run/logs/%s.%ld.%lu",
	    d->name, (long)getpid(), ++log_seq);
	rel = app_rel(&app, d->logpath);
	app_unlinkat(&app, rel);
	/* The path stays in the state file; we work by the folder we opened. */
	if (app_mkfifoat(&app, rel, 0600) == -1 ||
	    (d->logfd = app_openat(&app, rel, O_RDWR | O_NONBLOCK, 0)) == -1 ||
	    fchmod(d->logfd, 0600) == -1 ||
	    (outfd = app_openat(&app, rel, O_RDWR, 0)) == -1) {
		log_event(stdout, "heroku", d->name, "cannot make log pipe %s: %s",
		    d->logpath, strerror(errno));
		goto fail;
	}
	if (dyno_env(d, &env) == -1) {
		close(outfd);
		goto fail;
	}
	memset(&so, 0, sizeof(so));
	d->cgroup[0] = '\0';
	if (opt.cgroup != NULL) {
		static char procs[4200];
		snprintf(d->cgroup, sizeof(d->cgroup), "%s/%s.%lu", opt.cgroup,
		    d->name, log_seq);
		snprintf(procs, sizeof(procs), "%s/cgroup.procs", d->cgroup);
		if (mkdir(d->cgroup, 0755) == -1 && errno != EEXIST) {
			log_event(stdout, "heroku", d->name, "cannot make cgroup "
			    "%s: %s", d->cgroup, strerror(errno));
			close(outfd);
			env_free(&env);
			d->cgroup[0] = '\0';
			goto fail;
		}
		so.cgroup_procs = procs;
	}
	so.command = d->command;
	so.envp = env.vars;
	so.dir = code_dir;
	so.in_fd = -1;
	so.out_fd = so.err_fd = outfd;	/* the dyno holds the FIFO read+write */
	so.new_session = 1;
	so.user = opt.user;
	so.uid = opt.uid;
	so.gid = opt.gid;
	so.nofile = opt.nofile;
	d->pid = spawn_process(&so);
	close(outfd);
	env_free(&env);
	if (d->pid == -1) {
		log_event(stdout, "heroku", d->name, "cannot fork: %s",
		    strerror(errno));
		d->pid = 0;
		goto fail;
	}
	proc_starttime(d->pid, &d->pid_start);
	d->started = time(NULL);
	d->last_start = clock_ms();
	d->adopted = 0;
	d->rss_kb = 0;
	d->stop_reason = STOP_NONE;
	d->cycle_at = cycle_deadline();
	d->reset_at = 0;
	d->leader_gone = 0;
	d->bound = 0;
	d->ready_why[0] = '\0';
	dyno_set_state(d, ST_STARTING);
	log_event(stdout, "heroku", d->name, "Starting process with command `%s`",
	    d->command);
	if (d->port > 0 || ready_find(d->type) != NULL) {
		d->deadline = clock_ms() + opt.boot_ms;
		d->probe_at = clock_ms();
	} else {
		d->deadline = 0;
		dyno_set_state(d, ST_UP);
		/* only a crash history needs forgetting: no idle wakeup otherwise */
		d->reset_at = d->crashes ? clock_ms() + opt.backoff_reset_ms : 0;
	}
	return 0;
fail:
	/* Give back the log pipe so a retry starts clean. */
	if (d->logfd >= 0)
		close(d->logfd);
	d->logfd = -1;
	if (d->logpath[0])
		app_unlinkat(&app, app_rel(&app, d->logpath));
	d->logpath[0] = '\0';
	return -1;
}

/* Bytes in a cgroup file such as memory.current, as KB; -1 if unreadable. */
static long
cgroup_read_kb(const struct dyno *d, const char *file)
{
	char path[4200], text[64];
	long long v;

	snprintf(path, sizeof(path), "%s/%s", d->cgroup, file);
	if (file_read(path, text, sizeof(text)) <= 0)
		return -1;
	v = strtoll(text, NULL, 10);
	return v < 0 ? -1 : (long)(v / 1024);
}

/*
 * The dyno's memory as its cgroup counts it: v2's memory.current, else
 * v1's memory.usage_in_bytes (a delegated v1 memory controller folder).
 */
static long
cgroup_memory_kb(const struct dyno *d)
{
	long kb = cgroup_read_kb(d, "memory.current");

	return kb >= 0 ? kb : cgroup_read_kb(d, "memory.usage_in_bytes");
}

/*
 * SIGKILL to everything in the dyno's cgroup, even what left its session:
 * v2 has cgroup.kill; v1 has not, so each pid its cgroup.procs lists (the
 * kernel's list of the cgroup's processes) gets SIGKILL.
 */
static void
cgroup_kill(const struct dyno *d)
{
	char path[4200], text[65536], *line, *save;
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.kill", d->cgroup);
	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0) {
		(void)!write(fd, "1", 1);
		close(fd);
		return;
	}
	if (errno != ENOENT)
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", d->cgroup);
	if (file_read(path, text, sizeof(text)) <= 0)
		return;
	for (line = strtok_r(text, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		long pid;
		if (parse_long(line, 2, 1L << 30, &pid) == 0 &&
		    (pid_t)pid != getpid())
			kill((pid_t)pid, SIGKILL);
	}
}

/* The uid dyno-run gives its dynos: -u USER's, else its own. */
static uid_t
dynos_uid(void)
{
	return opt.user != NULL ? opt.uid : geteuid();
}

/* What proc.c needs to prove a process is d's before it signals it. */
static struct proc_dyno
dyno_proc(const struct dyno *d)
{
	struct proc_dyno p;

	memset(&p, 0, sizeof(p));
	p.sid = d->pid;
	p.start = d->pid_start;
	p.uid = dynos_uid();
	p.adopted = d->adopted;
	return p;
}

static void
dyno_signal(struct dyno *d, int sig)
{
	struct proc_dyno p = dyno_proc(d);

	if (d->pid > 0)
		proc_dyno_kill(&p, sig, NULL);
	if (sig == SIGKILL && d->cgroup[0])
		cgroup_kill(d);
}

static void
dyno_stop(struct dyno *d, enum stop_reason why)
{
	d->stop_reason = why;
	if (d->state == ST_CRASHED || d->state == ST_DOWN || d->pid <= 0) {
		dyno_set_state(d, ST_DOWN);	/* no process: swept or held */
		d->pid = 0;
		return;
	}
	if (d->state == ST_STOPPING)
		return;
	/* Leave the routes first: the caller's loop rewrites them before we
	 * sleep, and the router stops sending here before the dyno hears TERM. */
	dyno_set_state(d, ST_STOPPING);
	log_event(stdout, "heroku", d->name, "Stopping all processes with SIGTERM");
	d->deadline = clock_ms() + opt.grace_ms;
	d->term_pending = 1;
}

/* Replace d preboot-style: a new process under the same name, then stop d. */
static void
dyno_replace(struct dyno *d, const char *why)
{
	struct dyno *n;
	char *dot;
	int index;

	if (d->retiring || d->state == ST_STOPPING)
		return;
	if (why != NULL)
		log_event(stdout, "heroku", d->name, "%s", why);
	if (d->state != ST_UP) {
		/* Nothing is served from it yet: restart in place. */
		if (d->state == ST_STARTING) {
			d->retiring = 1;
			dyno_stop(d, STOP_REMOVE);
		} else {
			d->crashes = 0;
			d->next_start = clock_ms();
			dyno_set_state(d, ST_CRASHED);
			return;
		}
	} else {
		d->retiring = 1;	/* keeps serving until the new one is up */
		d->dirty = 1;
	}
	dot = strrchr(d->name, '.');
	index = dot ? atoi(dot + 1) : 1;
	if ((n = dyno_new(d->type, index)) == NULL)
		return;
	n->restarts = d->restarts;	/* a replacement is not a crash */
	if (dyno_spawn(n, d->port) == -1) {
		n->next_start = clock_ms() + 1000;
		dyno_set_state(n, ST_CRASHED);
	}
}

static int
session_empty(const struct dyno *d)
{
	struct proc_sample s;

	s.dyno = dyno_proc(d);
	proc_sample_dynos(&s, 1, 0);
	return s.nprocs == 0;
}

static void dyno_finish(struct dyno *d);

static void
dyno_exit_logged(const struct dyno *d)
{
	if (d->exit_code >= 0)
		log_event(stdout, "heroku", d->name,
		    "Process exited with status %d", d->exit_code);
	else
		log_event(stdout, "heroku", d->name, "Process exited");
}

/* The process is gone (reaped, or its pidfd fired).  status < 0: unknown. */
static void
dyno_exited(struct dyno *d, int status)
{
	if (d->pidfd >= 0) {
		close(d->pidfd);
		d->pidfd = -1;
	}
	d->exit_code = status < 0 ? -1 : WIFEXITED(status) ?
	    WEXITSTATUS(status) : 128 + WTERMSIG(status);
	/* A graceful stop: the shell may be gone while the app it started
	 * still finishes its requests.  Wait for the rest, within the grace;
	 * dyno_finish says "Process exited" when they are gone, not before. */
	if (d->state == ST_STOPPING && d->stop_reason != STOP_CRASH &&
	    !session_empty(d)) {
		d->leader_gone = 1;
		d->probe_at = clock_ms() + PROBE_MS;
		return;
	}
	dyno_finish(d);
}

/* Every process of the dyno is gone (or is being killed): settle the record. */
static void
dyno_finish(struct dyno *d)
{
	enum state was = d->state;
	int64_t now = clock_ms(), delay;

	/* Whatever it left behind goes with it: its group now, and anything
	 * else in its session right after the restart (sessions_sweep).  Not
	 * the group of an adopted dyno: proc.c proves each process first. */
	if (d->pid > 1) {
		struct proc_dyno p = dyno_proc(d);
		if (!d->adopted)
			kill(-d->pid, SIGKILL);
		if (nsweep < DYNOS_MAX)
			sweeps[nsweep++] = p;
		else
			proc_dyno_kill(&p, SIGKILL, NULL);
	}
	dyno_read_output(d, 1);
	/* After its last lines: the app's output comes first, as on Heroku. */
	dyno_exit_logged(d);
	d->leader_gone = 0;
	if (d->logfd >= 0)
		close(d->logfd);
	d->logfd = -1;
	if (d->pidfd >= 0)
		close(d->pidfd);
	d->pidfd = -1;
	app_unlinkat(&app, app_rel(&app, d->logpath));
	d->logpath[0] = '\0';
	d->rss_kb = 0;
	if (d->cgroup[0]) {
		rmdir(d->cgroup);	/* empty now; the kernel frees it */
		d->cgroup[0] = '\0';
	}

	if (d->retiring || d->stop_reason == STOP_REMOVE || shutting_down) {
		if (was == ST_STOPPING)
			dyno_set_state(d, ST_DOWN);
		dyno_free(d);
		return;
	}
	if (d->stop_reason == STOP_HOLD) {
		dyno_set_state(d, ST_DOWN);
		d->pid = 0;
		return;
	}
	/* A crash: first restart at once, then 1 s doubling to the cap, and
	 * never two starts of one dyno within a second. */
	delay = d->crashes == 0 ? 0 : (int64_t)1000 << (d->crashes - 1 > 20 ? 20 :
	    d->crashes - 1);
	if (delay > opt.backoff_cap_ms)
		delay = opt.backoff_cap_ms;
	if (now + delay < d->last_start + 1000)
		delay = d->last_start + 1000 - now;
	d->crashes++;
	d->next_start = now + delay;
	d->was_up = was == ST_UP;
	d->pid = 0;
	d->port = 0;
	dyno_set_state(d, ST_CRASHED);
}

/* ---- readiness (--ready) ---------------------------------------------- */

/*
 * A bound port is not a dyno that can serve: gunicorn binds before its
 * workers have imported the app.  With --ready TYPE=CHECK a dyno stays
 * "starting" (out of run/routes, a preboot's old dyno still serving) until
 * one attempt passes: GET PATH on its $PORT answers 2xx, or the command
 * exits 0.  Attempts are READY_RETRY_MS apart, each bounded, and never
 * block the loop: the HTTP one is a non-blocking socket polled with the
 * rest, the command a child reaped with the rest.  The boot timeout (R10)
 * covers bind and readiness together.
 */

/* TYPE=CHECK from the command line; -1 with a one-line reason. */
static int
ready_parse(const char *arg, char *err, size_t errlen)
{
	const char *eq = strchr(arg, '='), *check;
	struct ready_check *r;
	size_t typelen, i;

	if (eq == NULL) {
		snprintf(err, errlen, "--ready: \"%s\" is not TYPE=CHECK", arg);
		return -1;
	}
	typelen = (size_t)(eq - arg);
	check = eq + 1;
	if (typelen == 0 || typelen > PROCTYPE_NAME_MAX) {
		snprintf(err, errlen, "--ready: \"%s\": no process type before =",
		    arg);
		return -1;
	}
	if (opt.nready == READY_MAX) {
		snprintf(err, errlen, "--ready: more than %d", READY_MAX);
		return -1;
	}
	r = &opt.ready[opt.nready];
	memcpy(r->type, arg, typelen);
	r->type[typelen] = '\0';
	if (!name_valid(r->type) || strcmp(r->type, "run") == 0) {
		snprintf(err, errlen, "--ready: invalid process type \"%s\"",
		    r->type);
		return -1;
	}
	if (ready_find(r->type) != NULL) {
		snprintf(err, errlen, "--ready: %s given twice", r->type);
		return -1;
	}
	if (check[0] == '\0' || strspn(check, " \t") == strlen(check)) {
		snprintf(err, errlen, "--ready: %s: empty check", r->type);
		return -1;
	}
	if (check[0] == '/') {
		/* Sent as the request target: visible ASCII only, no fragment. */
		for (i = 0; check[i]; i++)
			if (check[i] < 0x21 || check[i] > 0x7e || check[i] == '#')
				break;
		if (check[i] != '\0' || i > READY_PATH_MAX) {
			snprintf(err, errlen, "--ready: %s: a path is at most %d "
			    "visible ASCII characters, no '#'", r->type,
			    READY_PATH_MAX);
			return -1;
		}
		if (strcmp(r->type, "web") != 0) {
			snprintf(err, errlen, "--ready: %s has no $PORT: only "
			    "web takes a path (a command: 'exec %s')", r->type,
			    check);
			return -1;
		}
	}
	r->check = check;
	opt.nready++;
	return 0;
}

/* End the attempt in flight, if any. */
static void
ready_stop(struct dyno *d)
{
	if (d->ready_fd >= 0)
		close(d->ready_fd);
	d->ready_fd = -1;
	/* Reaped by reap() like any child; its whole group goes. */
	if (d->ready_pid > 0)
		kill(-d->ready_pid, SIGKILL);
	d->ready_pid = 0;
}

static void
dyno_up(struct dyno *d, int64_t now)
{
	dyno_set_state(d, ST_UP);
	d->reset_at = d->crashes ? now + opt.backoff_reset_ms : 0;
}

static void
ready_fail(struct dyno *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* This attempt failed: say why at R10, try again soon. */
static void
ready_fail(struct dyno *d, const char *fmt, ...)
{
	va_list ap;

	ready_stop(d);
	va_start(ap, fmt);
	vsnprintf(d->ready_why, sizeof(d->ready_why), fmt, ap);
	va_end(ap);
	d->probe_at = clock_ms() + READY_RETRY_MS;
}

static void
ready_http_start(struct dyno *d, const char *path)
{
	struct sockaddr_in sin;
	int n;

	n = snprintf(d->ready_buf, sizeof(d->ready_buf),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: dyno-run\r\n"
	    "Connection: close\r\n\r\n", path, d->port);
	if (n < 0 || (size_t)n >= sizeof(d->ready_buf)) {
		ready_fail(d, "request too long");
		return;
	}
	d->ready_len = (size_t)n;
	d->ready_sent = 0;
	d->ready_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (d->ready_fd == -1) {
		ready_fail(d, "socket: %s", strerror(errno));
		return;
	}
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)d->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(d->ready_fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
	    errno != EINPROGRESS)
		ready_fail(d, "connect: %s", strerror(errno));
}

static void
ready_command_start(struct dyno *d, const char *command)
{
	struct spawn_opts so;
	struct env env;

	if (dyno_env(d, &env) == -1) {
		ready_fail(d, "cannot start: %s", strerror(errno));
		return;
	}
	memset(&so, 0, sizeof(so));
	so.command = command;
	so.envp = env.vars;
	so.dir = code_dir;
	so.in_fd = so.out_fd = so.err_fd = -1;
	so.new_session = 1;	/* killed as a group when it overruns */
	so.user = opt.user;
	so.uid = opt.uid;
	so.gid = opt.gid;
	so.nofile = opt.nofile;
	d->ready_pid = spawn_process(&so);
	env_free(&env);
	if (d->ready_pid == -1) {
		d->ready_pid = 0;
		ready_fail(d, "cannot fork: %s", strerror(errno));
	}
}

/* Begin an attempt, or go up at once when TYPE has no check. */
static void
ready_start(struct dyno *d, int64_t now)
{
	const char *check = ready_find(d->type);

	if (check == NULL) {
		dyno_up(d, now);
		return;
	}
	if (check[0] == '/') {
		d->ready_end = now + READY_HTTP_MS;
		ready_http_start(d, check);
	} else {
		d->ready_end = now + READY_COMMAND_MS;
		ready_command_start(d, check);
	}
}

/* What poll should wait for on the HTTP attempt's socket. */
static short
ready_events(const struct dyno *d)
{
	return d->ready_sent < d->ready_len ? POLLOUT : POLLIN;
}

/* The HTTP attempt's socket is ready: send the request, read the head. */
static void
ready_http_io(struct dyno *d)
{
	struct http_msg m;
	socklen_t len = sizeof(int);
	ssize_t n;
	int soerr = 0, rc;

	if (d->ready_sent < d->ready_len) {
		if (getsockopt(d->ready_fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
		    soerr != 0) {
			ready_fail(d, "connect: %s", strerror(soerr));
			return;
		}
		n = send(d->ready_fd, d->ready_buf + d->ready_sent,
		    d->ready_len - d->ready_sent, MSG_NOSIGNAL);
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			ready_fail(d, "send: %s", strerror(errno));
			return;
		}
		/* All sent: the buffer holds the answer from here on. */
		if (n > 0 && (d->ready_sent += (size_t)n) == d->ready_len)
			d->ready_len = d->ready_sent = 0;
		return;
	}
	n = recv(d->ready_fd, d->ready_buf + d->ready_len,
	    sizeof(d->ready_buf) - d->ready_len, 0);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		ready_fail(d, n == 0 ? "closed without an answer" : "recv: %s",
		    strerror(errno));
		return;
	}
	d->ready_len += (size_t)n;
	rc = http_parse_response(d->ready_buf, d->ready_len, &m);
	if (rc == 0 && d->ready_len == sizeof(d->ready_buf))
		ready_fail(d, "answer head over %d bytes", READY_HEAD_MAX);
	else if (rc < 0)
		ready_fail(d, "malformed answer");
	else if (rc > 0 && (m.status < 200 || m.status > 299))
		ready_fail(d, "%d", m.status);
	else if (rc > 0) {
		ready_stop(d);
		dyno_up(d, clock_ms());
	}
}

/* The readiness command exited. */
static void
ready_command_done(struct dyno *d, int status)
{
	d->ready_pid = 0;
	if (d->state != ST_STARTING)
		return;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		dyno_up(d, clock_ms());
	else if (WIFEXITED(status))
		ready_fail(d, "exit status %d", WEXITSTATUS(status));
	else
		ready_fail(d, "signal %d", WTERMSIG(status));
}

/* A check for people: "GET /healthz" or "`pg_isready`". */
static void
ready_describe(const char *check, char *buf, size_t len)
{
	if (check[0] == '/')
		snprintf(buf, len, "GET %s", check);
	else
		snprintf(buf, len, "`%s`", check);
}

/* A starting dyno's timers: bind, then readiness, within the boot timeout. */
static void
dyno_boot_step(struct dyno *d, int64_t now)
{
	const char *check = ready_find(d->type);
	char what[READY_PATH_MAX + 8];

	if (d->stop_reason != STOP_NONE)
		return;		/* killed (R10, R15): only its exit is awaited */
	if (check != NULL)
		ready_describe(check, what, sizeof(what));
	if (d->port > 0 && !d->bound && now >= d->probe_at) {
		if (port_accepts(d->port)) {
			d->bound = 1;
			if (check != NULL)
				log_event(stdout, "heroku", d->name, "Process bound "
				    "to $PORT; up once its readiness check %s "
				    "passes", what);
		} else
			d->probe_at = now + PROBE_MS;
	}
	if ((d->bound || d->port <= 0) && d->ready_fd < 0 &&
	    d->ready_pid <= 0 && now >= d->probe_at) {
		ready_start(d, now);
		if (d->state != ST_STARTING)
			return;
	}
	if (d->ready_fd >= 0 && now >= d->ready_end)
		ready_fail(d, "no answer within %d ms", READY_HTTP_MS);
	else if (d->ready_pid > 0 && now >= d->ready_end)
		ready_fail(d, "still running after %d ms", READY_COMMAND_MS);
	if (d->deadline == 0 || now < d->deadline)
		return;
	if (check != NULL && (d->bound || d->port <= 0))
		log_event(stdout, "heroku", d->name,
		    "Error R10 (Boot timeout) -> %s failed its "
		    "readiness check %s (%s) within %lld seconds of "
		    "launch", d->port > 0 ? "Web process" : "Process",
		    what, d->ready_why[0] ? d->ready_why : "no answer",
		    (long long)(opt.boot_ms / 1000));
	else
		log_event(stdout, "heroku", d->name,
		    "Error R10 (Boot timeout) -> Web process failed "
		    "to bind to $PORT within %lld seconds of launch",
		    (long long)(opt.boot_ms / 1000));
	log_event(stdout, "heroku", d->name,
	    "Stopping process with SIGKILL");
	ready_stop(d);
	d->stop_reason = STOP_CRASH;
	dyno_signal(d, SIGKILL);
}

/* ---- adoption --------------------------------------------------------- */

/*
 * A state file's log= names the FIFO made for its dyno,
 * run/logs/NAME.PID.SEQ, and nothing else: root must not unlink or open
 * whatever a planted file names.
 */
static int
logpath_ours(const char *name, const char *logp)
{
	char dir[4096];
	const char *p;
	struct stat st;
	size_t n;
	int dots = 0;

	if (app_path(&app, dir, sizeof(dir), "run/logs/") == -1)
		return 0;
	n = strlen(dir);
	if (strncmp(logp, dir, n) != 0 || strncmp(logp + n, name,
	    strlen(name)) != 0 || logp[n + strlen(name)] != '.')
		return 0;
	for (p = logp + n + strlen(name); *p != '\0'; p++) {
		if (*p == '.' && isdigit((unsigned char)p[1]))
			dots++;
		else if (!isdigit((unsigned char)*p))
			return 0;
	}
	return dots == 2 && app_lstat(&app, app_rel(&app, logp), &st) == 0 &&
	    S_ISFIFO(st.st_mode);
}

/*
 * A live pid from a state file is adopted, and later signalled, only if it
 * is a dyno's first process as dyno_spawn made it: the leader of its own
 * session, running as the dynos' uid alone (no_new_privs: a dyno cannot
 * gain another).  Its start time the caller has checked; that alone is no
 * proof, since anyone can read it in /proc.  NULL if proven, else why not.
 */
static const char *
leader_unproven(pid_t pid)
{
	static char why[96];
	uid_t uid;

	if (proc_uid(pid, &uid) == -1) {
		snprintf(why, sizeof(why), "%s", errno == EPERM ?
		    "has more than one uid" : "cannot be read");
		return why;
	}
	if (uid != dynos_uid()) {
		snprintf(why, sizeof(why), "runs as uid %lu, not the dynos' "
		    "uid %lu", (unsigned long)uid, (unsigned long)dynos_uid());
		return why;
	}
	if (proc_session(pid) != pid)
		return "does not lead its own session";
	return NULL;
}

/* A state file's cgroup= is one dyno_spawn made: --cgroup's DIR/NAME.SEQ. */
static int
cgroup_ours(const char *name, const char *cg)
{
	size_t n;

	if (opt.cgroup == NULL)
		return 0;
	n = strlen(opt.cgroup);
	if (strncmp(cg, opt.cgroup, n) != 0 || cg[n] != '/' ||
	    strncmp(cg + n + 1, name, strlen(name)) != 0)
		return 0;
	cg += n + 1 + strlen(name);
	if (*cg++ != '.' || *cg == '\0')
		return 0;
	for (; *cg != '\0'; cg++)
		if (!isdigit((unsigned char)*cg))
			return 0;
	return 1;
}

static void
adopt_one(const char *file)
{
	char path[4096], text[8192], name[DYNO_NAME_MAX], state[32], *tilde;
	long pid, port, restarts;
	unsigned long long start;
	char startbuf[32], type[DYNO_NAME_MAX], logp[4096], rel[32], cmd[4096];
	char startedbuf[32];
	const char *why, *srel;
	struct dyno *d;
	int retiring = strchr(file, '~') != NULL;

	app_path(&app, path, sizeof(path), "run/dynos/%s", file);
	srel = app_rel(&app, path);
	if (app_read(&app, srel, text, sizeof(text)) <= 0 ||
	    kv_get(text, "name", name, sizeof(name)) == -1 ||
	    kv_get(text, "type", type, sizeof(type)) == -1 ||
	    kv_get_long(text, "pid", &pid) == -1 ||
	    kv_get(text, "pid_start", startbuf, sizeof(startbuf)) == -1) {
		app_unlinkat(&app, srel);
		return;
	}
	start = strtoull(startbuf, NULL, 10);
	tilde = strchr(name, '~');
	if (tilde)
		*tilde = '\0';
	/* Its name becomes paths (run/logs/NAME.*, run/health/NAME): it
	 * must be the file's own, TYPE.N, or the file is not ours. */
	if (strncmp(file, name, strlen(name)) != 0 ||
	    (file[strlen(name)] != '\0' && file[strlen(name)] != '~') ||
	    dyno_name_index(name, type) < 0) {
		log_event(stdout, "heroku", "run", "Ignoring run/dynos/%s: its "
		    "name= is not its own TYPE.N", file);
		app_unlinkat(&app, srel);
		return;
	}
	if (pid <= 0 || !proc_alive((pid_t)pid, start)) {
		/* Its top process died unwatched; the rest of its session
		 * (an app that its shell started) must not linger on.  But a
		 * pid that lives, with another start time, is another process
		 * (the kernel reuses a pid only once no process has it as
		 * session or group): its group and session are not the
		 * dyno's, whoever wrote this file.  And of a session whose
		 * leader is gone, only what proc.c proves the dyno's: it may
		 * be anyone's, if the file was planted. */
		struct proc_dyno p = { (pid_t)pid, start, dynos_uid(), 1 };
		int refused = 0;
		if (pid > 1 && kill((pid_t)pid, 0) == -1 && errno == ESRCH)
			proc_dyno_kill(&p, SIGKILL, &refused);
		if (refused > 0)
			log_event(stdout, "heroku", "run", "Ignoring %d "
			    "process(es) in session %ld of run/dynos/%s: "
			    "not uid %lu, or older than the dyno; not "
			    "signalled", refused, pid, file,
			    (unsigned long)dynos_uid());
		if (kv_get(text, "log", logp, sizeof(logp)) == 0 &&
		    logpath_ours(name, logp))
			app_unlinkat(&app, app_rel(&app, logp));
		app_unlinkat(&app, srel);
		if (pid > 0)
			log_event(stdout, "heroku", name,
			    "Process died while no supervisor was running");
		return;
	}
	if ((why = leader_unproven((pid_t)pid)) != NULL) {
		log_event(stdout, "heroku", "run", "Ignoring run/dynos/%s: "
		    "process %ld %s; not adopted, not signalled", file, pid,
		    why);
		app_unlinkat(&app, srel);
		return;
	}
	if ((d = dyno_new(type, 1)) == NULL)
		return;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->pid = (pid_t)pid;
	d->pid_start = start;
	d->port = kv_get_long(text, "port", &port) == 0 ? (int)port : 0;
	d->restarts = kv_get_long(text, "restarts", &restarts) == 0 ?
	    (int)restarts : 0;
	if (kv_get(text, "release", rel, sizeof(rel)) == 0)
		snprintf(d->release, sizeof(d->release), "%s", rel);
	if (kv_get(text, "command", cmd, sizeof(cmd)) == 0)
		d->command = strdup(cmd);
	if (kv_get(text, "started", startedbuf, sizeof(startedbuf)) == 0)
		d->started = (time_t)strtoll(startedbuf, NULL, 10);
	d->retiring = retiring;
	d->adopted = 1;
	d->last_start = clock_ms();
	d->cycle_at = cycle_deadline();
	d->pidfd = pidfd_watch(d->pid);
	if (kv_get(text, "cgroup", cmd, sizeof(cmd)) == 0 &&
	    cgroup_ours(name, cmd))
		snprintf(d->cgroup, sizeof(d->cgroup), "%s", cmd);
	if (kv_get(text, "envsum", rel, sizeof(rel)) == 0)
		snprintf(d->envsum, sizeof(d->envsum), "%s", rel);
	if (kv_get(text, "log", logp, sizeof(logp)) == 0 &&
	    logpath_ours(name, logp)) {
		snprintf(d->logpath, sizeof(d->logpath), "%s", logp);
		d->logfd = open(logp, O_RDWR | O_NONBLOCK | O_CLOEXEC |
		    O_NOFOLLOW);
	}
	kv_get(text, "state", state, sizeof(state));
	log_event(stdout, "heroku", d->name, "Adopted process %ld (%s)", pid,
	    state);
	if (strcmp(state, "up") == 0) {
		d->state = ST_UP;
		/* only a crash history needs forgetting: no idle wakeup otherwise */
		d->reset_at = d->crashes ? clock_ms() + opt.backoff_reset_ms : 0;
	} else if (strcmp(state, "stopping") == 0) {
		d->state = ST_STARTING;
		dyno_stop(d, STOP_REMOVE);
		dyno_signal(d, SIGTERM);
	} else {
		d->state = ST_STARTING;
		d->deadline = clock_ms() + opt.boot_ms;
		d->probe_at = clock_ms();
	}
	d->since = clock_ms();
	d->dirty = 1;
}

static void
adopt_all(void)
{
	struct dirent *de;
	DIR *dir;

	if ((dir = app_opendir(&app, "run/dynos")) == NULL)
		return;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp.") ||
		    strncmp(de->d_name, "run.", 4) == 0)
			continue;
		adopt_one(de->d_name);
	}
	closedir(dir);
}

/* ---- reconcile -------------------------------------------------------- */

/* Records with no process that nobody wants any more. */
static void
sweep(void)
{
	size_t i = 0;

	while (i < ndynos) {
		struct dyno *d = dynos[i];
		if (d->pid <= 0 && (d->state == ST_DOWN || d->state == ST_CRASHED) &&
		    (d->stop_reason == STOP_REMOVE || shutting_down)) {
			dyno_free(d);
			continue;
		}
		i++;
	}
}

/* Make the records match formation x Procfile x release. */
static void
reconcile(void)
{
	size_t i, t;

	if (shutting_down)
		return;
	sweep();
	/* Stop what is no longer wanted, replace what runs old code. */
	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];
		const struct proctype *pt;
		const char *dot = strrchr(d->name, '.');
		long idx = dot ? atol(dot + 1) : 0;

		if (d->retiring || d->state == ST_STOPPING)
			continue;
		if (idx < 1 || idx > formation_want(d->type)) {
			dyno_stop(d, STOP_REMOVE);
			continue;
		}
		if (d->state == ST_DOWN)
			continue;
		pt = procfile_find(&procfile, d->type);
		if (strcmp(d->release, release) != 0 ||
		    (d->envsum[0] && strcmp(d->envsum, envsum) != 0) ||
		    (d->command && strcmp(d->command, pt->command) != 0))
			dyno_replace(d, d->state == ST_UP ?
			    "Restarting (new release)" : NULL);
	}
	/* Start what is missing. */
	for (t = 0; t < procfile.ntypes; t++) {
		long want = formation_want(procfile.types[t].name), k;

		for (k = 1; k <= want; k++) {
			char name[DYNO_NAME_MAX];
			struct dyno *d;

			snprintf(name, sizeof(name), "%s.%ld",
			    procfile.types[t].name, k);
			if (dyno_find(name, 0) != NULL)
				continue;
			if ((d = dyno_new(procfile.types[t].name, (int)k)) == NULL)
				break;
			if (dyno_spawn(d, 0) == -1) {
				d->next_start = clock_ms() + 1000;
				dyno_set_state(d, ST_CRASHED);
			}
		}
	}
}

static void
reload(void)
{
	char err[DYNO_ERR_MAX];
	struct formation f;
	int have;

	/* Check both files before taking either: all or nothing. */
	have = formation_load(&app, &f, err, sizeof(err)) == 0;
	if (!have && errno != ENOENT) {
		log_event(stdout, "heroku", "supervisor",
		    "reload failed, keeping the running dynos: %s", err);
		return;
	}
	if (release_load(err, sizeof(err)) == -1) {
		log_event(stdout, "heroku", "supervisor",
		    "reload failed, keeping the running dynos: %s", err);
		return;
	}
	if (!have)
		formation_default(&f, &procfile);
	formation = f;
	reconcile();
}

/* ---- control ---------------------------------------------------------- */

static void
restart_matching(const char *what)
{
	size_t i, n = ndynos;
	struct dyno *list[DYNOS_MAX];
	int found = 0;

	memcpy(list, dynos, n * sizeof(list[0]));
	for (i = 0; i < n; i++) {
		struct dyno *d = list[i];
		if (d->retiring)
			continue;
		if (strcmp(what, "all") != 0 && strcmp(what, d->name) != 0 &&
		    strcmp(what, d->type) != 0)
			continue;
		found = 1;
		if (d->state == ST_DOWN) {	/* held by "stop": start again */
			d->stop_reason = STOP_NONE;
			d->crashes = 0;
			d->next_start = clock_ms();
			dyno_set_state(d, ST_CRASHED);
			continue;
		}
		dyno_replace(d, "Restarting");
	}
	if (!found)
		log_event(stdout, "heroku", "supervisor",
		    "restart: no dyno matches \"%s\"", what);
}

static void
control_command(char *line, void *unused)
{
	const char *arg;
	struct dyno *d;

	(void)unused;
	switch (control_parse(line, &arg)) {
	case CONTROL_RELOAD:
		reload();
		break;
	case CONTROL_RESTART:
		restart_matching(arg ? arg : "all");
		break;
	case CONTROL_STOP:
		if ((d = dyno_find(arg, 0)) == NULL)
			log_event(stdout, "heroku", "supervisor",
			    "stop: no dyno \"%s\"", arg);
		else if (d->state != ST_STOPPING)	/* keep why it stops */
			dyno_stop(d, STOP_HOLD);
		break;
	default:
		log_event(stdout, "heroku", "supervisor",
		    "unknown control command \"%s\"", line);
	}
}

static void
control_read(void)
{
	char buf[4096];
	ssize_t n = read(control_fd, buf, sizeof(buf));

	if (n > 0)
		control_lines_feed(&control_in, buf, (size_t)n,
		    control_command, NULL);
}

/* ---- routes ----------------------------------------------------------- */

/*
 * The last line of run/routes (dyno(7)): whether web dynos are wanted,
 * starting or crashed and when the soonest restarts, so that the router
 * can hold a request for a dyno that is coming (H20 at its boot timeout)
 * and tell "crashed" (H10) from "none wanted" (H14).  In the routes file,
 * not another one, so each version the router reads is one consistent view.
 * The restart time is on CLOCK_MONOTONIC, like every file here host-local.
 */
static size_t
routes_status(char *buf, size_t size)
{
	struct web_status st = { 0, 0, 0, 0 };
	size_t i;
	int n;

	if (!shutting_down)
		st.want = formation_want("web");
	for (i = 0; i < ndynos && !shutting_down; i++) {
		struct dyno *d = dynos[i];
		/* R10 and R15 kills are crashes (STOP_CRASH) and restart. */
		if (strcmp(d->type, "web") != 0 || d->stop_reason == STOP_REMOVE ||
		    d->stop_reason == STOP_HOLD)
			continue;
		if (d->state == ST_STARTING)
			st.starting++;
		else if (d->state == ST_CRASHED) {
			int64_t at = d->next_start > 0 ? d->next_start : 1;
			if (st.crashed++ == 0 || at < st.restart)
				st.restart = at;
		}
	}
	n = web_status_format(buf, size - 1, &st);
	if (n < 0)
		return 0;
	buf[n] = '\n';
	buf[n + 1] = '\0';
	return (size_t)n + 1;
}

static void
routes_sync(void)
{
	char buf[sizeof(routes_last)], path[4096];
	size_t off = 0, i;
	pid_t rpid;

	buf[0] = '\0';
	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];
		if (d->state != ST_UP || d->port <= 0 || d->stop_reason != STOP_NONE)
			continue;
		off += (size_t)snprintf(buf + off, sizeof(buf) - off,
		    "%s 127.0.0.1:%d\n", d->name, d->port);
		if (off >= sizeof(buf) - 128)
			break;
	}
	off += routes_status(buf + off, sizeof(buf) - off);
	if (routes_written && strcmp(buf, routes_last) == 0)
		return;
	app_path(&app, path, sizeof(path), "run/routes");
	if (app_write(&app, "run/routes", buf, off, 0644, 0) == -1) {
		fprintf(stderr, "dyno-run: cannot write %s: %s\n", path,
		    strerror(errno));
		return;
	}
	memcpy(routes_last, buf, off + 1);
	routes_written = 1;
	/* Only a live router: a pid file left unlocked names a process that
	 * is gone, and its pid may be anyone's now. */
	if ((rpid = pidfile_holder(app.fd, "run/router.pid")) > 0)
		kill(rpid, SIGHUP);
}

/* ---- timers ----------------------------------------------------------- */

static void
memory_sample(void)
{
	struct proc_sample s[DYNOS_MAX];
	struct dyno *who[DYNOS_MAX];
	size_t i, n = 0;

	for (i = 0; i < ndynos; i++)
		if (dynos[i]->pid > 0 && (dynos[i]->state == ST_UP ||
		    dynos[i]->state == ST_STARTING)) {
			s[n].dyno = dyno_proc(dynos[i]);
			who[n++] = dynos[i];
		}
	if (n == 0)
		return;
	proc_sample_dynos(s, n, 1);
	for (i = 0; i < n; i++) {
		struct dyno *d = who[i];
		long kb = d->cgroup[0] ? cgroup_memory_kb(d) : -1;
		long mb, pct;

		/* The cgroup counts everything the dyno started; else PSS from /proc. */
		d->rss_kb = kb >= 0 ? kb : s[i].mem_kb;
		mb = d->rss_kb / 1024;
		pct = d->rss_kb * 1000 / opt.quota_kb;
		if (labs(d->rss_kb - d->rss_written) > 1024 + d->rss_written / 10)
			d->dirty = 1;
		if (d->rss_kb > 2 * opt.quota_kb) {
			log_event(stdout, "heroku", d->name,
			    "Process running mem=%ldM(%ld.%ld%%)", mb, pct / 10,
			    pct % 10);
			log_event(stdout, "heroku", d->name,
			    "Error R15 (Memory quota vastly exceeded)");
			log_event(stdout, "heroku", d->name,
			    "Stopping process with SIGKILL");
			d->stop_reason = STOP_CRASH;
			dyno_signal(d, SIGKILL);
		} else if (d->rss_kb > opt.quota_kb) {
			log_event(stdout, "heroku", d->name,
			    "Process running mem=%ldM(%ld.%ld%%)", mb, pct / 10,
			    pct % 10);
			log_event(stdout, "heroku", d->name,
			    "Error R14 (Memory quota exceeded)");
		}
	}
}

/*
 * Backoff protects the host from a crash loop, not the app from kills:
 * when no web dyno is up or starting, the crashed one due soonest that had
 * got up starts now, at most one such start a second (runit's throttle),
 * so the formation is never empty for longer than a boot.  A web dyno that
 * never got up (a broken app) waits out its backoff.
 */
static int64_t early_last = INT64_MIN / 2;

/* The crashed web dyno an early start would start now, or NULL. */
static struct dyno *
early_candidate(int64_t now)
{
	struct dyno *soonest = NULL;
	size_t i;

	if (shutting_down)
		return NULL;
	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];
		if (strcmp(d->type, "web") != 0)
			continue;
		if (d->state == ST_UP || d->state == ST_STARTING)
			return NULL;
		if (d->state == ST_CRASHED && d->was_up &&
		    d->stop_reason != STOP_REMOVE && d->stop_reason != STOP_HOLD &&
		    d->next_start > now && d->next_start > d->last_start + 1000 &&
		    (soonest == NULL || d->next_start < soonest->next_start))
			soonest = d;
	}
	return soonest;
}

static void
early_start(int64_t now)
{
	struct dyno *soonest;

	if (now - early_last < 1000 || (soonest = early_candidate(now)) == NULL)
		return;
	early_last = now;
	soonest->next_start = now > soonest->last_start + 1000 ? now :
	    soonest->last_start + 1000;
	soonest->dirty = 1;
	log_event(stdout, "heroku", soonest->name,
	    "Starting early: no web dyno is up or starting");
}

static void
timers_run(int64_t now)
{
	size_t i;

	early_start(now);

	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];

		switch (d->state) {
		case ST_STARTING:
			dyno_boot_step(d, now);
			break;
		case ST_UP:
			if (d->reset_at && now >= d->reset_at) {
				d->crashes = 0;
				d->reset_at = 0;
			}
			if (d->cycle_at && now >= d->cycle_at && !d->retiring) {
				d->cycle_at = 0;
				dyno_replace(d, "Cycling");
			}
			break;
		case ST_STOPPING:
			if (d->leader_gone && now >= d->probe_at) {
				if (session_empty(d)) {
					dyno_finish(d);
					return;	/* records moved; the loop comes back */
				}
				d->probe_at = now + PROBE_MS;
			}
			if (d->deadline && now >= d->deadline) {
				log_event(stdout, "heroku", d->name,
				    "Error R12 (Exit timeout) -> At least one "
				    "process failed to exit within %lld seconds of "
				    "SIGTERM", (long long)(opt.grace_ms / 1000));
				log_event(stdout, "heroku", d->name,
				    "Stopping remaining processes with SIGKILL");
				dyno_signal(d, SIGKILL);
				d->deadline = 0;
			}
			break;
		case ST_CRASHED:
			if (now >= d->next_start && !shutting_down) {
				d->restarts++;
				if (dyno_spawn(d, 0) == -1) {
					d->next_start = now + 1000;
					d->dirty = 1;
				}
			}
			break;
		case ST_DOWN:
			break;
		}
	}
	if (now >= mem_next) {
		memory_sample();
		mem_next = now + opt.mem_interval_ms;
	}
}

static int64_t
timers_next(int64_t now)
{
	int64_t next = mem_next;
	size_t i;

	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];
		int64_t t[5] = { 0, 0, 0, 0, 0 };
		int k;

		if (d->state == ST_STARTING && d->stop_reason == STOP_NONE) {
			t[0] = d->ready_fd >= 0 || d->ready_pid > 0 ?
			    d->ready_end : d->probe_at;
			t[1] = d->deadline;
		} else if (d->state == ST_STOPPING) {
			t[1] = d->deadline;
			if (d->leader_gone)
				t[0] = d->probe_at;
		}
		else if (d->state == ST_CRASHED)
			t[2] = d->next_start;
		else if (d->state == ST_UP) {
			t[3] = d->cycle_at;
			t[4] = d->reset_at;
		}
		for (k = 0; k < 5; k++)
			if (t[k] > 0 && t[k] < next)
				next = t[k];
		if (d->adopted && d->pidfd < 0 && d->pid > 0 &&
		    now + ADOPT_POLL_MS < next)
			next = now + ADOPT_POLL_MS;
	}
	if (early_last + 1000 < next && early_candidate(now) != NULL)
		next = early_last + 1000 > now ? early_last + 1000 : now;
	return next;
}

/* ---- children and signals --------------------------------------------- */

static void
reap(void)
{
	int status;
	pid_t pid;
	size_t i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (i = 0; i < ndynos; i++) {
			if (dynos[i]->ready_pid == pid) {
				ready_command_done(dynos[i], status);
				break;
			}
			if (dynos[i]->pid == pid && !dynos[i]->adopted &&
			    !dynos[i]->leader_gone) {
				dyno_exited(dynos[i], status);
				break;
			}
		}
	}
}

static void
adopted_check(void)
{
	size_t i;

	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];
		if (d->adopted && d->pid > 0 && d->pidfd < 0 && !d->leader_gone &&
		    !proc_alive(d->pid, d->pid_start)) {
			dyno_exited(d, -1);
			return;		/* the array moved; the next pass sees the rest */
		}
	}
}

/* Send the SIGTERMs that dyno_stop decided on, after routes were written. */
static void
stops_deliver(void)
{
	size_t i;

	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];
		if (d->term_pending && d->state == ST_STOPPING) {
			dyno_signal(d, SIGTERM);
			/* A stopped (hung, SIGSTOPped) dyno must wake to act on
			 * TERM and finish what it holds, as systemd does. */
			dyno_signal(d, SIGCONT);
		}
		d->term_pending = 0;
	}
}

/* A retiring dyno is stopped once its replacement is up. */
static void
retire_check(void)
{
	size_t i;

	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i], *n;
		if (!d->retiring || d->state == ST_STOPPING ||
		    d->state == ST_DOWN)
			continue;
		n = dyno_find(d->name, 0);
		if (n == NULL || n->state == ST_UP || shutting_down)
			dyno_stop(d, STOP_REMOVE);
	}
}

static void
sessions_sweep(void)
{
	size_t i;

	for (i = 0; i < nsweep; i++)
		proc_dyno_kill(&sweeps[i], SIGKILL, NULL);
	nsweep = 0;
}

static void
states_flush(void)
{
	size_t i;

	for (i = 0; i < ndynos; i++)
		if (dynos[i]->dirty)
			dyno_write(dynos[i]);
}

static void
ready_check(void)
{
	size_t i;

	if (ready_sent || !initial_started)
		return;
	for (i = 0; i < ndynos; i++)
		if (dynos[i]->state != ST_UP && !dynos[i]->retiring)
			return;
	ready_sent = 1;
	notify_send("READY=1\nSTATUS=formation up");
}

static void
shutdown_begin(void)
{
	size_t i;

	shutting_down = 1;
	notify_send("STOPPING=1");
	for (i = 0; i < ndynos; i++) {
		struct dyno *d = dynos[i];
		if (d->state == ST_CRASHED || d->state == ST_DOWN)
			d->state = ST_DOWN;
		else
			dyno_stop(d, STOP_REMOVE);
	}
}

static void
kill_all_now(void)
{
	size_t i;

	for (i = 0; i < ndynos; i++)
		if (dynos[i]->pid > 0)
			dyno_signal(dynos[i], SIGKILL);
}

/* ---- main loop -------------------------------------------------------- */

static int
supervise(int sigfd)
{
	struct pollfd pfd[2 + 3 * DYNOS_MAX];
	struct dyno *owner[2 + 3 * DYNOS_MAX];
	int sigints = 0;

	for (;;) {
		int64_t now, next;
		size_t n = 0, i;
		int sig, timeout, rc;

		timers_run(clock_ms());
		sessions_sweep();
		retire_check();
		/* Order matters: routes first, then SIGTERM, then state files. */
		routes_sync();
		stops_deliver();
		states_flush();
		ready_check();
		fflush(stdout);

		if (shutting_down) {
			int live = 0;
			for (i = 0; i < ndynos; i++)
				if (dynos[i]->pid > 0 && dynos[i]->state != ST_DOWN &&
				    dynos[i]->state != ST_CRASHED)
					live = 1;
			if (!live)
				return 0;
		}

		pfd[n].fd = sigfd;
		pfd[n].events = POLLIN;
		owner[n++] = NULL;
		pfd[n].fd = control_fd;
		pfd[n].events = POLLIN;
		owner[n++] = NULL;
		for (i = 0; i < ndynos; i++) {
			if (dynos[i]->logfd >= 0) {
				pfd[n].fd = dynos[i]->logfd;
				pfd[n].events = POLLIN;
				owner[n++] = dynos[i];
			}
			if (dynos[i]->pidfd >= 0) {
				pfd[n].fd = dynos[i]->pidfd;
				pfd[n].events = POLLIN;
				owner[n++] = dynos[i];
			}
			if (dynos[i]->ready_fd >= 0) {
				pfd[n].fd = dynos[i]->ready_fd;
				pfd[n].events = ready_events(dynos[i]);
				owner[n++] = dynos[i];
			}
		}
		now = clock_ms();
		next = timers_next(now);
		timeout = next <= now ? 0 : (next - now > INT_MAX ? INT_MAX :
		    (int)(next - now));
		rc = poll(pfd, n, timeout);
		if (rc == -1 && errno != EINTR) {
			fprintf(stderr, "dyno-run: poll: %s\n", strerror(errno));
			return 1;
		}
		/* Dyno fds first: the records they point at may be freed below. */
		for (i = 2; rc > 0 && i < n; i++) {
			struct dyno *d = owner[i];
			if (pfd[i].revents == 0)
				continue;
			if (pfd[i].fd == d->logfd)
				dyno_read_output(d, 0);
			else if (pfd[i].fd == d->pidfd) {
				dyno_exited(d, -1);
				break;	/* records moved; poll again */
			} else if (pfd[i].fd == d->ready_fd)
				ready_http_io(d);
		}
		if (rc > 0 && (pfd[1].revents & POLLIN))
			control_read();
		while (selfpipe_read(&sig)) {
			if (sig == SIGCHLD)
				reap();
			else if (sig == SIGHUP)
				reload();
			else if (sig == SIGINT && ++sigints >= 2) {
				log_event(stdout, "heroku", "supervisor",
				    "Second interrupt: killing every dyno now");
				kill_all_now();
				return 1;
			} else if ((sig == SIGTERM || sig == SIGINT) &&
			    !shutting_down)
				shutdown_begin();
		}
		adopted_check();
	}
}

/* ---- one-off dynos ---------------------------------------------------- */

static volatile sig_atomic_t oneoff_pid;

static void
oneoff_forward(int sig)
{
	if (oneoff_pid > 0)
		kill(oneoff_pid, sig);
}

static int
one_off(int argc, char **argv)
{
	char err[DYNO_ERR_MAX], path[4096], buf[1024], cmd[65536];
	struct spawn_opts so;
	struct sigaction sa;
	struct env env;
	size_t off = 0;
	int i, fd = -1, status, n;
	pid_t pid;

	for (i = 0; i < argc; i++) {
		n = snprintf(cmd + off, sizeof(cmd) - off, "%s%s", i ? " " : "",
		    argv[i]);
		if (n < 0 || (size_t)n >= sizeof(cmd) - off) {
			fprintf(stderr, "dyno-run: command too long\n");
			return 2;
		}
		off += (size_t)n;
	}
	if (app_prepare(&app) == -1) {
		fprintf(stderr, "dyno-run: %s\n", app.why);
		return 1;
	}
	if (release_load(err, sizeof(err)) == -1) {
		fprintf(stderr, "dyno-run: %s\n", err);
		return 1;
	}
	/* run.N: the first free N, claimed with O_EXCL so two never collide. */
	for (i = 1; i < 100000; i++) {
		app_path(&app, path, sizeof(path), "run/dynos/run.%d", i);
		fd = app_openat(&app, app_rel(&app, path), O_WRONLY | O_CREAT |
		    O_EXCL, 0644);
		if (fd >= 0) {
			(void)fchmod(fd, 0644);
			break;
		}
		if (errno != EEXIST)
			break;
	}
	if (fd == -1) {
		fprintf(stderr, "dyno-run: cannot create %s: %s\n", path,
		    strerror(errno));
		return 1;
	}
	snprintf(buf, sizeof(buf), "run.%d", i);
	env_copy(&env, &base_env);
	env_set(&env, "DYNO", buf);
	memset(&so, 0, sizeof(so));
	so.command = cmd;
	so.envp = env.vars;
	so.dir = code_dir;
	so.in_fd = 0;
	so.out_fd = 1;
	so.err_fd = 2;
	so.new_session = 0;	/* stays on the terminal, in its foreground */
	so.user = opt.user;
	so.uid = opt.uid;
	so.gid = opt.gid;
	so.nofile = opt.nofile;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGINT, &sa, NULL);	/* the terminal sends these to both */
	sigaction(SIGQUIT, &sa, NULL);
	sa.sa_handler = oneoff_forward;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	pid = spawn_process(&so);
	env_free(&env);
	if (pid == -1) {
		fprintf(stderr, "dyno-run: cannot fork: %s\n", strerror(errno));
		close(fd);
		app_unlinkat(&app, app_rel(&app, path));
		return 1;
	}
	oneoff_pid = pid;
	{
		unsigned long long st = 0;
		proc_starttime(pid, &st);
		n = snprintf(buf, sizeof(buf),
		    "name=run.%d\ntype=run\nstate=up\npid=%ld\npid_start=%llu\n"
		    "port=0\nrelease=%s\nstarted=%lld\nrestarts=0\nrss=0\n"
		    "command=%s\n", i, (long)pid, st, release,
		    (long long)time(NULL), cmd);
		if (n > 0)
			(void)!write(fd, buf, (size_t)(n < (int)sizeof(buf) ? n :
			    (int)sizeof(buf) - 1));
		close(fd);
	}
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	app_unlinkat(&app, app_rel(&app, path));
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

/* ---- startup ---------------------------------------------------------- */

static void
duration_opt(const char *name, const char *arg, int64_t *out)
{
	if (parse_duration_ms(arg, out) == -1) {
		fprintf(stderr, "dyno-run: --%s: invalid duration \"%s\"\n", name,
		    arg);
		usage(stderr);
		exit(2);
	}
}

static int
control_open(void)
{
	struct stat st;

	if (app_lstat(&app, "run/control", &st) == 0 && !S_ISFIFO(st.st_mode))
		app_unlinkat(&app, "run/control");
	if (app_mkfifoat(&app, "run/control", 0600) == -1 && errno != EEXIST)
		return -1;
	/* O_RDWR: we hold a writer too, so the FIFO never reads EOF. */
	control_fd = app_openat(&app, "run/control", O_RDWR | O_NONBLOCK, 0);
	if (control_fd >= 0)
		(void)fchmod(control_fd, 0600);
	return control_fd;
}

static int
apply_formation_args(int argc, char **argv)
{
	char err[DYNO_ERR_MAX], path[4096];
	struct formation f;
	int i;

	if (argc == 0)
		return 0;
	app_path(&app, path, sizeof(path), "formation");
	if (formation_load(&app, &f, err, sizeof(err)) == -1) {
		if (errno != ENOENT) {
			fprintf(stderr, "dyno-run: %s\n", err);
			return -1;
		}
		formation_default(&f, &procfile);
	}
	for (i = 0; i < argc; i++)
		if (formation_apply_arg(&f, argv[i], &procfile, opt.max_per_type,
		    err, sizeof(err)) == -1) {
			fprintf(stderr, "dyno-run: %s\n", err);
			return -1;
		}
	if (formation_save(&app, &f) == -1) {
		fprintf(stderr, "dyno-run: cannot write %s: %s\n", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "app", required_argument, NULL, 'a' },
		{ "backoff-cap", required_argument, NULL, 'B' },
		{ "backoff-reset", required_argument, NULL, 'R' },
		{ "boot-timeout", required_argument, NULL, 'T' },
		{ "cgroup", required_argument, NULL, 'c' },
		{ "cycle", required_argument, NULL, 'C' },
		{ "cycle-jitter", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ "max", required_argument, NULL, 'X' },
		{ "memory", required_argument, NULL, 'm' },
		{ "memory-interval", required_argument, NULL, 'I' },
		{ "no-cycle", no_argument, NULL, 'N' },
		{ "nofile", required_argument, NULL, 'F' },
		{ "one-off", no_argument, NULL, 'O' },
		{ "port-base", required_argument, NULL, 'p' },
		{ "ready", required_argument, NULL, 'Y' },
		{ "release", required_argument, NULL, 'r' },
		{ "stop-grace", required_argument, NULL, 'G' },
		{ "trust-app-dir", no_argument, NULL, 'W' },
		{ "user", required_argument, NULL, 'u' },
		{ NULL, 0, NULL, 0 }
	};
	static const int sigs[] = { SIGCHLD, SIGHUP, SIGINT, SIGTERM };
	const char *appdir = NULL;
	char err[DYNO_ERR_MAX], path[4096];
	int ch, oneoff = 0, sigfd, lockfd, rc, trust_dir = 0, refused;
	pid_t holder;
	long v;

	while ((ch = getopt_long(argc, argv, "+a:hm:p:u:", longopts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			appdir = optarg;
			break;
		case 'B':
			duration_opt("backoff-cap", optarg, &opt.backoff_cap_ms);
			break;
		case 'c':
			opt.cgroup = optarg;
			break;
		case 'C':
			duration_opt("cycle", optarg, &opt.cycle_ms);
			break;
		case 'F':
			if (parse_long(optarg, 1, 1L << 30, &opt.nofile) == -1) {
				fprintf(stderr, "dyno-run: --nofile: invalid \"%s\"\n",
				    optarg);
				return 2;
			}
			break;
		case 'G':
			duration_opt("stop-grace", optarg, &opt.grace_ms);
			break;
		case 'h':
			help();
			return 0;
		case 'I':
			duration_opt("memory-interval", optarg,
			    &opt.mem_interval_ms);
			if (opt.mem_interval_ms < 10)
				opt.mem_interval_ms = 10;
			break;
		case 'J':
			duration_opt("cycle-jitter", optarg, &opt.cycle_jitter_ms);
			break;
		case 'm':
			if (parse_size_kb(optarg, &opt.quota_kb) == -1 ||
			    opt.quota_kb <= 0) {
				fprintf(stderr, "dyno-run: --memory: invalid size "
				    "\"%s\"\n", optarg);
				return 2;
			}
			break;
		case 'N':
			opt.cycle_ms = 0;
			break;
		case 'O':
			oneoff = 1;
			break;
		case 'p':
			if (parse_long(optarg, 1, 65535, &v) == -1) {
				fprintf(stderr, "dyno-run: --port-base: invalid port "
				    "\"%s\"\n", optarg);
				return 2;
			}
			opt.port_base = (int)v;
			break;
		case 'R':
			duration_opt("backoff-reset", optarg, &opt.backoff_reset_ms);
			break;
		case 'r':
			opt.release_dir = optarg;
			break;
		case 'T':
			duration_opt("boot-timeout", optarg, &opt.boot_ms);
			break;
		case 'u':
			opt.user = optarg;
			break;
		case 'W':
			trust_dir = 1;
			break;
		case 'Y':
			if (ready_parse(optarg, err, sizeof(err)) == -1) {
				fprintf(stderr, "dyno-run: %s\n", err);
				usage(stderr);
				return 2;
			}
			break;
		case 'X':
			if (parse_long(optarg, 0, 10000, &opt.max_per_type) == -1) {
				fprintf(stderr, "dyno-run: --max: invalid \"%s\"\n",
				    optarg);
				return 2;
			}
			break;
		default:
			usage(stderr);
			return 2;
		}
		if (oneoff)
			break;
	}
	argc -= optind;
	argv += optind;
	if (opt.release_dir != NULL && !oneoff) {
		fprintf(stderr, "dyno-run: --release goes with --one-off\n");
		usage(stderr);
		return 2;
	}
	if (oneoff && argc == 0) {
		fprintf(stderr, "dyno-run: --one-off needs a command\n");
		usage(stderr);
		return 2;
	}
	if (opt.user != NULL) {
		struct passwd *pw = getpwnam(opt.user);
		if (pw == NULL) {
			fprintf(stderr, "dyno-run: no such user \"%s\"\n", opt.user);
			return 2;
		}
		if (geteuid() != 0) {
			fprintf(stderr, "dyno-run: -u needs root\n");
			return 2;
		}
		opt.uid = pw->pw_uid;
		opt.gid = pw->pw_gid;
	}
	/* A .dyno not ours (EPERM): with -u, say first who could write it. */
	if ((refused = app_init(&app, appdir)) == -1 && errno != EPERM) {
		fprintf(stderr, "dyno-run: %s\n", app.why);
		return 1;
	}
	/* Root, dynos as another user: that user must not be able to
	 * replace .dyno, whose files root reads, signals and unlinks by. */
	if (opt.user != NULL && !trust_dir &&
	    app_safe_for(&app, opt.user, opt.uid, opt.gid, path,
	    sizeof(path)) == -1) {
		fprintf(stderr, "dyno-run: %s can be written by %s, who could "
		    "replace .dyno under root: make it root's (and not "
		    "group- or world-writable), or pass --trust-app-dir\n",
		    path, opt.user);
		return 1;
	}
	if (refused == -1) {
		fprintf(stderr, "dyno-run: %s\n", app.why);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	if (oneoff)
		return one_off(argc, argv);

	if (app_prepare(&app) == -1) {
		fprintf(stderr, "dyno-run: %s\n", app.why);
		return 1;
	}
	app_path(&app, path, sizeof(path), "run/lock");
	if ((lockfd = lock_take(app.fd, "run/lock", &holder)) == -1) {
		if (errno == EWOULDBLOCK && argc > 0 && holder > 0) {
			/*
			 * TYPE=COUNT while a supervisor runs: what dyno-scale
			 * does, write the formation and tell the supervisor.
			 */
			if (release_load(err, sizeof(err)) == -1) {
				fprintf(stderr, "dyno-run: %s\n", err);
				return 1;
			}
			if (apply_formation_args(argc, argv) == -1)
				return 1;
			/* The pid is the lock's holder only if it has run/lock
			 * open: a lock alone proves only that someone holds it. */
			if ((holder = app_supervisor_pid(&app)) == 0)
				errno = ESRCH;
			if (holder == 0 || kill(holder, SIGHUP) == -1) {
				fprintf(stderr, "dyno-run: formation saved, but the "
				    "supervisor (pid %ld) cannot be told: %s\n",
				    (long)holder, strerror(errno));
				return 1;
			}
			return 0;
		}
		if (errno == EWOULDBLOCK)
			fprintf(stderr, "dyno-run: another supervisor (pid %ld) "
			    "runs %s\n", (long)holder, app.dir);
		else
			fprintf(stderr, "dyno-run: cannot lock %s: %s\n", path,
			    errno == ELOOP || errno == EINVAL ? "not a regular "
			    "file (a symlink is never followed)" : strerror(errno));
		return 1;
	}
	(void)lockfd;	/* held until we exit; the kernel drops it then */
	if (release_load(err, sizeof(err)) == -1) {
		fprintf(stderr, "dyno-run: %s\n", err);
		return 1;
	}
	if (apply_formation_args(argc, argv) == -1)
		return 1;
	if (formation_read(err, sizeof(err)) == -1) {
		fprintf(stderr, "dyno-run: %s\n", err);
		return 1;
	}
	if (control_open() == -1) {
		fprintf(stderr, "dyno-run: cannot open the control FIFO: %s\n",
		    strerror(errno));
		return 1;
	}
	if ((sigfd = selfpipe_open(sigs, sizeof(sigs) / sizeof(sigs[0]))) == -1) {
		fprintf(stderr, "dyno-run: signals: %s\n", strerror(errno));
		return 1;
	}
	srandom((unsigned)(time(NULL) ^ getpid()));
	proc_become_subreaper();
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	mem_next = clock_ms() + opt.mem_interval_ms;
	adopt_all();
	reconcile();
	initial_started = 1;
	rc = supervise(sigfd);
	while (ndynos > 0)
		dyno_free(dynos[0]);
	routes_written = 0;
	routes_sync();
	fflush(stdout);
	return rc;
}
