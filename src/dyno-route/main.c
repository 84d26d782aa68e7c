/*
 * dyno-route: the HTTP router in front of the web dynos.  One
 * single-threaded event loop (lib/poller.c) per worker process moves bytes
 * between clients and dynos through small per-connection buffers, so bodies
 * stream both ways in flat memory.  Each request goes to the less loaded of
 * two random dynos; a refused connect is retried elsewhere and the dyno is
 * quarantined.  Heads are parsed strictly (lib/http.c) and rebuilt, so what
 * the dyno sees is exactly what we understood.  See dyno-route(1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "route.h"

struct router rt = {
	.opt = {
		5000, 30000, 55000, 10000, 90000,
		5000, 30000, 75000, 1000,
		50, 1000, 3, 1,
		"http", NULL, "8080",
		1 << 20, 10000,
	},
	.worker = { .listen_fd = -1 },
	.due = { .next_sweep = INT64_MAX },
};

static const char *fixed_backends;
static char logbuf[1 << 16];	/* stdout's buffer */

static void
usage(FILE *fp)
{
	fprintf(fp, "usage: dyno-route [-a APP | -b HOST:PORT,...] [-l [ADDR:]PORT] "
	    "[-u USER] [-w N] [options]\n");
}

static void
help(void)
{
	usage(stdout);
	printf(
"\nRoute HTTP to the least loaded of the app's web dynos.\n\n"
"  -a, --app DIR              route to APP/.dyno/run/routes (default $DYNO_APP)\n"
"  -b, --backends LIST        fixed HOST:PORT,... instead of an app\n"
"  -l, --listen [ADDR:]PORT   where to listen (default 0.0.0.0:8080)\n"
"  -u, --user USER            drop to USER after binding (when root)\n"
"  -w, --workers N            worker processes sharing the socket (1)\n"
"      --max-inflight N       requests in flight per dyno (50)\n"
"      --max-tunnels N        open upgraded connections per worker (10000)\n"
"      --body-buffer SIZE     read a request body up to SIZE before it takes\n"
"                             a dyno slot; bytes, K or M (1M); 0: stream\n"
"      --queue N              requests waiting for a dyno before H11 (1000)\n"
"      --boot-timeout DUR     wait this long for a booting dyno, H20 (75s)\n"
"      --retries N            connect attempts on different dynos (3)\n"
"      --quarantine DUR       rest a refusing dyno this long (5s)\n"
"      --connect-timeout DUR  (5s)\n"
"      --service-timeout DUR  to the first response byte, H12 (30s)\n"
"      --stall-timeout DUR    no byte from a dyno holding requests: stuck (1s)\n"
"      --idle-timeout DUR     no bytes either way, H15 (55s)\n"
"      --header-timeout DUR   a whole request head, 408 (10s)\n"
"      --keepalive-timeout DUR  idle client connection (90s)\n"
"      --drain-timeout DUR    on SIGTERM, finish requests in flight (30s)\n"
"      --proto PROTO          X-Forwarded-Proto value (http)\n"
"  -h, --help                 this help\n\n"
"Durations take ms, s, m or h (default s).  SIGHUP rereads the routes;\n"
"SIGTERM stops accepting and finishes what is in flight.\n");
}

static int
listen_on(const char *spec)
{
	char host[128] = "0.0.0.0", port[16];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints, *res;
	int fd, one = 1;
	long p;

	if (colon != NULL) {
		size_t hl = (size_t)(colon - spec);
		if (hl == 0 || hl >= sizeof(host))
			return -1;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		if (host[0] == '[' && host[hl - 1] == ']') {
			memmove(host, host + 1, hl - 2);
			host[hl - 2] = '\0';
		}
		spec = colon + 1;
	}
	if (parse_long(spec, 1, 65535, &p) == -1)
		return -1;
	snprintf(port, sizeof(port), "%ld", p);
	snprintf(rt.opt.listen_port, sizeof(rt.opt.listen_port), "%ld", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -1;
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		freeaddrinfo(res);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* A second router may bind the address while this one drains: an
	 * upgrade in place, as haproxy -sf and nginx's binary upgrade. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 4096) == -1) {
		int saved = errno;
		close(fd);
		freeaddrinfo(res);
		errno = saved;
		return -1;
	}
	freeaddrinfo(res);
	return fd;
}

/*
 * A listening socket handed over by systemd (a .socket unit) or another
 * activator: sd_listen_fds(3) without libsystemd.  The socket then outlives
 * us, so a restart refuses no connection: they wait in its queue.  Returns
 * the fd, or -1 with errno ENOENT when none was passed to this process,
 * another errno when what was passed is not one listening TCP socket.
 */
static int
listen_inherited(void)
{
	const char *pidtext = getenv("LISTEN_PID"), *fdstext = getenv("LISTEN_FDS");
	long pid, n;
	int fd = 3, v, type = 0, proto = 0, listening = 0;
	socklen_t len = sizeof(v);
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);

	if (pidtext == NULL || fdstext == NULL ||
	    parse_long(pidtext, 1, INT_MAX, &pid) == -1 || pid != (long)getpid()) {
		errno = ENOENT;
		return -1;
	}
	/* Not for our children, should we ever have any. */
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (parse_long(fdstext, 1, 1, &n) == -1) {
		errno = EINVAL;	/* one address: one socket */
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == -1 ||
	    (len = sizeof(v), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type,
	    &len)) == -1 || (len = sizeof(v), getsockopt(fd, SOL_SOCKET,
	    SO_PROTOCOL, &proto, &len)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1)
		return -1;	/* EBADF or ENOTSOCK */
	if (!listening || type != SOCK_STREAM || proto != IPPROTO_TCP ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		errno = EINVAL;
		return -1;
	}
	snprintf(rt.opt.listen_port, sizeof(rt.opt.listen_port), "%u",
	    (unsigned)ntohs(ss.ss_family == AF_INET ?
	    ((struct sockaddr_in *)&ss)->sin_port :
	    ((struct sockaddr_in6 *)&ss)->sin6_port));
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 ||
	    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		return -1;
	return fd;
}

static void
duration_opt(const char *name, const char *arg, int64_t *out)
{
	if (parse_duration_ms(arg, out) == -1 || *out <= 0) {
		fprintf(stderr, "dyno-route: --%s: invalid duration \"%s\"\n",
		    name, arg);
		usage(stderr);
		exit(2);
	}
}

static int
count_opt(const char *name, const char *arg, long min, long max)
{
	long v;

	if (parse_long(arg, min, max, &v) == -1) {
		fprintf(stderr, "dyno-route: --%s: expected a number from %ld to "
		    "%ld, not \"%s\"\n", name, min, max, arg);
		usage(stderr);
		exit(2);
	}
	return (int)v;
}

/* A size in bytes: N with K or M (binary); a bare N is bytes, 0 allowed. */
static size_t
size_opt(const char *name, const char *arg)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(arg, &end, 10);
	if (end != arg && arg[0] >= '0' && arg[0] <= '9' && errno == 0) {
		if ((*end == 'K' || *end == 'k') && end[1] == '\0' &&
		    v <= (1ULL << 20))
			return (size_t)(v << 10);
		if ((*end == 'M' || *end == 'm') && end[1] == '\0' && v <= 1024)
			return (size_t)(v << 20);
		if (*end == '\0' && v <= (1ULL << 30))
			return (size_t)v;
	}
	fprintf(stderr, "dyno-route: --%s: expected a size up to 1G (bytes, "
	    "K or M), not \"%s\"\n", name, arg);
	usage(stderr);
	exit(2);
}

static int
drop_privileges(const char *user)
{
	struct passwd *pw = getpwnam(user);

	if (pw == NULL) {
		fprintf(stderr, "dyno-route: no such user \"%s\"\n", user);
		return -1;
	}
	if (initgroups(user, pw->pw_gid) == -1 || setgid(pw->pw_gid) == -1 ||
	    setuid(pw->pw_uid) == -1) {
		fprintf(stderr, "dyno-route: cannot become %s: %s\n", user,
		    strerror(errno));
		return -1;
	}
	return 0;
}

/* The parent of -w N workers: restart one that dies, pass signals on. */
static int
workers_run(int sigfd, pid_t *pids, int n)
{
	int stopping = 0, live = n;

	for (;;) {
		struct pollfd pfd = { sigfd, POLLIN, 0 };
		int sig, status, i;
		pid_t pid;

		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			return 1;
		while (selfpipe_read(&sig)) {
			if (sig == SIGHUP || ((sig == SIGTERM || sig == SIGINT) &&
			    !stopping)) {
				if (sig != SIGHUP && !stopping && rt.worker.listen_fd >= 0) {
					/* Ours would keep the socket, and the
					 * connections queued on it, alive after
					 * the workers took the last ones. */
					close(rt.worker.listen_fd);
					rt.worker.listen_fd = -1;
				}
				if (sig != SIGHUP)
					stopping = 1;
				for (i = 0; i < n; i++)
					if (pids[i] > 0)
						kill(pids[i], sig == SIGINT ?
						    SIGTERM : sig);
			}
			if (sig != SIGCHLD)
				continue;
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
				for (i = 0; i < n; i++) {
					if (pids[i] != pid)
						continue;
					pids[i] = 0;
					live--;
					if (stopping)
						break;
					log_event(stdout, "heroku", "router",
					    "at=error desc=\"worker %d exited, "
					    "restarting\"", i + 1);
					fflush(stdout);
					pid = fork();
					if (pid == 0) {
						rt.worker.index = i + 1;
						rand_seed();
						return -1;	/* the child runs the loop */
					}
					if (pid > 0) {
						pids[i] = pid;
						live++;
					}
				}
		}
		if (stopping && live == 0)
			return 0;
	}
}



/*
 * The command line as a table: each option, the field it sets and how its
 * argument is read.  --help and a usage error exit here.
 */
enum opt_kind { OPT_HELP, OPT_STRING, OPT_DURATION, OPT_COUNT, OPT_SIZE };
static const char *appdir, *listen_spec;
static const struct opt_spec {
	const char *name;
	int val;		/* getopt's: the short option or a code */
	enum opt_kind kind;
	void *to;
	long min, max;		/* OPT_COUNT */
} specs[] = {
	{ "app", 'a', OPT_STRING, &appdir, 0, 0 },
	{ "backends", 'b', OPT_STRING, &fixed_backends, 0, 0 },
	{ "boot-timeout", 'B', OPT_DURATION, &rt.opt.boot_ms, 0, 0 },
	{ "connect-timeout", 'C', OPT_DURATION, &rt.opt.connect_ms, 0, 0 },
	{ "drain-timeout", 'D', OPT_DURATION, &rt.opt.drain_ms, 0, 0 },
	{ "header-timeout", 'H', OPT_DURATION, &rt.opt.header_ms, 0, 0 },
	{ "help", 'h', OPT_HELP, NULL, 0, 0 },
	{ "idle-timeout", 'I', OPT_DURATION, &rt.opt.idle_ms, 0, 0 },
	{ "keepalive-timeout", 'K', OPT_DURATION, &rt.opt.keepalive_ms, 0, 0 },
	{ "listen", 'l', OPT_STRING, &listen_spec, 0, 0 },
	{ "body-buffer", 'E', OPT_SIZE, &rt.opt.body_buffer, 0, 0 },
	{ "max-inflight", 'M', OPT_COUNT, &rt.opt.max_inflight, 1, 100000 },
	{ "max-tunnels", 'N', OPT_COUNT, &rt.opt.max_tunnels, 1, 1000000 },
	{ "proto", 'P', OPT_STRING, &rt.opt.proto, 0, 0 },
	{ "quarantine", 'Q', OPT_DURATION, &rt.opt.quarantine_ms, 0, 0 },
	{ "queue", 'q', OPT_COUNT, &rt.opt.queue_max, 0, 1000000 },
	{ "retries", 'R', OPT_COUNT, &rt.opt.retries, 1, 8 },
	{ "service-timeout", 'S', OPT_DURATION, &rt.opt.service_ms, 0, 0 },
	{ "stall-timeout", 'T', OPT_DURATION, &rt.opt.stall_ms, 0, 0 },
	{ "user", 'u', OPT_STRING, &rt.opt.user, 0, 0 },
	{ "workers", 'w', OPT_COUNT, &rt.opt.workers, 1, 64 },
};
#define NSPECS (sizeof(specs) / sizeof(specs[0]))

static void
options_parse(int argc, char **argv)
{
	struct option longopts[NSPECS + 1];
	const struct opt_spec *o;
	size_t i;
	int ch;

	memset(longopts, 0, sizeof(longopts));
	for (i = 0; i < NSPECS; i++) {
		longopts[i].name = specs[i].name;
		longopts[i].has_arg = specs[i].kind == OPT_HELP ? no_argument :
		    required_argument;
		longopts[i].val = specs[i].val;
	}
	while ((ch = getopt_long(argc, argv, "a:b:hl:u:w:", longopts, NULL)) != -1) {
		for (i = 0; i < NSPECS && specs[i].val != ch; i++)
			;
		if (i == NSPECS) {
			usage(stderr);
			exit(2);
		}
		o = &specs[i];
		switch (o->kind) {
		case OPT_HELP:
			help();
			exit(0);
		case OPT_STRING:
			*(const char **)o->to = optarg;
			break;
		case OPT_DURATION:
			duration_opt(o->name, optarg, o->to);
			break;
		case OPT_COUNT:
			*(int *)o->to = count_opt(o->name, optarg, o->min, o->max);
			break;
		case OPT_SIZE:
			*(size_t *)o->to = size_opt(o->name, optarg);
			break;
		}
	}
	if (optind != argc || (fixed_backends != NULL && appdir != NULL)) {
		usage(stderr);
		exit(2);
	}
}

/*
 * Every file we use is in run/, named from there: after -u the app's .dyno
 * (0700, root's) cannot be crossed any more, but run/ (0755) still lets us
 * read the routes.
 */
static int
app_enter(char *rundir, size_t rundirlen)
{
	int runfd;

	if (app_init(&rt.worker.app, appdir) == -1 ||
	    app_prepare(&rt.worker.app) == -1) {
		fprintf(stderr, "dyno-route: %s\n", rt.worker.app.why);
		return -1;
	}
	app_path(&rt.worker.app, rundir, rundirlen, "run");
	if ((runfd = app_openat(&rt.worker.app, "run", O_RDONLY | O_DIRECTORY,
	    0)) == -1 || fchdir(runfd) == -1) {
		fprintf(stderr, "dyno-route: cannot enter %s: %s\n",
		    rundir, strerror(errno));
		return -1;
	}
	close(runfd);
	close(rt.worker.app.fd);	/* not needed in run/; not for children */
	rt.worker.app.fd = -1;
	rt.worker.app_mode = 1;
	snprintf(rt.worker.routes_path, sizeof(rt.worker.routes_path), "routes");
	snprintf(rt.worker.counters_path, sizeof(rt.worker.counters_path), "router");
	return 0;
}

/* The socket passed in (LISTEN_FDS) or -l's: 0, or main's exit code. */
static int
listen_setup(void)
{
	const char *spec = listen_spec != NULL ? listen_spec : "8080";

	if ((rt.worker.listen_fd = listen_inherited()) >= 0) {
		if (listen_spec != NULL) {
			fprintf(stderr, "dyno-route: -l with a socket passed in "
			    "LISTEN_FDS: use one or the other\n");
			usage(stderr);
			return 2;
		}
	} else if (errno != ENOENT) {
		fprintf(stderr, "dyno-route: LISTEN_FDS: fd 3 is not one "
		    "listening TCP socket: %s\n", strerror(errno));
		return 1;
	} else if ((rt.worker.listen_fd = listen_on(spec)) == -1) {
		fprintf(stderr, "dyno-route: cannot listen on %s: %s\n", spec,
		    strerror(errno));
		return 1;
	}
	return 0;
}

int
main(int argc, char **argv)
{
	static const int sigs[] = { SIGCHLD, SIGHUP, SIGINT, SIGTERM };
	char pidpath[4096] = "", rundir[4096];
	pid_t pids[64];
	int sigfd, rc, i, pidfd = -1;

	options_parse(argc, argv);
	if (fixed_backends == NULL) {
		if (app_enter(rundir, sizeof(rundir)) == -1)
			return 1;
		snprintf(pidpath, sizeof(pidpath), "router.pid");
	}
	signal(SIGPIPE, SIG_IGN);
	if ((rc = listen_setup()) != 0)
		return rc;
	/*
	 * The pid file first: .dyno may be root's, and we are about to not be.
	 * Locked for our life (the fd stays open, and -w workers share it):
	 * dyno-run signals the pid in it only while it is locked.
	 */
	if (pidpath[0]) {
		if ((pidfd = pidfile_lock(AT_FDCWD, pidpath)) == -1) {
			fprintf(stderr, "dyno-route: cannot write %s/%s: %s\n",
			    rundir, pidpath, strerror(errno));
			return 1;
		}
	}
	if (rt.opt.user != NULL && drop_privileges(rt.opt.user) == -1)
		return 1;
	if ((sigfd = selfpipe_open(sigs, sizeof(sigs) / sizeof(sigs[0]))) == -1 ||
	    (rt.poller = poller_new()) == NULL) {
		fprintf(stderr, "dyno-route: %s\n", strerror(errno));
		return 1;
	}
	/* Our own 64 KiB: with a NULL buffer glibc ignores the size and
	 * takes st_blksize, 4 KiB for a file, so the log went out in 4 KiB
	 * writes. */
	setvbuf(stdout, logbuf, _IOFBF, sizeof(logbuf));	/* LOG_FLUSH_MS */
	rc = -1;
	if (rt.opt.workers > 1) {
		for (i = 0; i < rt.opt.workers; i++) {
			pid_t pid = fork();
			if (pid == -1) {
				fprintf(stderr, "dyno-route: fork: %s\n",
				    strerror(errno));
				return 1;
			}
			if (pid == 0) {
				rt.worker.index = i + 1;
				rand_seed();
				break;
			}
			pids[i] = pid;
		}
		if (rt.worker.index == 0)
			rc = workers_run(sigfd, pids, rt.opt.workers);
		if (rc >= 0)
			goto out;
		/* A worker: its own poller, its own counters file, and its own
		 * self-pipe: on the parent's, the parent could read the byte
		 * for the SIGTERM it sent us, and we would never stop. */
		poller_free(rt.poller);
		close(sigfd);
		if ((rt.poller = poller_new()) == NULL || (sigfd = selfpipe_open(sigs,
		    sizeof(sigs) / sizeof(sigs[0]))) == -1)
			return 1;
		if (rt.worker.app_mode)
			snprintf(rt.worker.counters_path, sizeof(rt.worker.counters_path),
			    "router.%d", rt.worker.index);
	}
	rt.now = clock_ms();
	if (rt.worker.app_mode)
		routes_reload();
	else
		backends_load(fixed_backends, 0);
	rc = event_loop(sigfd);
	fflush(stdout);
	if (rt.worker.index > 0)
		_exit(rc);
out:
	if (pidfd >= 0)
		pidfile_release(AT_FDCWD, pidpath, pidfd);
	fflush(stdout);
	return rc;
}

