/*
 * dyno-backup: database backups for an app, in the spirit of Heroku's
 * pg:backups.  A capture streams a dump into a temp file in
 * APP/.dyno/backups, hashing it on the way, fsyncs it, checks that the
 * database's own tool can read it back, and only then publishes it by
 * rename, data file first and meta file last: a backup exists when its
 * .meta does.  A kill -9 at any moment leaves at most a .tmp- file, which
 * the next run removes under the same lock.  Backups can be shipped to S3
 * (SigV4, by libcurl) or a WebDAV server and fetched back from there.
 * See dyno-backup(1).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"

#define META_MAX (64 * 1024)
#define ERRTAIL 2048		/* the end of a child's stderr, for the one-line error */
#define IO_BUF (256 * 1024)
#define RESP_MAX (256 * 1024)	/* an S3 answer body we read (XML) */
#define PARTS_MAX 10000		/* S3's limit on multipart parts */

#define DB_CMD 3	/* beside DBURL_POSTGRES and DBURL_SQLITE */

static struct app app;
static char backups_dir[PATH_MAX], app_name[256];
static struct {
	char *db;
	const char *cmd, *to, *endpoint, *confirm, *at, *encrypt_to;
	const char *cron_user;
	int scheduled, verbose, remote, dry_run, force;
	long keep_daily, keep_weekly, keep_manual, retries;
	long long multipart;
	int64_t transfer_ms;
} opt = {
	NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	NULL,
	0, 0, 0, 0, 0,
	7, 4, 10, 5,
	64LL << 20,
	3600 * 1000,
};

/* Temp files this run made and has not published: removed at exit. */
#define TMPS_MAX 8
static char tmp_paths[TMPS_MAX][PATH_MAX];
static volatile sig_atomic_t interrupted;
static volatile pid_t current_child;

/* ---- small helpers ------------------------------------------------------ */

static void
usage(FILE *fp)
{
	fprintf(fp,
"usage: dyno-backup [-a APP] [-v] capture [--db URL | --cmd COMMAND] [--scheduled]\n"
"                   [--to URL] [--endpoint URL] [--encrypt-to KEY]\n"
"       dyno-backup [-a APP] list | info [ID] | verify [ID] [--remote]\n"
"       dyno-backup [-a APP] restore [ID] [--db URL | --cmd COMMAND] --confirm NAME\n"
"       dyno-backup [-a APP] download [ID] [FILE | -] | delete ID\n"
"       dyno-backup [-a APP] prune [--keep-daily N] [--keep-weekly N]\n"
"                   [--keep-manual N] [--dry-run] [--force]\n"
"       dyno-backup [-a APP] upload [ID] --to URL | import LOCATION\n"
"       dyno-backup [-a APP] schedule [--at HH:MM] [--user USER]\n");
}

static void
help(void)
{
	usage(stdout);
	printf(
"\nCapture, verify, keep, ship and restore an app's database backups.\n"
"The database is --db URL, or DATABASE_URL from the app's config vars:\n"
"postgres://..., sqlite:///path or a .db/.sqlite path; --cmd stores what a\n"
"command prints.  Backups live in APP/.dyno/backups as b001, b002, ...\n\n"
"  -a, --app DIR            app directory (default $DYNO_APP, then .)\n"
"  -v, --verbose            say what happens (silent on success otherwise)\n"
"      --db URL             the database (default: DATABASE_URL)\n"
"      --cmd COMMAND        capture: store COMMAND's output; restore: feed it\n"
"      --scheduled          capture: mark it scheduled, then prune\n"
"      --encrypt-to KEY     capture: store it encrypted with gpg for KEY\n"
"      --to URL             s3://BUCKET/PREFIX or http(s)://HOST/PATH/\n"
"      --endpoint URL       an S3-compatible store instead of AWS\n"
"      --multipart-size SIZE  S3 multipart above this, in parts of it (64M)\n"
"      --retry N            upload/download retries (5)\n"
"      --transfer-timeout DUR  each request to a store, at most (1h)\n"
"      --remote             verify/restore: use the remote copy\n"
"      --confirm NAME       restore: the app's name, to say you mean it\n"
"      --keep-daily N       prune: scheduled backups, one a day (7)\n"
"      --keep-weekly N      prune: scheduled backups, one a week (4)\n"
"      --keep-manual N      prune: manual backups (10)\n"
"      --dry-run            prune: only say what would go\n"
"      --force              prune even after a failed capture\n"
"      --at HH:MM           schedule: the time of day (02:00)\n"
"      --user USER          schedule: a line for /etc/cron.d, run as USER\n"
"  -h, --help               this help\n");
}

static void cleanup_tmp(void);

static void
die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void last_capture(const char *status, const char *error);
/* A capture is under way: any failure is recorded for prune. */
static int capturing;

static void
die(const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "dyno-backup: %s\n", msg);
	if (capturing) {
		capturing = 0;
		cleanup_tmp();
		last_capture("failed", msg);
	}
	exit(1);
}

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
say(const char *fmt, ...)
{
	va_list ap;

	if (!opt.verbose)
		return;
	fprintf(stderr, "dyno-backup: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "dyno-backup: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	usage(stderr);
	exit(2);
}

static void
path_in(char *buf, size_t len, const char *dir, const char *name)
{
	if (snprintf(buf, len, "%s/%s", dir, name) >= (int)len)
		die("path too long: %s/%s", dir, name);
}

static void
tmp_add(const char *path)
{
	int i;

	for (i = 0; i < TMPS_MAX; i++)
		if (tmp_paths[i][0] == '\0') {
			snprintf(tmp_paths[i], sizeof(tmp_paths[i]), "%s", path);
			return;
		}
	die("internal error: too many temp files");
}

/* Forget a temp path: it was renamed into place or removed. */
static void
tmp_done(const char *path, int remove)
{
	int i;

	for (i = 0; i < TMPS_MAX; i++)
		if (strcmp(tmp_paths[i], path) == 0) {
			if (remove)
				unlink(path);
			tmp_paths[i][0] = '\0';
		}
}

static void
cleanup_tmp(void)
{
	int i;

	for (i = 0; i < TMPS_MAX; i++)
		if (tmp_paths[i][0] != '\0') {
			unlink(tmp_paths[i]);
			tmp_paths[i][0] = '\0';
		}
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
	if (current_child > 0)
		kill(current_child, SIGTERM);
}

static void
check_interrupted(void)
{
	if (interrupted)
		die("interrupted; nothing was published");
}

/* The clock, or DYNO_BACKUP_NOW (unix seconds) for tests of retention. */
static long long
now_unix(void)
{
	const char *s = getenv("DYNO_BACKUP_NOW");
	long v;

	if (s != NULL && *s != '\0') {
		if (parse_long(s, 0, LONG_MAX, &v) == -1)
			die("DYNO_BACKUP_NOW: not a number of seconds: %s", s);
		return v;
	}
	return (long long)time(NULL);
}

static void
iso_utc(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
human_size(long long n, char *buf, size_t len)
{
	if (n < 1024)
		snprintf(buf, len, "%lld B", n);
	else if (n < 1024 * 1024)
		snprintf(buf, len, "%.1f kB", n / 1024.0);
	else if (n < 1024LL * 1024 * 1024)
		snprintf(buf, len, "%.1f MB", n / (1024.0 * 1024));
	else
		snprintf(buf, len, "%.2f GB", n / (1024.0 * 1024 * 1024));
}

/* Is NAME an executable in $PATH? */
static int
in_path(const char *name)
{
	const char *p = getenv("PATH"), *end;
	char buf[PATH_MAX];

	if (p == NULL)
		p = "/usr/bin:/bin";
	for (; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchr(p, ':');
		if (end == NULL)
			end = p + strlen(p);
		if (end == p)
			continue;
		if (snprintf(buf, sizeof(buf), "%.*s/%s", (int)(end - p), p,
		    name) < (int)sizeof(buf) && access(buf, X_OK) == 0)
			return 1;
	}
	return 0;
}

static int
write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	ssize_t w;

	while (n > 0) {
		w = write(fd, c, n);
		if (w == -1) {
			if (errno == EINTR) {
				if (interrupted)
					return -1;
				continue;
			}
			return -1;
		}
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* ---- child processes ---------------------------------------------------- */

/*
 * Where a child's stdout goes while we stream it: a file (hashed and
 * counted on the way), a bounded memory buffer, or nowhere.
 */
struct sink {
	int fd;			/* -1: none */
	struct sha256 sha;
	long long size;
	char *mem;		/* non-NULL: keep up to memcap bytes here */
	size_t memlen, memcap;
};

static void
sink_init(struct sink *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	sha256_init(&s->sha);
}

static int
sink_put(struct sink *s, const char *p, size_t n)
{
	if (s->fd >= 0 && write_all(s->fd, p, n) == -1)
		return -1;
	sha256_update(&s->sha, p, n);
	s->size += (long long)n;
	if (s->mem != NULL && s->memlen < s->memcap) {
		size_t take = s->memcap - s->memlen < n ? s->memcap - s->memlen : n;
		memcpy(s->mem + s->memlen, p, take);
		s->memlen += take;
	}
	return 0;
}

/*
 * The one line that says why a child failed: its last stderr line that
 * mentions an error, else its last line.  Newlines and tabs become spaces.
 */
static void
error_line(const char *tail, size_t n, char *out, size_t outlen)
{
	const char *best = NULL, *p = tail, *end = tail + n, *nl;
	size_t blen = 0, len;
	int best_err = 0, is_err;
	char *q;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		len = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		is_err = memmem(p, len, "rror", 4) != NULL ||
		    memmem(p, len, "FATAL", 5) != NULL;
		if (len > 0 && (is_err || !best_err)) {
			best = p;
			blen = len;
			best_err = is_err;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	if (best == NULL) {
		out[0] = '\0';
		return;
	}
	if (blen >= outlen)
		blen = outlen - 1;
	memcpy(out, best, blen);
	out[blen] = '\0';
	for (q = out; *q != '\0'; q++)
		if (*q == '\t' || *q == '\r')
			*q = ' ';
}

/*
 * A file streamed into a child's stdin and checked on the way: everything
 * but its last FEED_HOLD bytes goes in as it is read; those are read,
 * hashed and sent only when the whole file has matched its sha256.  A
 * child that applies what it reads in one transaction (pg_restore
 * --single-transaction) is killed before the end on a mismatch, so
 * nothing it did is kept.
 */
#define FEED_HOLD (64 * 1024)
struct feed {
	int fd;
	long long size, pos;	/* bytes read and hashed */
	const char *sha;	/* expected, hex */
	struct sha256 s;
	char *buf;
	size_t off, len;
	int bad;		/* the file did not match: say so, stop */
};

/* Fill f->buf when it is empty; -1 when the file is bad. */
static int
feed_fill(struct feed *f)
{
	long long want, hold = f->size < FEED_HOLD ? f->size : FEED_HOLD;
	char sha[65];
	ssize_t r;

	if (f->off < f->len || f->pos == f->size)
		return 0;
	/* up to the held-back tail, then the tail in one go */
	want = f->pos < f->size - hold ? f->size - hold - f->pos : hold;
	if (want > IO_BUF)
		want = IO_BUF;
	f->off = f->len = 0;
	while (f->len < (size_t)want) {
		r = pread(f->fd, f->buf + f->len, (size_t)want - f->len,
		    f->pos + (long long)f->len);
		if (r <= 0) {
			if (r == -1 && errno == EINTR && !interrupted)
				continue;
			f->bad = 1;
			return -1;
		}
		f->len += (size_t)r;
	}
	sha256_update(&f->s, f->buf, f->len);
	f->pos += (long long)f->len;
	if (f->pos == f->size) {
		sha256_hex(&f->s, sha);
		if (strcmp(sha, f->sha) != 0) {
			f->bad = 1;
			return -1;
		}
	}
	return 0;
}

/*
 * Run argv with stdin from IN (-1: /dev/null) or FEED, and stdout into
 * SINK (NULL: /dev/null), collecting the end of its stderr.  0 when it
 * exits 0; otherwise -1 with "WHAT failed (exit status N): its error
 * line" in err.
 */
static int
run_io(char *const argv[], char **envp, const char *dir, int in,
    struct feed *feed, struct sink *sink, const char *what, char *err,
    size_t errlen)
{
	int outp[2] = { -1, -1 }, errp[2], inp[2] = { -1, -1 }, status;
	int open_fds;
	char buf[IO_BUF > 65536 ? 65536 : IO_BUF], tail[ERRTAIL], line[512];
	static char *big;
	size_t tlen = 0;
	struct pollfd pfd[3];
	pid_t pid;
	ssize_t r;
	int failed_write = 0, saved_errno = 0;

	if (big == NULL && (big = malloc(IO_BUF)) == NULL)
		die("out of memory");
	if (pipe2(errp, O_CLOEXEC) == -1 ||
	    (sink != NULL && pipe2(outp, O_CLOEXEC) == -1) ||
	    (feed != NULL && pipe2(inp, O_CLOEXEC) == -1))
		die("pipe: %s", strerror(errno));
	{
		struct spawn_opts so;

		memset(&so, 0, sizeof(so));
		so.argv = argv;
		so.envp = envp != NULL ? envp : environ;
		so.dir = dir;
		so.in_fd = feed != NULL ? inp[0] : in;
		so.out_fd = sink != NULL ? outp[1] : -1;
		so.err_fd = errp[1];
		/* A dyno-backup that is killed takes its dump along. */
		so.pdeathsig = SIGTERM;
		so.setid_ok = 1;	/* the operator's --cmd may use sudo */
		if ((pid = spawn_process(&so)) == -1)
			die("fork: %s", strerror(errno));
	}
	current_child = pid;
	close(errp[1]);
	if (sink != NULL)
		close(outp[1]);
	if (feed != NULL) {
		close(inp[0]);
		if (fcntl(inp[1], F_SETFL, O_NONBLOCK) == -1)
			die("fcntl: %s", strerror(errno));
		sha256_init(&feed->s);
		feed->pos = 0;
		feed->off = feed->len = 0;
		feed->bad = 0;
		if ((feed->buf = malloc(IO_BUF)) == NULL)
			die("out of memory");
	}
	pfd[0].fd = errp[0];
	pfd[0].events = POLLIN;
	pfd[1].fd = sink != NULL ? outp[0] : -1;
	pfd[1].events = POLLIN;
	pfd[2].fd = feed != NULL ? inp[1] : -1;
	pfd[2].events = POLLOUT;
	open_fds = 1 + (sink != NULL);
	while (open_fds > 0 || pfd[2].fd >= 0) {
		if (poll(pfd, 3, -1) == -1) {
			if (errno == EINTR && !interrupted)
				continue;
			if (errno != EINTR)
				die("poll: %s", strerror(errno));
			break;
		}
		if (pfd[2].fd >= 0 && pfd[2].revents != 0) {
			if (feed_fill(feed) == -1) {
				/* Not the file it should be: the child must not
				 * see its end, and goes with what it did. */
				kill(pid, SIGKILL);
				close(pfd[2].fd);
				pfd[2].fd = -1;
			} else if (feed->off == feed->len) {
				close(pfd[2].fd);	/* all of it: EOF */
				pfd[2].fd = -1;
			} else {
				r = write(pfd[2].fd, feed->buf + feed->off,
				    feed->len - feed->off);
				if (r > 0)
					feed->off += (size_t)r;
				else if (r == -1 && errno != EAGAIN &&
				    errno != EINTR) {
					/* the child left early; its status says why */
					close(pfd[2].fd);
					pfd[2].fd = -1;
				}
			}
		}
		if (pfd[1].fd >= 0 && pfd[1].revents != 0) {
			r = read(pfd[1].fd, big, IO_BUF);
			if (r > 0 && !failed_write &&
			    sink_put(sink, big, (size_t)r) == -1) {
				/* Stop reading: the child gets EPIPE and fails too. */
				failed_write = 1;
				saved_errno = errno;
				kill(pid, SIGTERM);
			}
			if (r == 0 || (r == -1 && errno != EINTR && errno != EAGAIN) ||
			    failed_write) {
				close(pfd[1].fd);
				pfd[1].fd = -1;
				open_fds--;
			}
		}
		if (pfd[0].fd >= 0 && pfd[0].revents != 0) {
			r = read(pfd[0].fd, buf, sizeof(buf));
			if (r > 0) {
				if ((size_t)r >= sizeof(tail)) {
					memcpy(tail, buf + r - sizeof(tail), sizeof(tail));
					tlen = sizeof(tail);
				} else {
					if (tlen + (size_t)r > sizeof(tail)) {
						size_t drop = tlen + (size_t)r - sizeof(tail);
						memmove(tail, tail + drop, tlen - drop);
						tlen -= drop;
					}
					memcpy(tail + tlen, buf, (size_t)r);
					tlen += (size_t)r;
				}
			} else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
				close(pfd[0].fd);
				pfd[0].fd = -1;
				open_fds--;
			}
		}
	}
	if (pfd[0].fd >= 0)
		close(pfd[0].fd);
	if (pfd[1].fd >= 0)
		close(pfd[1].fd);
	if (pfd[2].fd >= 0)
		close(pfd[2].fd);
	if (feed != NULL) {
		free(feed->buf);
		feed->buf = NULL;
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	current_child = 0;
	check_interrupted();
	if (failed_write) {
		snprintf(err, errlen, "writing %s output: %s", what,
		    strerror(saved_errno));
		return -1;
	}
	if (feed != NULL && feed->bad) {
		snprintf(err, errlen, "the file does not match its sha256 %s; %s was stopped before its end",
		    feed->sha, what);
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	error_line(tail, tlen, line, sizeof(line));
	if (WIFSIGNALED(status))
		snprintf(err, errlen, "%s was killed by signal %d%s%s", what,
		    WTERMSIG(status), line[0] ? ": " : "", line);
	else
		snprintf(err, errlen, "%s failed (exit status %d)%s%s", what,
		    WEXITSTATUS(status), line[0] ? ": " : "", line);
	return -1;
}

static int
run(char *const argv[], char **envp, const char *dir, int in,
    struct sink *sink, const char *what, char *err, size_t errlen)
{
	return run_io(argv, envp, dir, in, NULL, sink, what, err, errlen);
}

/* The first line a command prints, e.g. its --version; "" if it fails. */
static void
first_line(char *const argv[], char *out, size_t outlen)
{
	struct sink s;
	char err[256], mem[256];

	sink_init(&s, -1);
	s.mem = mem;
	s.memcap = sizeof(mem) - 1;
	out[0] = '\0';
	if (run(argv, NULL, NULL, -1, &s, argv[0], err, sizeof(err)) == -1)
		return;
	mem[s.memlen] = '\0';
	mem[strcspn(mem, "\r\n")] = '\0';
	snprintf(out, outlen, "%s", mem);
}

/* ---- databases ---------------------------------------------------------- */

static int
has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a >= b && strcmp(s + a - b, suf) == 0;
}

static void
db_parse(const char *url, struct dburl *db)
{
	char err[DYNO_ERR_MAX];

	if (dburl_parse(url, app.dir, db, err, sizeof(err)) == -1)
		die("%s", err);
}

/* --db, else DATABASE_URL from the config vars, else from .env. */
static void
db_resolve(struct dburl *db)
{
	struct env e;
	char path[PATH_MAX], err[DYNO_ERR_MAX];
	const char *v = NULL;

	if (opt.db != NULL) {
		db_parse(opt.db, db);
		return;
	}
	env_init(&e, NULL);
	if (app_path(&app, path, sizeof(path), "config") == 0 &&
	    access(path, F_OK) == 0) {
		if (env_load_config(&e, path, err, sizeof(err)) == -1)
			die("%s", err);
		v = env_get(&e, "DATABASE_URL");
	}
	if (v == NULL) {
		path_in(path, sizeof(path), app.dir, ".env");
		if (access(path, F_OK) == 0) {
			if (env_load_dotenv(&e, path, err, sizeof(err)) == -1)
				die("%s", err);
			v = env_get(&e, "DATABASE_URL");
		}
	}
	if (v == NULL || *v == '\0')
		die("no database: give --db URL or set DATABASE_URL (dyno-deploy config:set DATABASE_URL=...)");
	db_parse(v, db);
	env_free(&e);
}

/* The environment for a postgres tool: ours plus PGPASSWORD. */
static char **
pg_env(const struct dburl *db)
{
	static struct env e;

	env_free(&e);
	env_init(&e, environ);
	if (db->password[0] != '\0')
		env_set(&e, "PGPASSWORD", db->password);
	return e.vars;
}

/* Hide the password of --db in our own argv, so ps does not show it. */
static void
scrub_argv(int argc, char **argv)
{
	int i;
	char *p, *at, *colon;

	for (i = 1; i < argc; i++) {
		p = argv[i];
		if (strncmp(p, "--db=", 5) == 0)
			p += 5;
		if (strncmp(p, "postgres", 8) != 0 || strstr(p, "://") == NULL)
			continue;
		p = strstr(p, "://") + 3;
		at = strrchr(p, '@');
		colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
		if (colon != NULL)
			memset(colon + 1, '*', (size_t)(at - colon - 1));
		if ((p = strstr(argv[i], "password=")) != NULL)
			for (p += 9; *p != '\0' && *p != '&'; p++)
				*p = '*';
	}
}

/* ---- the backups folder ------------------------------------------------- */

struct backup {
	long num;
	char id[16];
	long long created, size;
	char kind[16], status[16], type[16], file[64], sha256[65];
	char remote[2048], endpoint[1024];
	char plain_sha256[65];	/* encrypted backups: of the plaintext */
	int encrypted;
	char *meta;		/* the meta file's text */
};

static int
id_parse(const char *s, long *num)
{
	if (s[0] != 'b' || !isdigit((unsigned char)s[1]))
		return -1;
	return parse_long(s + 1, 1, 99999999, num);
}

static void
id_format(long num, char *buf, size_t len)
{
	snprintf(buf, len, "b%03ld", num);
}

static int
backup_cmp(const void *a, const void *b)
{
	const struct backup *x = a, *y = b;

	return x->num < y->num ? -1 : x->num > y->num;
}

static void
meta_fill(struct backup *b)
{
	char v[64];

	kv_get(b->meta, "kind", b->kind, sizeof(b->kind));
	kv_get(b->meta, "status", b->status, sizeof(b->status));
	kv_get(b->meta, "type", b->type, sizeof(b->type));
	kv_get(b->meta, "file", b->file, sizeof(b->file));
	kv_get(b->meta, "sha256", b->sha256, sizeof(b->sha256));
	if (kv_get(b->meta, "remote", b->remote, sizeof(b->remote)) == -1)
		b->remote[0] = '\0';
	if (kv_get(b->meta, "remote_endpoint", b->endpoint, sizeof(b->endpoint)) == -1)
		b->endpoint[0] = '\0';
	b->encrypted = kv_get(b->meta, "encryption", v, sizeof(v)) == 0 &&
	    strcmp(v, "gpg") == 0;
	if (kv_get(b->meta, "plain_sha256", b->plain_sha256,
	    sizeof(b->plain_sha256)) == -1)
		b->plain_sha256[0] = '\0';
	b->created = b->size = 0;
	if (kv_get(b->meta, "created_unix", v, sizeof(v)) == 0)
		b->created = strtoll(v, NULL, 10);
	if (kv_get(b->meta, "size", v, sizeof(v)) == 0)
		b->size = strtoll(v, NULL, 10);
}

/* Every published backup (those with a .meta), oldest first. */
static struct backup *
backups_load(size_t *np)
{
	DIR *d;
	struct dirent *de;
	struct backup *list = NULL, *b;
	size_t n = 0, cap = 0, len;
	char path[PATH_MAX], idbuf[32];
	long num;

	*np = 0;
	if ((d = opendir(backups_dir)) == NULL) {
		if (errno == ENOENT)
			return NULL;
		die("%s: %s", backups_dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (!has_suffix(de->d_name, ".meta") ||
		    strlen(de->d_name) - 5 >= sizeof(idbuf))
			continue;
		snprintf(idbuf, sizeof(idbuf), "%.*s",
		    (int)(strlen(de->d_name) - 5), de->d_name);
		if (id_parse(idbuf, &num) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 32;
			if ((list = realloc(list, cap * sizeof(*list))) == NULL)
				die("out of memory");
		}
		b = &list[n];
		memset(b, 0, sizeof(*b));
		b->num = num;
		snprintf(b->id, sizeof(b->id), "%s", idbuf);
		path_in(path, sizeof(path), backups_dir, de->d_name);
		if (file_read_alloc(path, &b->meta, &len, META_MAX) == -1) {
			if (errno == ENOENT)
				continue;	/* deleted meanwhile */
			die("%s: %s", path, strerror(errno));
		}
		meta_fill(b);
		n++;
	}
	closedir(d);
	if (n > 1)
		qsort(list, n, sizeof(*list), backup_cmp);
	*np = n;
	return list;
}

static void
backups_free(struct backup *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(list[i].meta);
	free(list);
}

/* ID, "latest" or NULL (the newest) among LIST. */
static struct backup *
backup_find(struct backup *list, size_t n, const char *id)
{
	long num;
	size_t i;

	if (id == NULL || strcmp(id, "latest") == 0) {
		if (n == 0)
			die("no backups in %s yet", app.dir);
		return &list[n - 1];
	}
	if (id_parse(id, &num) == -1)
		die("not a backup ID: %s (IDs look like b001)", id);
	for (i = 0; i < n; i++)
		if (list[i].num == num)
			return &list[i];
	die("no backup %s in %s", id, app.dir);
}

/* Set KEY=VALUE in a meta text (replace the line or append one). */
static void
meta_set(struct backup *b, const char *key, const char *value)
{
	size_t klen = strlen(key), len = strlen(b->meta), vlen = strlen(value);
	char *p = b->meta, *line = NULL, *end, *out;

	if (strchr(value, '\n') != NULL)
		die("internal error: newline in meta value for %s", key);
	while (*p != '\0') {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
			line = p;
			break;
		}
		p = strchr(p, '\n');
		if (p == NULL)
			break;
		p++;
	}
	if ((out = malloc(len + klen + vlen + 3)) == NULL)
		die("out of memory");
	if (line != NULL) {
		end = strchr(line, '\n');
		end = end != NULL ? end + 1 : line + strlen(line);
		sprintf(out, "%.*s%s=%s\n%s", (int)(line - b->meta), b->meta,
		    key, value, end);
	} else
		sprintf(out, "%s%s%s=%s\n", b->meta,
		    len > 0 && b->meta[len - 1] != '\n' ? "\n" : "", key, value);
	free(b->meta);
	b->meta = out;
	meta_fill(b);
}

static void
meta_save(const struct backup *b)
{
	char path[PATH_MAX], name[64];

	snprintf(name, sizeof(name), "%s.meta", b->id);
	path_in(path, sizeof(path), backups_dir, name);
	if (atomicfile_write(path, b->meta, strlen(b->meta), 0600, 1) == -1)
		die("%s: %s", path, strerror(errno));
}

static void
data_path(const struct backup *b, char *buf, size_t len)
{
	if (b->file[0] == '\0' || strchr(b->file, '/') != NULL ||
	    b->file[0] == '.')
		die("%s.meta: bad file= line", b->id);
	path_in(buf, len, backups_dir, b->file);
}

static void
backups_dir_make(void)
{
	if (mkdir_mode(app.state, 0700) == -1)
		die("%s: %s", app.state, strerror(errno));
	if (mkdir_mode(backups_dir, 0700) == -1)
		die("%s: %s", backups_dir, strerror(errno));
}

/*
 * The lock every command that writes in backups/ takes.  Holding it, the
 * leftovers of a run that was killed are removed: .tmp- files, and a data
 * file whose meta never got written.
 */
static int
backups_lock(void)
{
	char path[PATH_MAX], p2[PATH_MAX], meta[80];
	DIR *d;
	struct dirent *de;
	pid_t holder;
	long num;
	int fd;

	backups_dir_make();
	path_in(path, sizeof(path), backups_dir, ".lock");
	if ((fd = lock_take(path, &holder)) == -1) {
		if (errno == EWOULDBLOCK) {
			if (holder > 0)
				die("another dyno-backup (pid %ld) is running on %s; try again when it ends",
				    (long)holder, app.dir);
			die("another dyno-backup is running on %s; try again when it ends",
			    app.dir);
		}
		die("%s: %s", path, strerror(errno));
	}
	(void)fchmod(fd, 0600);
	if ((d = opendir(backups_dir)) == NULL)
		die("%s: %s", backups_dir, strerror(errno));
	while ((de = readdir(d)) != NULL) {
		char idbuf[32];
		size_t idlen;

		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			path_in(p2, sizeof(p2), backups_dir, de->d_name);
			if (unlink(p2) == 0)
				say("removed %s, left by a run that was stopped",
				    de->d_name);
			continue;
		}
		if (de->d_name[0] != 'b' || has_suffix(de->d_name, ".meta"))
			continue;
		idlen = strcspn(de->d_name, ".");
		if (idlen >= sizeof(idbuf) || de->d_name[idlen] != '.')
			continue;
		snprintf(idbuf, sizeof(idbuf), "%.*s", (int)idlen, de->d_name);
		if (id_parse(idbuf, &num) == -1)
			continue;
		snprintf(meta, sizeof(meta), "%s.meta", idbuf);
		path_in(p2, sizeof(p2), backups_dir, meta);
		if (access(p2, F_OK) == 0)
			continue;
		path_in(p2, sizeof(p2), backups_dir, de->d_name);
		if (unlink(p2) == 0)
			say("removed %s: its capture never finished", de->d_name);
	}
	closedir(d);
	return fd;
}

/* The next ID: one past the highest ever used (.seq) or present. */
static long
next_num(void)
{
	char path[PATH_MAX], buf[32];
	struct backup *list;
	size_t n;
	long seq = 0;

	path_in(path, sizeof(path), backups_dir, ".seq");
	if (file_read(path, buf, sizeof(buf)) > 0) {
		buf[strcspn(buf, "\n")] = '\0';
		if (parse_long(buf, 0, 99999998, &seq) == -1)
			die("%s: not a number: %s", path, buf);
	}
	list = backups_load(&n);
	if (n > 0 && list[n - 1].num > seq)
		seq = list[n - 1].num;
	backups_free(list, n);
	if (seq >= 99999999)
		die("out of backup IDs");
	return seq + 1;
}

static void
seq_save(long num)
{
	char path[PATH_MAX], buf[32];
	int n;

	path_in(path, sizeof(path), backups_dir, ".seq");
	n = snprintf(buf, sizeof(buf), "%ld\n", num);
	if (atomicfile_write(path, buf, (size_t)n, 0600, 1) == -1)
		die("%s: %s", path, strerror(errno));
}

/* backups/.last-capture: "status=running|ok|failed", for prune's safety. */
static void
last_capture(const char *status, const char *error)
{
	char path[PATH_MAX], buf[1024], at[32];
	int n;

	iso_utc((long long)time(NULL), at, sizeof(at));
	path_in(path, sizeof(path), backups_dir, ".last-capture");
	n = snprintf(buf, sizeof(buf), "status=%s\nat=%s\n%s%.900s%s", status,
	    at, error != NULL ? "error=" : "", error != NULL ? error : "",
	    error != NULL ? "\n" : "");
	(void)atomicfile_write(path, buf, (size_t)n, 0600, 1);
}

/* ---- reading a stored backup back -------------------------------------- */

/* sha256 of a file, in hex; -1 if it cannot be read. */
/*
 * sha256 (and md5 unless NULL) of LEN bytes of a file from OFF; -1 with
 * errno when it cannot be read (EIO when it is shorter).
 */
static int
range_sums(int fd, long long off, long long len, char sha[65],
    unsigned char md5[16])
{
	static char *buf;
	struct sha256 s;
	struct md5 m;
	ssize_t r;

	if (buf == NULL && (buf = malloc(IO_BUF)) == NULL)
		die("out of memory");
	sha256_init(&s);
	md5_init(&m);
	while (len > 0) {
		r = pread(fd, buf, len < IO_BUF ? (size_t)len : IO_BUF, off);
		if (r == -1 && errno == EINTR && !interrupted)
			continue;
		if (r <= 0) {
			if (r == 0)
				errno = EIO;
			return -1;
		}
		sha256_update(&s, buf, (size_t)r);
		if (md5 != NULL)
			md5_update(&m, buf, (size_t)r);
		off += r;
		len -= r;
	}
	sha256_hex(&s, sha);
	if (md5 != NULL)
		md5_final(&m, md5);
	return 0;
}

/* sha256 of a whole file, in hex, and its size; -1 if it cannot be read. */
static int
file_sha256(const char *path, char out[65], long long *size)
{
	struct stat st;
	int fd, rc;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1) {
		close(fd);
		return -1;
	}
	*size = st.st_size;
	rc = range_sums(fd, 0, st.st_size, out, NULL);
	close(fd);
	return rc;
}

static const char *
decompressor(const char *file)
{
	if (has_suffix(file, ".zst"))
		return "zstd";
	if (has_suffix(file, ".gz"))
		return "gzip";
	return NULL;
}

/* Decompress SRC into a new file DST (mode 0600). */
static int
decompress_to(const char *src, const char *dst, char *err, size_t errlen)
{
	const char *tool = decompressor(src);
	char *zargv[] = { (char *)tool, "-d", "-c", "-q", (char *)src, NULL };
	char *gargv[] = { (char *)tool, "-d", "-c", (char *)src, NULL };
	char **argv = tool != NULL && strcmp(tool, "gzip") == 0 ? gargv : zargv;
	struct sink s;
	int fd, rc;

	if ((fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		return -1;
	}
	sink_init(&s, fd);
	if (tool == NULL) {
		snprintf(err, errlen, "%s: unknown compression", src);
		close(fd);
		return -1;
	}
	rc = run(argv, NULL, NULL, -1, &s, tool, err, errlen);
	if (rc == 0 && fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", dst, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

/* PRAGMA integrity_check on a plain sqlite file: 0 when it says "ok". */
static int
sqlite_check(const char *file, char *err, size_t errlen)
{
	char *argv[] = { "sqlite3", "-bail", "-readonly", (char *)file,
	    "PRAGMA integrity_check;", NULL };
	char mem[512], side[PATH_MAX + 8];
	struct sink s;
	int rc;

	sink_init(&s, -1);
	s.mem = mem;
	s.memcap = sizeof(mem) - 1;
	rc = run(argv, NULL, NULL, -1, &s, "sqlite3", err, errlen);
	/* A copy of a WAL database gets -wal and -shm files when opened. */
	snprintf(side, sizeof(side), "%s-wal", file);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", file);
	unlink(side);
	if (rc == -1)
		return -1;
	mem[s.memlen] = '\0';
	if (strcmp(mem, "ok\n") != 0) {
		mem[strcspn(mem, "\n")] = '\0';
		snprintf(err, errlen, "sqlite integrity_check: %s", mem);
		return -1;
	}
	return 0;
}

/*
 * Can the database's own tool read FILE (a backup of TYPE)?  postgres:
 * pg_restore --list reads the archive's table of contents; sqlite: the
 * file decompresses and passes PRAGMA integrity_check.
 */
static int
readable(const char *type, const char *file, char *err, size_t errlen)
{
	char check[PATH_MAX];
	int rc;

	if (strcmp(type, "postgres") == 0) {
		char *argv[] = { "pg_restore", "--list", (char *)file, NULL };
		struct sink s;

		sink_init(&s, -1);
		return run(argv, NULL, NULL, -1, &s, "pg_restore --list", err,
		    errlen);
	}
	if (strcmp(type, "sqlite") == 0) {
		snprintf(check, sizeof(check), "%s/.tmp-check-%ld.sqlite",
		    backups_dir, (long)getpid());
		tmp_add(check);
		rc = decompress_to(file, check, err, errlen);
		if (rc == 0)
			rc = sqlite_check(check, err, errlen);
		tmp_done(check, 1);
		return rc;
	}
	return 0;	/* a command's output: the checksum is all we know */
}

/* ---- off the host: S3 and WebDAV through libcurl ------------------------ */

struct remote {
	int s3;
	char bucket[256], key[2048];	/* s3 */
	char url[4096];			/* the object's URL */
	char location[4096];		/* s3://bucket/key or the URL */
	char endpoint[1024];
	char sigv4[128];
};

/* The store's base (--to) plus an object name, or a recorded location. */
static void
remote_parse(const char *to, const char *name, const char *endpoint,
    struct remote *r)
{
	const char *rest, *region;
	char prefix[2048];
	size_t i;

	memset(r, 0, sizeof(*r));
	if (strncmp(to, "s3://", 5) == 0) {
		r->s3 = 1;
		rest = to + 5;
		i = strcspn(rest, "/");
		if (i == 0 || i >= sizeof(r->bucket))
			die("--to %s: no bucket name", to);
		snprintf(r->bucket, sizeof(r->bucket), "%.*s", (int)i, rest);
		for (i = 0; r->bucket[i] != '\0'; i++)
			if (!islower((unsigned char)r->bucket[i]) &&
			    !isdigit((unsigned char)r->bucket[i]) &&
			    r->bucket[i] != '-' && r->bucket[i] != '.')
				die("--to %s: bad bucket name", to);
		rest += strlen(r->bucket);
		while (*rest == '/')
			rest++;
		snprintf(prefix, sizeof(prefix), "%s", rest);
		while (prefix[0] != '\0' && prefix[strlen(prefix) - 1] == '/')
			prefix[strlen(prefix) - 1] = '\0';
		for (i = 0; prefix[i] != '\0'; i++)
			if (!isalnum((unsigned char)prefix[i]) &&
			    strchr("/._-", prefix[i]) == NULL)
				die("--to %s: an S3 prefix may hold only letters, digits and / . _ -",
				    to);
		if (name != NULL)
			snprintf(r->key, sizeof(r->key), "%s%s%s", prefix,
			    prefix[0] ? "/" : "", name);
		else
			snprintf(r->key, sizeof(r->key), "%s", prefix);
		if (r->key[0] == '\0')
			die("--to %s: no object key", to);
		region = getenv("AWS_REGION");
		if (region == NULL || *region == '\0')
			region = getenv("AWS_DEFAULT_REGION");
		if (region == NULL || *region == '\0')
			region = "us-east-1";
		for (i = 0; region[i] != '\0'; i++)
			if (!isalnum((unsigned char)region[i]) && region[i] != '-')
				die("AWS_REGION: bad region name: %s", region);
		snprintf(r->sigv4, sizeof(r->sigv4), "aws:amz:%s:s3", region);
		if (endpoint != NULL && *endpoint != '\0') {
			snprintf(r->endpoint, sizeof(r->endpoint), "%s", endpoint);
			while (r->endpoint[0] != '\0' &&
			    r->endpoint[strlen(r->endpoint) - 1] == '/')
				r->endpoint[strlen(r->endpoint) - 1] = '\0';
			snprintf(r->url, sizeof(r->url), "%s/%s/%s", r->endpoint,
			    r->bucket, r->key);
		} else
			snprintf(r->url, sizeof(r->url),
			    "https://%s.s3.%s.amazonaws.com/%s", r->bucket, region,
			    r->key);
		snprintf(r->location, sizeof(r->location), "s3://%s/%s",
		    r->bucket, r->key);
		return;
	}
	if (strncmp(to, "http://", 7) == 0 || strncmp(to, "https://", 8) == 0) {
		rest = strstr(to, "://") + 3;
		if (memchr(rest, '@', strcspn(rest, "/")) != NULL)
			die("--to: put the password in ~/.netrc or DYNO_BACKUP_HTTP_AUTH, not in the URL");
		if (name != NULL)
			snprintf(r->url, sizeof(r->url), "%s%s%s", to,
			    has_suffix(to, "/") ? "" : "/", name);
		else
			snprintf(r->url, sizeof(r->url), "%s", to);
		snprintf(r->location, sizeof(r->location), "%s", r->url);
		return;
	}
	die("--to %s: not s3://BUCKET/PREFIX or an http(s):// URL", to);
}

/* Refuse a bad --to, or missing S3 keys, before any work is done. */
static void
remote_check(const char *to)
{
	struct remote r;
	const char *key = getenv("AWS_ACCESS_KEY_ID");
	const char *secret = getenv("AWS_SECRET_ACCESS_KEY");

	remote_parse(to, "x", opt.endpoint, &r);
	if (r.s3 && (key == NULL || *key == '\0' || secret == NULL ||
	    *secret == '\0'))
		die("%s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY", to);
}

struct request {
	const char *method;
	char url[4096 + 128];
	int body_fd;			/* upload from this file ... */
	long long body_off, body_len;	/* ... this range */
	long long body_pos;
	const char *body_mem;		/* or this memory */
	char payload_sha[65];		/* hex; for SigV4 */
	struct sink *out;		/* GET: into here */
	long long out_max;		/* ... at most this much (-1: no cap) */
	int out_over;			/* the store sent more: given up */
	char *resp;			/* answer body, up to RESP_MAX */
	size_t resp_len;
	long status;
	char etag[256];
	long long length;		/* Content-Length of the answer */
	long retry_after;		/* seconds, -1 if none */
	char error[512];
};

static size_t
req_read(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct request *q = arg;
	size_t want = size * nmemb;
	long long left = q->body_len - q->body_pos;
	ssize_t r;

	if (interrupted)
		return CURL_READFUNC_ABORT;
	if ((long long)want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	if (q->body_mem != NULL) {
		memcpy(buf, q->body_mem + q->body_pos, want);
		r = (ssize_t)want;
	} else {
		r = pread(q->body_fd, buf, want, q->body_off + q->body_pos);
		if (r <= 0)
			return CURL_READFUNC_ABORT;
	}
	q->body_pos += r;
	return (size_t)r;
}

static int
req_seek(void *arg, curl_off_t offset, int origin)
{
	struct request *q = arg;

	if (origin != SEEK_SET || offset < 0 || offset > q->body_len)
		return CURL_SEEKFUNC_FAIL;
	q->body_pos = offset;
	return CURL_SEEKFUNC_OK;
}

static size_t
req_write(char *p, size_t size, size_t nmemb, void *arg)
{
	struct request *q = arg;
	size_t n = size * nmemb;

	if (interrupted)
		return 0;
	if (q->out != NULL && q->status >= 200 && q->status < 300) {
		if (q->out_max >= 0 && q->out->size + (long long)n > q->out_max) {
			q->out_over = 1;
			return 0;
		}
		return sink_put(q->out, p, n) == -1 ? 0 : n;
	}
	if (q->resp_len < RESP_MAX) {
		size_t take = RESP_MAX - q->resp_len < n ? RESP_MAX - q->resp_len : n;
		memcpy(q->resp + q->resp_len, p, take);
		q->resp_len += take;
		q->resp[q->resp_len] = '\0';
	}
	return n;
}

static size_t
req_header(char *p, size_t size, size_t nmemb, void *arg)
{
	struct request *q = arg;
	size_t n = size * nmemb, vlen;
	const char *v;

	if (n > 5 && strncmp(p, "HTTP/", 5) == 0) {
		/* a new answer (after a 100 Continue, say): start over */
		q->status = strtol(p + 9 < p + n ? p + 9 : p, NULL, 10);
		q->etag[0] = '\0';
		q->retry_after = -1;
		q->length = -1;
		return n;
	}
	if (n > 5 && strncasecmp(p, "ETag:", 5) == 0) {
		v = p + 5;
		while (*v == ' ')
			v++;
		vlen = n - (size_t)(v - p);
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
		    v[vlen - 1] == ' '))
			vlen--;
		if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
			v++;
			vlen -= 2;
		}
		if (vlen < sizeof(q->etag)) {
			memcpy(q->etag, v, vlen);
			q->etag[vlen] = '\0';
		}
	} else if (n > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		char tmp[64];
		snprintf(tmp, sizeof(tmp), "%.*s", (int)(n - 12), p + 12);
		tmp[strcspn(tmp, "\r\n")] = '\0';
		if (isdigit((unsigned char)tmp[strspn(tmp, " ")]))
			q->retry_after = strtol(tmp, NULL, 10);
		else {
			time_t t = curl_getdate(tmp + strspn(tmp, " "), NULL);
			if (t != -1)
				q->retry_after = t > time(NULL) ?
				    (long)(t - time(NULL)) : 0;
		}
	} else if (n > 15 && strncasecmp(p, "Content-Length:", 15) == 0)
		q->length = strtoll(p + 15, NULL, 10);
	return n;
}

static int
req_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)arg; (void)a; (void)b; (void)c; (void)d;
	return interrupted ? 1 : 0;
}

/* The <Code> of an S3 error answer, or "". */
static void
s3_error_code(const struct request *q, char *out, size_t outlen)
{
	(void)xml_tag(q->resp, "Code", out, outlen);	/* "" when none */
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		check_interrupted();
	check_interrupted();
}

/*
 * One HTTP request with retries like curl's --retry: on a connection
 * failure, a timeout, 408, 429 or 5xx, wait 1 s, then 2, 4 ... (at most
 * 10 minutes), or what Retry-After says, and try again.  0 on a 2xx.
 */
static int
http_do(const struct remote *r, struct request *q)
{
	static const char empty_sha[] =
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	struct curl_slist *hdr = NULL;
	char h[512], code[128];
	const char *key, *secret, *token, *auth;
	long wait_ms = 1000, attempt;
	CURLcode rc = CURLE_OK;
	CURL *c;

	for (attempt = 0;; attempt++) {
		int retry;

		if ((c = curl_easy_init()) == NULL)
			die("curl_easy_init failed");
		hdr = NULL;
		q->status = 0;
		q->etag[0] = '\0';
		q->retry_after = -1;
		q->length = -1;
		q->resp_len = 0;
		q->resp[0] = '\0';
		q->body_pos = 0;
		q->out_over = 0;
		if (q->out != NULL) {
			/* a GET that is tried again starts its file over */
			if (q->out->fd >= 0 && (ftruncate(q->out->fd, 0) == -1 ||
			    lseek(q->out->fd, 0, SEEK_SET) == -1))
				die("truncate: %s", strerror(errno));
			q->out->size = 0;
			sha256_init(&q->out->sha);
		}
		curl_easy_setopt(c, CURLOPT_URL, q->url);
		curl_easy_setopt(c, CURLOPT_USERAGENT, "dyno-backup");
		curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
		curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)opt.transfer_ms);
		if (q->out_max >= 0)
			curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
			    (curl_off_t)q->out_max);
		curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, req_header);
		curl_easy_setopt(c, CURLOPT_HEADERDATA, q);
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, req_write);
		curl_easy_setopt(c, CURLOPT_WRITEDATA, q);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, req_progress);
		if (strcmp(q->method, "PUT") == 0 ||
		    (strcmp(q->method, "POST") == 0)) {
			curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
			curl_easy_setopt(c, CURLOPT_READFUNCTION, req_read);
			curl_easy_setopt(c, CURLOPT_READDATA, q);
			curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, req_seek);
			curl_easy_setopt(c, CURLOPT_SEEKDATA, q);
			curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE,
			    (curl_off_t)q->body_len);
			if (strcmp(q->method, "POST") == 0)
				curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "POST");
		} else if (strcmp(q->method, "HEAD") == 0)
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		else if (strcmp(q->method, "GET") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, q->method);
		if (r->s3) {
			key = getenv("AWS_ACCESS_KEY_ID");
			secret = getenv("AWS_SECRET_ACCESS_KEY");
			token = getenv("AWS_SESSION_TOKEN");
			if (key == NULL || *key == '\0' || secret == NULL ||
			    *secret == '\0')
				die("s3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
			curl_easy_setopt(c, CURLOPT_AWS_SIGV4, r->sigv4);
			curl_easy_setopt(c, CURLOPT_USERNAME, key);
			curl_easy_setopt(c, CURLOPT_PASSWORD, secret);
			/* libcurl 7.88 signs this header's value as the payload hash */
			snprintf(h, sizeof(h), "x-amz-content-sha256: %s",
			    q->payload_sha[0] ? q->payload_sha : empty_sha);
			hdr = curl_slist_append(hdr, h);
			if (token != NULL && *token != '\0') {
				snprintf(h, sizeof(h), "x-amz-security-token: %s", token);
				hdr = curl_slist_append(hdr, h);
			}
		} else {
			auth = getenv("DYNO_BACKUP_HTTP_AUTH");
			if (auth != NULL && *auth != '\0') {
				curl_easy_setopt(c, CURLOPT_USERPWD, auth);
				curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_ANY);
			} else
				curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		}
		if (hdr != NULL)
			curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
		rc = curl_easy_perform(c);
		if (rc == CURLE_OK)
			curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &q->status);
		curl_easy_cleanup(c);
		curl_slist_free_all(hdr);
		check_interrupted();
		if (rc == CURLE_OK && q->status >= 200 && q->status < 300)
			return 0;
		if (q->out_over || rc == CURLE_FILESIZE_EXCEEDED) {
			/* Not a store having a bad moment: not tried again. */
			snprintf(q->error, sizeof(q->error), "the store sends "
			    "more than the %lld bytes recorded", q->out_max);
			return -1;
		}
		if (rc != CURLE_OK)
			snprintf(q->error, sizeof(q->error), "%s",
			    curl_easy_strerror(rc));
		else {
			s3_error_code(q, code, sizeof(code));
			snprintf(q->error, sizeof(q->error), "HTTP %ld%s%s",
			    q->status, code[0] ? " " : "", code);
		}
		retry = rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
		    rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
		    rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
		    rc == CURLE_COULDNT_RESOLVE_HOST ||
		    (rc == CURLE_OK && (q->status == 408 || q->status == 429 ||
		    q->status >= 500));
		if (!retry || attempt >= opt.retries)
			return -1;
		if (rc == CURLE_OK && q->retry_after >= 0)
			wait_ms = q->retry_after * 1000 > 600000 ? 600000 :
			    q->retry_after * 1000;
		say("%s %s: %s; trying again in %ld ms (%ld of %ld)", q->method,
		    r->location, q->error, wait_ms, attempt + 1, opt.retries);
		sleep_ms(wait_ms);
		wait_ms = wait_ms * 2 > 600000 ? 600000 : wait_ms * 2;
	}
}

static void
request_init(struct request *q, const char *method, const struct remote *r,
    const char *query)
{
	/* one request at a time: every answer body lands in this buffer */
	static char resp[RESP_MAX + 1];

	memset(q, 0, sizeof(*q));
	q->method = method;
	q->body_fd = -1;
	q->out_max = -1;
	q->resp = resp;
	snprintf(q->url, sizeof(q->url), "%s%s%s", r->url, query ? "?" : "",
	    query ? query : "");
}

/* A body from memory, with its sha256 for SigV4. */
static void
request_body(struct request *q, const char *text)
{
	struct sha256 s;

	q->body_mem = text;
	q->body_len = (long long)strlen(text);
	sha256_init(&s);
	sha256_update(&s, text, strlen(text));
	sha256_hex(&s, q->payload_sha);
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[i * 2] = d[p[i] >> 4];
		out[i * 2 + 1] = d[p[i] & 15];
	}
	out[n * 2] = '\0';
}

static void
uri_encode(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *s != '\0' && o + 4 < outlen; s++) {
		if (isalnum((unsigned char)*s) || strchr("-_.~", *s) != NULL)
			out[o++] = *s;
		else
			o += (size_t)snprintf(out + o, outlen - o, "%%%02X",
			    (unsigned char)*s);
	}
	out[o] = '\0';
}

/*
 * S3 multipart upload of FD (SIZE bytes) in parts of PART bytes.  Each
 * part's ETag must be its MD5; the object's expected ETag goes to etag.
 */
static int
s3_multipart(const struct remote *r, int fd, long long size, long long part,
    char *etag, size_t etaglen, char *err, size_t errlen)
{
	struct request q;
	char query[1100], uploadid[512], enc[1024], *xml = NULL;
	unsigned char md5[16], *all;
	char partmd5[33], *xp;
	long nparts = (long)((size + part - 1) / part), i;
	struct md5 m;
	size_t xcap;
	int rc = -1;

	if (nparts > PARTS_MAX)
		die("--multipart-size %lld is too small for %lld bytes (S3 takes at most %d parts)",
		    part, size, PARTS_MAX);
	if ((all = malloc((size_t)nparts * 16)) == NULL)
		die("out of memory");
	request_init(&q, "POST", r, "uploads=");
	request_body(&q, "");
	if (http_do(r, &q) == -1) {
		snprintf(err, errlen, "starting a multipart upload: %s", q.error);
		goto out;
	}
	(void)xml_tag(q.resp, "UploadId", uploadid, sizeof(uploadid));
	if (uploadid[0] == '\0') {
		snprintf(err, errlen, "starting a multipart upload: no UploadId in the answer");
		goto out;
	}
	uri_encode(uploadid, enc, sizeof(enc));
	xcap = 128 + (size_t)nparts * 128;
	if ((xml = malloc(xcap)) == NULL)
		die("out of memory");
	xp = xml + sprintf(xml, "<CompleteMultipartUpload>");
	for (i = 0; i < nparts; i++) {
		long long off = i * part;
		long long len = size - off < part ? size - off : part;

		snprintf(query, sizeof(query), "partNumber=%ld&uploadId=%s", i + 1, enc);
		request_init(&q, "PUT", r, query);
		q.body_fd = fd;
		q.body_off = off;
		q.body_len = len;
		if (range_sums(fd, off, len, q.payload_sha, md5) == -1)
			die("reading the backup: %s", strerror(errno));
		hex(md5, 16, partmd5);
		memcpy(all + i * 16, md5, 16);
		say("uploading part %ld of %ld (%lld bytes)", i + 1, nparts, len);
		if (http_do(r, &q) == -1) {
			snprintf(err, errlen, "uploading part %ld: %s", i + 1, q.error);
			goto abort;
		}
		if (strcmp(q.etag, partmd5) != 0) {
			snprintf(err, errlen, "part %ld: the store's ETag %s is not its MD5 %s",
			    i + 1, q.etag, partmd5);
			goto abort;
		}
		xp += sprintf(xp, "<Part><PartNumber>%ld</PartNumber><ETag>\"%s\"</ETag></Part>",
		    i + 1, partmd5);
	}
	sprintf(xp, "</CompleteMultipartUpload>");
	snprintf(query, sizeof(query), "uploadId=%s", enc);
	request_init(&q, "POST", r, query);
	request_body(&q, xml);
	if (http_do(r, &q) == -1 || strstr(q.resp, "<Error>") != NULL) {
		char code[128];
		s3_error_code(&q, code, sizeof(code));
		snprintf(err, errlen, "completing the multipart upload: %s",
		    q.error[0] ? q.error : code);
		goto abort;
	}
	md5_init(&m);
	md5_update(&m, all, (size_t)nparts * 16);
	md5_final(&m, md5);
	hex(md5, 16, partmd5);
	snprintf(etag, etaglen, "%s-%ld", partmd5, nparts);
	rc = 0;
	goto out;
abort:
	snprintf(query, sizeof(query), "uploadId=%s", enc);
	request_init(&q, "DELETE", r, query);
	(void)http_do(r, &q);
out:
	free(xml);
	free(all);
	return rc;
}

/*
 * Ship backup B to TO (s3:// or http(s)://), check it by size and ETag,
 * and record where it went in the meta.
 */
static int
upload(struct backup *b, const char *to, const char *endpoint, char *err,
    size_t errlen)
{
	struct remote r;
	struct request q;
	char path[PATH_MAX], name[512], sha[65], expect[128], val[64];
	unsigned char md5[16];
	struct stat st;
	int fd;

	snprintf(name, sizeof(name), "%s-%s", app_name, b->file);
	remote_parse(to, name, endpoint, &r);
	data_path(b, path, sizeof(path));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 || fstat(fd, &st) == -1)
		die("%s: %s", path, strerror(errno));
	if (st.st_size != b->size)
		die("%s: %lld bytes, but its meta says %lld; run dyno-backup verify %s",
		    path, (long long)st.st_size, b->size, b->id);
	say("uploading %s (%lld bytes) to %s", b->id, b->size, r.location);
	expect[0] = '\0';
	if (r.s3 && b->size > opt.multipart) {
		if (s3_multipart(&r, fd, b->size, opt.multipart, expect,
		    sizeof(expect), err, errlen) == -1) {
			close(fd);
			return -1;
		}
	} else {
		/* one PUT with a Content-Length: S3 refuses chunked bodies */
		if (range_sums(fd, 0, b->size, sha, md5) == -1)
			die("%s: %s", path, strerror(errno));
		if (strcmp(sha, b->sha256) != 0) {
			close(fd);
			snprintf(err, errlen, "%s changed since it was captured (sha256 %s, meta says %s)",
			    b->file, sha, b->sha256);
			return -1;
		}
		if (r.s3)
			hex(md5, 16, expect);
		request_init(&q, "PUT", &r, NULL);
		q.body_fd = fd;
		q.body_len = b->size;
		snprintf(q.payload_sha, sizeof(q.payload_sha), "%s", sha);
		if (http_do(&r, &q) == -1) {
			snprintf(err, errlen, "upload to %s failed: %s", r.location,
			    q.error);
			close(fd);
			return -1;
		}
	}
	close(fd);
	/* What the store now holds: its size and ETag. */
	request_init(&q, "HEAD", &r, NULL);
	if (http_do(&r, &q) == -1) {
		snprintf(err, errlen, "checking %s after the upload: %s",
		    r.location, q.error);
		return -1;
	}
	if (q.length != b->size) {
		snprintf(err, errlen, "%s holds %lld bytes after the upload, not %lld",
		    r.location, q.length, b->size);
		return -1;
	}
	if (expect[0] != '\0' && strcmp(q.etag, expect) != 0) {
		snprintf(err, errlen, "%s has ETag %s after the upload, expected %s",
		    r.location, q.etag, expect);
		return -1;
	}
	meta_set(b, "remote", r.location);
	if (r.endpoint[0] != '\0')
		meta_set(b, "remote_endpoint", r.endpoint);
	snprintf(val, sizeof(val), "%lld", q.length);
	meta_set(b, "remote_size", val);
	meta_set(b, "remote_etag", q.etag[0] ? q.etag : "-");
	iso_utc((long long)time(NULL), val, sizeof(val));
	meta_set(b, "uploaded", val);
	/*
	 * The meta file goes beside the data, so that a new host can take
	 * the backup back with `dyno-backup import` from the store alone.
	 */
	snprintf(name, sizeof(name), "%s-%s.meta", app_name, b->id);
	remote_parse(to, name, endpoint, &r);
	request_init(&q, "PUT", &r, NULL);
	request_body(&q, b->meta);
	if (http_do(&r, &q) == -1) {
		snprintf(err, errlen, "upload of the meta file to %s failed: %s",
		    r.location, q.error);
		return -1;
	}
	meta_save(b);
	say("uploaded %s to %s, and its meta file beside it", b->id, b->remote);
	return 0;
}

/* Fetch B's remote copy into a new temp file; its path goes to out. */
static void
fetch_remote(struct backup *b, char *out, size_t outlen)
{
	struct remote r;
	struct request q;
	struct sink s;
	char sha[65];
	int fd;

	if (b->remote[0] == '\0')
		die("%s has no remote copy", b->id);
	remote_parse(b->remote, NULL, opt.endpoint != NULL ? opt.endpoint :
	    b->endpoint, &r);
	snprintf(out, outlen, "%s/.tmp-fetch-%s", backups_dir, b->file);
	tmp_add(out);
	if ((fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		die("%s: %s", out, strerror(errno));
	sink_init(&s, fd);
	request_init(&q, "GET", &r, NULL);
	q.out = &s;
	q.out_max = b->size;	/* more than that is not our backup */
	say("fetching %s from %s", b->id, r.location);
	if (http_do(&r, &q) == -1)
		die("fetching %s from %s: %s", b->id, r.location, q.error);
	if (fsync(fd) == -1)
		die("%s: %s", out, strerror(errno));
	close(fd);
	sha256_hex(&s.sha, sha);
	if (s.size != b->size || strcmp(sha, b->sha256) != 0)
		die("%s's remote copy at %s does not match: %lld bytes, sha256 %s (meta: %lld, %s)",
		    b->id, r.location, s.size, sha, b->size, b->sha256);
}

/*
 * The file to read backup B from: its local data file, or (when that is
 * missing, or with --remote) a fetched copy.  *fetched says which.
 */
static void
backup_source(struct backup *b, char *path, size_t len, int *fetched)
{
	*fetched = 0;
	data_path(b, path, len);
	if (!opt.remote && access(path, F_OK) == 0)
		return;
	if (b->remote[0] == '\0')
		die("%s: its data file %s is missing and it has no remote copy",
		    b->id, b->file);
	fetch_remote(b, path, len);
	*fetched = 1;
}

/* ---- encryption at rest (gpg) ------------------------------------------ */

/*
 * Decrypt an encrypted backup B (stored at PATH) into a temp file whose
 * name keeps the inner suffix (.dump, .sqlite.zst ...); its path to out.
 * 0 when the plaintext matches the recorded plain_sha256; 1 when this
 * host has no secret key for it (nothing written); -1 with err otherwise.
 */
static int
decrypt_to(const struct backup *b, const char *path, char *out, size_t outlen,
    char *err, size_t errlen)
{
	char *argv[] = { "gpg", "--batch", "--quiet", "--no-tty", "--decrypt",
	    (char *)path, NULL };
	char sha[65];
	struct sink s;
	int fd, rc;

	snprintf(out, outlen, "%s/.tmp-plain-%.*s", backups_dir,
	    (int)(strlen(b->file) - 4), b->file);
	tmp_add(out);
	if ((fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) == -1)
		die("%s: %s", out, strerror(errno));
	sink_init(&s, fd);
	rc = run(argv, NULL, NULL, -1, &s, "gpg --decrypt", err, errlen);
	if (rc == 0 && fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", out, strerror(errno));
		rc = -1;
	}
	close(fd);
	if (rc == -1) {
		tmp_done(out, 1);
		return strstr(err, "No secret key") != NULL ? 1 : -1;
	}
	sha256_hex(&s.sha, sha);
	if (b->plain_sha256[0] != '\0' && strcmp(sha, b->plain_sha256) != 0) {
		snprintf(err, errlen, "%s decrypts to data with sha256 %s, not %s",
		    b->id, sha, b->plain_sha256);
		tmp_done(out, 1);
		return -1;
	}
	return 0;
}

/* ---- capture ------------------------------------------------------------ */

/* Strip the "*** ... ***" that zstd puts around its version line. */
static void
trim_stars(char *s)
{
	size_t n, lead = strspn(s, "* ");

	memmove(s, s + lead, strlen(s + lead) + 1);
	n = strlen(s);
	while (n > 0 && (s[n - 1] == '*' || s[n - 1] == ' '))
		s[--n] = '\0';
}

/* The versions of the programs that make a backup, for its meta file. */
static void
tools_versions(int type, const char *compress, char *out, size_t outlen)
{
	char a[200] = "", c[200] = "", v[200];

	if (type == DBURL_POSTGRES) {
		char *argv[] = { "pg_dump", "--version", NULL };
		first_line(argv, a, sizeof(a));
	} else if (type == DBURL_SQLITE) {
		char *argv[] = { "sqlite3", "--version", NULL };
		first_line(argv, v, sizeof(v));
		v[strcspn(v, " ")] = '\0';	/* "3.40.1 2022-12-28 ..." */
		snprintf(a, sizeof(a), "sqlite3 %s", v);
		if (compress != NULL) {
			char *argv2[] = { (char *)compress, "--version", NULL };
			first_line(argv2, c, sizeof(c));
			trim_stars(c);
		}
	}
	snprintf(out, outlen, "%s%s%s", a, c[0] ? "; " : "", c);
}

static int
open_tmp(const char *path)
{
	int fd;

	tmp_add(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1)
		die("%s: %s", path, strerror(errno));
	return fd;
}

static int cmd_prune(void);

static int
cmd_capture(void)
{
	struct dburl db;
	struct sink s;
	struct backup b;
	char id[16], tmp[PATH_MAX], raw[PATH_MAX], final[PATH_MAX], err[1024];
	char file[64], tools[512], created[32], sha[65], meta[8192], dur[32];
	char plain_sha[65];
	long long plain_size = 0;
	const char *compress = NULL, *what;
	long long t0, when;
	long num;
	int fd, lockfd;

	memset(&db, 0, sizeof(db));
	if (opt.cmd != NULL) {
		if (opt.db != NULL)
			usage_error("capture: --db and --cmd do not go together");
		db.type = DB_CMD;
		snprintf(db.redacted, sizeof(db.redacted), "command");
	} else
		db_resolve(&db);
	if (opt.to != NULL)
		remote_check(opt.to);
	if (opt.encrypt_to != NULL) {
		char *argv[] = { "gpg", "--batch", "--quiet", "--no-tty",
		    "--auto-key-locate", "local", "--list-keys",
		    (char *)opt.encrypt_to, NULL };

		if (!in_path("gpg"))
			die("--encrypt-to needs gpg (apt-get install gnupg)");
		if (run(argv, NULL, NULL, -1, NULL, "gpg --list-keys", err,
		    sizeof(err)) == -1)
			die("--encrypt-to %s: no such public key in gpg's keyring",
			    opt.encrypt_to);
	}
	lockfd = backups_lock();
	last_capture("running", NULL);
	capturing = 1;
	num = next_num();
	id_format(num, id, sizeof(id));
	t0 = clock_ms();
	when = now_unix();
	sink_init(&s, -1);
	switch (db.type) {
	case DBURL_POSTGRES: {
		char *argv[] = { "pg_dump", "--format=custom", "--no-password",
		    "--dbname", db.url, NULL };

		what = "pg_dump";
		snprintf(file, sizeof(file), "%s.dump", id);
		snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(tmp);
		sink_init(&s, fd);
		say("capturing %s from %s", id, db.redacted);
		if (run(argv, pg_env(&db), NULL, -1, &s, what, err, sizeof(err)) == -1)
			die("%s: %s", db.redacted, err);
		break;
	}
	case DBURL_SQLITE: {
		char target[64], backup_cmd[128];
		char *argv[] = { "sqlite3", "-bail", db.path, ".timeout 30000",
		    "BEGIN;", "SELECT count(*) FROM sqlite_schema;", backup_cmd,
		    "COMMIT;", NULL };

		what = "sqlite3";
		if (access(db.path, R_OK) == -1)
			die("%s: %s", db.path, strerror(errno));
		compress = in_path("zstd") ? "zstd" : "gzip";
		snprintf(file, sizeof(file), "%s.sqlite.%s", id,
		    strcmp(compress, "zstd") == 0 ? "zst" : "gz");
		/*
		 * The online backup API copies the pages inside one read
		 * transaction, so a writer in WAL mode goes on and the copy is
		 * one consistent snapshot; in rollback mode a writer waits.
		 */
		snprintf(target, sizeof(target), ".tmp-%s.sqlite", id);
		snprintf(raw, sizeof(raw), "%s/%s", backups_dir, target);
		/* run in backups/, so the name needs no quoting whatever the
		 * app's path holds */
		snprintf(backup_cmd, sizeof(backup_cmd), ".backup '%s'", target);
		tmp_add(raw);
		say("capturing %s from %s", id, db.redacted);
		if (run(argv, NULL, backups_dir, -1, NULL, what, err,
		    sizeof(err)) == -1)
			die("%s: %s", db.redacted, err);
		snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(tmp);
		sink_init(&s, fd);
		{
			char *zargv[] = { (char *)compress, "-c", "-q", raw, NULL };
			char *gargv[] = { (char *)compress, "-c", "-n", raw, NULL };
			if (run(strcmp(compress, "zstd") == 0 ? zargv : gargv, NULL,
			    NULL, -1, &s, compress, err, sizeof(err)) == -1)
				die("%s", err);
		}
		tmp_done(raw, 1);
		break;
	}
	case DB_CMD: {
		char *argv[] = { "/bin/sh", "-c", (char *)opt.cmd, NULL };

		what = "the command";
		snprintf(file, sizeof(file), "%s.raw", id);
		snprintf(tmp, sizeof(tmp), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(tmp);
		sink_init(&s, fd);
		say("capturing %s from: %s", id, opt.cmd);
		if (run(argv, NULL, NULL, -1, &s, what, err, sizeof(err)) == -1)
			die("%s", err);
		break;
	}
	default:
		die("internal error: no database type");
	}
	if (s.size == 0)
		die("%s printed nothing: an empty backup is no backup",
		    what);
	if (fsync(fd) == -1 || close(fd) == -1)
		die("%s: %s", tmp, strerror(errno));
	check_interrupted();
	sha256_hex(&s.sha, sha);
	if (readable(db.type == DBURL_POSTGRES ? "postgres" :
	    db.type == DBURL_SQLITE ? "sqlite" : "cmd", tmp, err, sizeof(err)) == -1)
		die("%s did not verify: %s", id, err);
	check_interrupted();
	plain_sha[0] = '\0';
	if (opt.encrypt_to != NULL) {
		/* The plaintext was checked; what is kept is its gpg encryption. */
		char enc[PATH_MAX];
		char *argv[] = { "gpg", "--batch", "--quiet", "--no-tty", "--yes",
		    "--auto-key-locate", "local", "--trust-model", "always",
		    "--encrypt", "--recipient",
		    (char *)opt.encrypt_to, "--output", "-", tmp, NULL };
		struct sink es;

		snprintf(plain_sha, sizeof(plain_sha), "%s", sha);
		plain_size = s.size;
		snprintf(file + strlen(file), sizeof(file) - strlen(file), ".gpg");
		snprintf(enc, sizeof(enc), "%s/.tmp-%s", backups_dir, file);
		fd = open_tmp(enc);
		sink_init(&es, fd);
		if (run(argv, NULL, NULL, -1, &es, "gpg --encrypt", err,
		    sizeof(err)) == -1)
			die("%s", err);
		if (es.size == 0)
			die("gpg --encrypt printed nothing");
		if (fsync(fd) == -1 || close(fd) == -1)
			die("%s: %s", enc, strerror(errno));
		tmp_done(tmp, 1);
		snprintf(tmp, sizeof(tmp), "%s", enc);
		s.size = es.size;
		sha256_hex(&es.sha, sha);
	}
	/* Publish: the data file first, the meta last (a backup exists when
	 * its meta does). */
	path_in(final, sizeof(final), backups_dir, file);
	if (rename(tmp, final) == -1)
		die("%s: %s", final, strerror(errno));
	tmp_done(tmp, 0);
	tools_versions(db.type, compress, tools, sizeof(tools));
	iso_utc(when, created, sizeof(created));
	snprintf(dur, sizeof(dur), "%lld", (long long)(clock_ms() - t0));
	snprintf(meta, sizeof(meta),
	    "id=%s\ncreated=%s\ncreated_unix=%lld\nkind=%s\nstatus=completed\n"
	    "type=%s\nfile=%s\nsize=%lld\nsha256=%s\nduration_ms=%s\n"
	    "database=%s\ncompression=%s\ntools=%s\nverified=%s\n",
	    id, created, when, opt.scheduled ? "scheduled" : "manual",
	    db.type == DBURL_POSTGRES ? "postgres" : db.type == DBURL_SQLITE ?
	    "sqlite" : "cmd", file, s.size, sha, dur, db.redacted,
	    db.type == DBURL_POSTGRES ? "pg_dump" : compress != NULL ? compress :
	    "none", tools[0] ? tools : "-", created);
	memset(&b, 0, sizeof(b));
	b.num = num;
	snprintf(b.id, sizeof(b.id), "%s", id);
	if ((b.meta = strdup(meta)) == NULL)
		die("out of memory");
	meta_fill(&b);
	if (plain_sha[0] != '\0') {
		char v[32];

		meta_set(&b, "encryption", "gpg");
		meta_set(&b, "recipient", opt.encrypt_to);
		meta_set(&b, "plain_sha256", plain_sha);
		snprintf(v, sizeof(v), "%lld", plain_size);
		meta_set(&b, "plain_size", v);
	}
	seq_save(num);
	meta_save(&b);
	say("captured %s: %lld bytes in %s ms, sha256 %s", id, s.size, dur, sha);
	if (opt.to != NULL) {
		if (upload(&b, opt.to, opt.endpoint, err, sizeof(err)) == -1)
			die("%s is kept here, but %s", id, err);
	}
	capturing = 0;
	last_capture("ok", NULL);
	free(b.meta);
	close(lockfd);
	if (opt.scheduled)
		return cmd_prune();
	return 0;
}

/* ---- list, info, verify ------------------------------------------------- */

static int
cmd_list(void)
{
	struct backup *list;
	size_t n, i;
	char created[32], size[32];
	struct tm tm;
	time_t t;

	list = backups_load(&n);
	printf("%-6s  %-23s  %10s  %-9s  %-9s  %s\n", "ID", "CREATED", "SIZE",
	    "KIND", "STATUS", "REMOTE");
	for (i = 0; i < n; i++) {
		t = (time_t)list[i].created;
		gmtime_r(&t, &tm);
		strftime(created, sizeof(created), "%Y-%m-%d %H:%M:%S UTC", &tm);
		human_size(list[i].size, size, sizeof(size));
		printf("%-6s  %-23s  %10s  %-9s  %-9s  %s\n", list[i].id, created,
		    size, list[i].kind, list[i].status,
		    list[i].remote[0] ? list[i].remote : "-");
	}
	backups_free(list, n);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int
cmd_info(const char *id)
{
	struct backup *list, *b;
	size_t n;

	list = backups_load(&n);
	b = backup_find(list, n, id);
	fputs(b->meta, stdout);
	backups_free(list, n);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int
cmd_verify(const char *id)
{
	struct backup *list, *b;
	char path[PATH_MAX], sha[65], err[1024], at[32];
	long long size;
	int fetched, lockfd, ok = 1;
	size_t n;

	lockfd = backups_lock();
	list = backups_load(&n);
	b = backup_find(list, n, id);
	backup_source(b, path, sizeof(path), &fetched);
	if (file_sha256(path, sha, &size) == -1) {
		snprintf(err, sizeof(err), "%s: %s", path, strerror(errno));
		ok = 0;
	} else if (size != b->size || strcmp(sha, b->sha256) != 0) {
		snprintf(err, sizeof(err), "%s%s is corrupt: %lld bytes with sha256 %s, but it was %lld bytes with sha256 %s",
		    b->id, fetched ? "'s remote copy" : "", size, sha, b->size,
		    b->sha256);
		ok = 0;
	} else if (b->encrypted) {
		char plain[PATH_MAX];

		switch (decrypt_to(b, path, plain, sizeof(plain), err, sizeof(err))) {
		case 1:
			say("%s: no secret key here to decrypt it; only its checksum was checked",
			    b->id);
			break;
		case 0:
			if (readable(b->type, plain, err, sizeof(err)) == -1)
				ok = 0;
			tmp_done(plain, 1);
			break;
		default:
			ok = 0;
		}
	} else if (readable(b->type, path, err, sizeof(err)) == -1)
		ok = 0;
	if (fetched)
		tmp_done(path, 1);
	iso_utc((long long)time(NULL), at, sizeof(at));
	if (!ok) {
		meta_set(b, "status", "corrupt");
		meta_save(b);
		die("%s", err);
	}
	if (strcmp(b->status, "completed") != 0 || !fetched) {
		meta_set(b, "status", "completed");
		meta_set(b, "verified", at);
		meta_save(b);
	}
	say("%s%s is intact: %lld bytes, sha256 %s", b->id,
	    fetched ? "'s remote copy" : "", size, sha);
	backups_free(list, n);
	close(lockfd);
	return 0;
}

/* ---- restore, download, delete, upload ---------------------------------- */

static void
confirm_or_die(const struct backup *b, const char *target)
{
	if (opt.confirm == NULL || strcmp(opt.confirm, app_name) != 0)
		die("restoring %s overwrites %s; to go on, run this again with --confirm %s",
		    b->id, target, app_name);
}

/* Check a file against B's checksum before anything is overwritten. */
static void
check_sum_or_die(const struct backup *b, const char *path)
{
	char sha[65];
	long long size;

	if (file_sha256(path, sha, &size) == -1)
		die("%s: %s", path, strerror(errno));
	if (size != b->size || strcmp(sha, b->sha256) != 0)
		die("%s is corrupt (sha256 %s, expected %s); nothing was restored",
		    b->id, sha, b->sha256);
}

static void
restore_sqlite(const struct backup *b, const char *src, const struct dburl *db)
{
	char tmp[PATH_MAX], dir[PATH_MAX], err[1024], side[PATH_MAX + 16];
	const char *slash;
	static const char *const sides[] = { "-wal", "-shm", "-journal" };
	struct stat st;
	size_t i;
	int fd;

	slash = strrchr(db->path, '/');
	snprintf(dir, sizeof(dir), "%.*s", (int)(slash - db->path), db->path);
	if (dir[0] == '\0')
		snprintf(dir, sizeof(dir), "/");
	if (snprintf(tmp, sizeof(tmp), "%s/.%s.dyno-restore-%ld", dir, slash + 1,
	    (long)getpid()) >= (int)sizeof(tmp))
		die("path too long: %s", db->path);
	unlink(tmp);
	tmp_add(tmp);
	if (decompress_to(src, tmp, err, sizeof(err)) == -1 ||
	    sqlite_check(tmp, err, sizeof(err)) == -1)
		die("%s: %s; nothing was restored", b->id, err);
	if ((fd = open(tmp, O_RDONLY | O_CLOEXEC)) == -1 || fsync(fd) == -1)
		die("%s: %s", tmp, strerror(errno));
	/* the restored file keeps the old one's owner and mode */
	if (stat(db->path, &st) == 0) {
		if (fchmod(fd, st.st_mode & 07777) == -1 ||
		    (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) == -1))
			die("%s: %s", tmp, strerror(errno));
	}
	close(fd);
	/*
	 * A journal or WAL left beside the old file would be replayed into
	 * the new one; they belong to the database being replaced.
	 */
	for (i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		snprintf(side, sizeof(side), "%s%s", db->path, sides[i]);
		if (unlink(side) == -1 && errno != ENOENT)
			die("%s: %s", side, strerror(errno));
	}
	if (rename(tmp, db->path) == -1)
		die("%s: %s", db->path, strerror(errno));
	tmp_done(tmp, 0);
	if (dir_fsync(dir) == -1)
		die("%s: %s", dir, strerror(errno));
}

static int
cmd_restore(const char *id)
{
	struct backup *list, *b;
	struct dburl db;
	char path[PATH_MAX], err[1024];
	int fetched, lockfd;
	size_t n;

	lockfd = backups_lock();
	list = backups_load(&n);
	b = backup_find(list, n, id);
	memset(&db, 0, sizeof(db));
	if (strcmp(b->type, "cmd") == 0) {
		if (opt.cmd == NULL)
			die("%s was captured from a command; restore it with --cmd COMMAND, which gets it on stdin",
			    b->id);
		confirm_or_die(b, "what the command writes");
	} else {
		if (opt.cmd != NULL)
			usage_error("restore: --cmd is for backups captured with --cmd");
		db_resolve(&db);
		if ((strcmp(b->type, "postgres") == 0) != (db.type == DBURL_POSTGRES))
			die("%s is a %s backup; %s is not a %s database", b->id,
			    b->type, db.redacted, b->type);
		confirm_or_die(b, db.redacted);
	}
	backup_source(b, path, sizeof(path), &fetched);
	/* A postgres backup is checked as it streams in (see struct feed);
	 * a fetched copy was checked as it came. */
	if (!fetched && (strcmp(b->type, "postgres") != 0 || b->encrypted))
		check_sum_or_die(b, path);
	if (b->encrypted) {
		char plain[PATH_MAX];

		if (decrypt_to(b, path, plain, sizeof(plain), err, sizeof(err)) != 0)
			die("%s is encrypted and cannot be decrypted here: %s", b->id,
			    err);
		if (fetched)
			tmp_done(path, 1);
		snprintf(path, sizeof(path), "%s", plain);
		fetched = 1;	/* the plaintext is a temp file: removed below */
	}
	say("restoring %s into %s", b->id, strcmp(b->type, "cmd") == 0 ?
	    opt.cmd : db.redacted);
	if (strcmp(b->type, "postgres") == 0) {
		/* From stdin: the archive was written to a pipe, so it has
		 * no offsets to seek to and reads front to back. */
		char *argv[] = { "pg_restore", "--clean", "--if-exists",
		    "--single-transaction", "--no-owner", "--no-privileges",
		    "--no-password", "--dbname", db.url, NULL };
		struct feed f;
		struct stat st;

		memset(&f, 0, sizeof(f));
		if ((f.fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
		    fstat(f.fd, &st) == -1)
			die("%s: %s", path, strerror(errno));
		f.size = st.st_size;
		f.sha = b->encrypted ? b->plain_sha256 : b->sha256;
		if (run_io(argv, pg_env(&db), NULL, -1, &f, NULL, "pg_restore",
		    err, sizeof(err)) == -1)
			die("%s: %s; the database is as it was", b->id, err);
		close(f.fd);
	} else if (strcmp(b->type, "sqlite") == 0)
		restore_sqlite(b, path, &db);
	else {
		char *argv[] = { "/bin/sh", "-c", (char *)opt.cmd, NULL };
		int in = open(path, O_RDONLY | O_CLOEXEC);
		if (in == -1)
			die("%s: %s", path, strerror(errno));
		if (run(argv, NULL, NULL, in, NULL, "the restore command", err,
		    sizeof(err)) == -1)
			die("%s: %s", b->id, err);
		close(in);
	}
	if (fetched)
		tmp_done(path, 1);
	say("restored %s", b->id);
	backups_free(list, n);
	close(lockfd);
	return 0;
}

static int
cmd_download(const char *id, const char *dest)
{
	struct backup *list, *b;
	char path[PATH_MAX], tmp[PATH_MAX + 32], sha[65];
	static char buf[IO_BUF];
	struct sha256 s;
	long long size = 0;
	int in, out, fetched = 0, lockfd = -1;
	ssize_t r;
	size_t n;

	list = backups_load(&n);
	b = backup_find(list, n, id);
	data_path(b, path, sizeof(path));
	if (opt.remote || access(path, F_OK) == -1) {
		lockfd = backups_lock();	/* the fetch writes a temp file here */
		backup_source(b, path, sizeof(path), &fetched);
	}
	if (dest == NULL)
		dest = b->file;
	if ((in = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		die("%s: %s", path, strerror(errno));
	if (strcmp(dest, "-") == 0)
		out = 1;
	else {
		snprintf(tmp, sizeof(tmp), "%s.dyno-download-%ld", dest,
		    (long)getpid());
		tmp_add(tmp);
		if ((out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600)) == -1)
			die("%s: %s", tmp, strerror(errno));
	}
	sha256_init(&s);
	while ((r = read(in, buf, sizeof(buf))) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			die("%s: %s", path, strerror(errno));
		}
		sha256_update(&s, buf, (size_t)r);
		size += r;
		if (write_all(out, buf, (size_t)r) == -1)
			die("%s: %s", out == 1 ? "stdout" : tmp, strerror(errno));
	}
	close(in);
	sha256_hex(&s, sha);
	if (size != b->size || strcmp(sha, b->sha256) != 0)
		die("%s is corrupt (sha256 %s, expected %s)%s", b->id, sha,
		    b->sha256, out == 1 ? "; what was written to stdout is not the backup" : "");
	if (out != 1) {
		if (fsync(out) == -1 || close(out) == -1 || rename(tmp, dest) == -1)
			die("%s: %s", dest, strerror(errno));
		tmp_done(tmp, 0);
		say("wrote %s to %s", b->id, dest);
	}
	if (fetched)
		tmp_done(path, 1);
	if (lockfd != -1)
		close(lockfd);
	backups_free(list, n);
	return 0;
}

/* Remove backup B: its meta first (so it is no longer listed), then data. */
static void
remove_backup(const struct backup *b)
{
	char path[PATH_MAX], name[64];

	snprintf(name, sizeof(name), "%s.meta", b->id);
	path_in(path, sizeof(path), backups_dir, name);
	if (unlink(path) == -1 && errno != ENOENT)
		die("%s: %s", path, strerror(errno));
	data_path(b, path, sizeof(path));
	if (unlink(path) == -1 && errno != ENOENT)
		die("%s: %s", path, strerror(errno));
}

static int
cmd_delete(const char *id)
{
	struct backup *list, *b;
	size_t n;
	int lockfd;

	if (id == NULL)
		usage_error("delete: which backup? (e.g. dyno-backup delete b001)");
	lockfd = backups_lock();
	list = backups_load(&n);
	b = backup_find(list, n, id);
	remove_backup(b);
	if (dir_fsync(backups_dir) == -1)
		die("%s: %s", backups_dir, strerror(errno));
	say("deleted %s%s%s", b->id, b->remote[0] ? "; its remote copy stays at " : "",
	    b->remote);
	backups_free(list, n);
	close(lockfd);
	return 0;
}

static int
cmd_upload(const char *id)
{
	struct backup *list, *b;
	char err[1024];
	size_t n;
	int lockfd;

	if (opt.to == NULL)
		usage_error("upload: where to? give --to s3://BUCKET/PREFIX or an http(s) URL");
	remote_check(opt.to);
	lockfd = backups_lock();
	list = backups_load(&n);
	b = backup_find(list, n, id);
	if (upload(b, opt.to, opt.endpoint, err, sizeof(err)) == -1)
		die("%s", err);
	backups_free(list, n);
	close(lockfd);
	return 0;
}

/*
 * Take a backup back from the remote store onto this host (a new one, say):
 * fetch the meta file that upload put beside the data and record it here.
 * The data stays remote until verify, restore or download fetch it.
 */
static int
cmd_import(const char *location)
{
	struct remote r;
	struct request q;
	struct backup b, *list;
	char metaloc[4096], path[PATH_MAX], name[64], v[64];
	const char *dash, *dot;
	size_t n, i;
	long num;
	int lockfd, same;

	if (location == NULL)
		usage_error("import: where from? give the remote location list showed, e.g. s3://BUCKET/PREFIX/APP-b001.dump");
	/* APP-bNNN.EXT (the data) or APP-bNNN.meta: the meta is beside it */
	snprintf(metaloc, sizeof(metaloc), "%s", location);
	dash = strrchr(metaloc, '-');
	dot = dash != NULL ? strchr(dash, '.') : NULL;
	if (dot == NULL || strchr(dash, '/') != NULL ||
	    (size_t)(dot - dash - 1) >= sizeof(name))
		die("import %s: not a backup's location (NAME-bNNN.ext)", location);
	snprintf(name, sizeof(name), "%.*s", (int)(dot - dash - 1), dash + 1);
	if (id_parse(name, &num) == -1)
		die("import %s: not a backup's location (NAME-bNNN.ext)", location);
	if (dot - metaloc + 6 > (int)sizeof(metaloc))
		die("import %s: too long", location);
	strcpy((char *)dot, ".meta");
	remote_parse(metaloc, NULL, opt.endpoint, &r);
	if (r.s3)
		remote_check(metaloc);
	request_init(&q, "GET", &r, NULL);
	if (http_do(&r, &q) == -1)
		die("import: fetching %s: %s", r.location, q.error);
	if (strlen(q.resp) != q.resp_len || q.resp_len == RESP_MAX)
		die("import: %s is not a meta file", r.location);
	memset(&b, 0, sizeof(b));
	if ((b.meta = strdup(q.resp)) == NULL)
		die("out of memory");
	meta_fill(&b);
	if (kv_get(b.meta, "id", b.id, sizeof(b.id)) == -1 ||
	    id_parse(b.id, &b.num) == -1 || b.num != num ||
	    b.sha256[0] == '\0' || b.size <= 0 || b.remote[0] == '\0' ||
	    strncmp(b.file, b.id, strlen(b.id)) != 0 ||
	    b.file[strlen(b.id)] != '.' || strchr(b.file, '/') != NULL ||
	    (strcmp(b.type, "postgres") != 0 && strcmp(b.type, "sqlite") != 0 &&
	    strcmp(b.type, "cmd") != 0))
		die("import: %s is not a dyno-backup meta file for %s", r.location,
		    location);
	if (opt.endpoint != NULL)
		meta_set(&b, "remote_endpoint", opt.endpoint);
	iso_utc((long long)time(NULL), v, sizeof(v));
	meta_set(&b, "imported", v);
	lockfd = backups_lock();
	list = backups_load(&n);
	for (i = 0; i < n && list[i].num != b.num; i++)
		;
	same = i < n && strcmp(list[i].sha256, b.sha256) == 0;
	backups_free(list, n);
	if (i < n) {
		free(b.meta);
		if (same)
			die("%s is already here", b.id);
		die("%s here is another backup; import into another app directory",
		    b.id);
	}
	/* IDs stay unique here: the next capture comes after it. */
	if (next_num() <= b.num)
		seq_save(b.num);
	snprintf(name, sizeof(name), "%s.meta", b.id);
	path_in(path, sizeof(path), backups_dir, name);
	if (atomicfile_write(path, b.meta, strlen(b.meta), 0600, 1) == -1)
		die("%s: %s", path, strerror(errno));
	say("imported %s (%s, %lld bytes) from %s; its data stays at %s",
	    b.id, b.type, b.size, r.location, b.remote);
	free(b.meta);
	close(lockfd);
	return 0;
}

/* ---- prune -------------------------------------------------------------- */

/*
 * Retention, as borg and restic count it: walking the scheduled backups
 * newest first, keep the newest of each calendar day for the newest
 * KEEP_DAILY days; then, walking them again, the newest of each ISO week
 * for KEEP_WEEKLY weeks, where a week whose newest backup is already kept
 * does not count.  The newest KEEP_MANUAL manual backups, and the newest
 * completed backup of all, are kept too.  Corrupt backups keep nothing.
 */
static void
keep_periods(struct backup *list, size_t n, char *keep, int weekly, long count)
{
	char last[16] = "", period[16];
	struct tm tm;
	time_t t;
	long kept = 0;
	size_t i;

	for (i = n; i-- > 0 && kept < count;) {
		if (strcmp(list[i].kind, "scheduled") != 0 ||
		    strcmp(list[i].status, "completed") != 0)
			continue;
		t = (time_t)list[i].created;
		localtime_r(&t, &tm);
		strftime(period, sizeof(period), weekly ? "%G-%V" : "%Y-%m-%d", &tm);
		if (strcmp(period, last) == 0)
			continue;
		snprintf(last, sizeof(last), "%s", period);
		if (keep[i])
			continue;
		keep[i] = weekly ? 'w' : 'd';
		kept++;
	}
}

/* The sort order of backups is by ID, which is also by capture time; but a
 * faked or stepped clock may disagree, so retention sorts by time. */
static int
created_cmp(const void *a, const void *b)
{
	const struct backup *x = a, *y = b;

	if (x->created != y->created)
		return x->created < y->created ? -1 : 1;
	return backup_cmp(a, b);
}

static int
cmd_prune(void)
{
	struct backup *list;
	char path[PATH_MAX], state[1024], status[16], *keep;
	long manual = 0;
	size_t n, i, gone = 0;
	int lockfd;

	lockfd = backups_lock();
	path_in(path, sizeof(path), backups_dir, ".last-capture");
	if (!opt.force && file_read(path, state, sizeof(state)) > 0 &&
	    kv_get(state, "status", status, sizeof(status)) == 0 &&
	    strcmp(status, "ok") != 0) {
		char at[40] = "";
		kv_get(state, "at", at, sizeof(at));
		die("the last capture (%s) %s; not pruning until one succeeds (--force prunes anyway)",
		    at, strcmp(status, "running") == 0 ? "was stopped before it finished" :
		    "failed");
	}
	list = backups_load(&n);
	if (n > 1)
		qsort(list, n, sizeof(*list), created_cmp);
	if ((keep = calloc(n + 1, 1)) == NULL)
		die("out of memory");
	keep_periods(list, n, keep, 0, opt.keep_daily);
	keep_periods(list, n, keep, 1, opt.keep_weekly);
	for (i = n; i-- > 0;)
		if (strcmp(list[i].kind, "manual") == 0 &&
		    strcmp(list[i].status, "completed") == 0 &&
		    manual < opt.keep_manual) {
			keep[i] = 'm';
			manual++;
		}
	for (i = n; i-- > 0;)
		if (strcmp(list[i].status, "completed") == 0) {
			if (!keep[i])
				keep[i] = 'n';	/* the newest good one, always */
			break;
		}
	for (i = 0; i < n; i++) {
		if (keep[i])
			continue;
		if (opt.dry_run) {
			printf("would delete %s (%s, %s)\n", list[i].id,
			    list[i].kind, list[i].status);
			continue;
		}
		remove_backup(&list[i]);
		say("deleted %s (%s, %s)", list[i].id, list[i].kind,
		    list[i].status);
		gone++;
	}
	if (gone > 0 && dir_fsync(backups_dir) == -1)
		die("%s: %s", backups_dir, strerror(errno));
	free(keep);
	backups_free(list, n);
	close(lockfd);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- schedule ----------------------------------------------------------- */

/* A word for a crontab line: as is when safe, else in single quotes. */
static void
shell_word(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	if (*s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:,@+") == strlen(s)) {
		snprintf(out, outlen, "%s", s);
		return;
	}
	out[o++] = '\'';
	for (; *s != '\0' && o + 6 < outlen; s++) {
		if (*s == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else if (*s == '%') {
			/* cron turns a bare % into a newline */
			memcpy(out + o, "\\%", 2);
			o += 2;
		} else
			out[o++] = *s;
	}
	out[o++] = '\'';
	out[o] = '\0';
}

static int
cmd_schedule(void)
{
	const char *at = opt.at != NULL ? opt.at : "02:00";
	char self[PATH_MAX], w[8192], line[16384];
	long hh, mm;
	ssize_t len;
	int o;

	if (strlen(at) != 5 || at[2] != ':' || !isdigit((unsigned char)at[0]) ||
	    !isdigit((unsigned char)at[1]) || !isdigit((unsigned char)at[3]) ||
	    !isdigit((unsigned char)at[4]))
		usage_error("--at %s: give the time as HH:MM, e.g. 02:30", at);
	hh = (at[0] - '0') * 10 + at[1] - '0';
	mm = (at[3] - '0') * 10 + at[4] - '0';
	if (hh > 23 || mm > 59)
		usage_error("--at %s: no such time of day", at);
	if (opt.db != NULL)
		usage_error("schedule: --db would put the password in the crontab; set DATABASE_URL with dyno-deploy config:set instead");
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		snprintf(self, sizeof(self), "dyno-backup");
	else
		self[len] = '\0';
	o = snprintf(line, sizeof(line), "%ld %ld * * * ", mm, hh);
	/* /etc/cron.d and /etc/crontab lines name the user; crontab -e's do not. */
	if (opt.cron_user != NULL) {
		const char *u = opt.cron_user;
		if (*u == '\0' || *u == '-' || strspn(u, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(u) ||
		    strlen(u) > 32)
			usage_error("--user %s: not a user name", u);
		if (getpwnam(u) == NULL)
			usage_error("--user %s: no such user", u);
		o += snprintf(line + o, sizeof(line) - (size_t)o, "%s ", u);
	}
	shell_word(self, w, sizeof(w));
	o += snprintf(line + o, sizeof(line) - (size_t)o, "%s -a ", w);
	shell_word(app.dir, w, sizeof(w));
	o += snprintf(line + o, sizeof(line) - (size_t)o, "%s capture --scheduled", w);
	if (opt.cmd != NULL) {
		shell_word(opt.cmd, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --cmd %s", w);
	}
	if (opt.to != NULL) {
		shell_word(opt.to, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --to %s", w);
	}
	if (opt.encrypt_to != NULL) {
		shell_word(opt.encrypt_to, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --encrypt-to %s", w);
	}
	if (opt.endpoint != NULL) {
		shell_word(opt.endpoint, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --endpoint %s", w);
	}
	if (opt.keep_daily != 7)
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --keep-daily %ld", opt.keep_daily);
	if (opt.keep_weekly != 4)
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --keep-weekly %ld", opt.keep_weekly);
	if (opt.keep_manual != 10)
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --keep-manual %ld", opt.keep_manual);
	if ((size_t)o >= sizeof(line))
		die("schedule: the line is too long");
	printf("%s\n", line);
	return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- main --------------------------------------------------------------- */

static long
count_arg(const char *name, const char *s)
{
	long v;

	if (parse_long(s, 0, 100000, &v) == -1)
		usage_error("%s %s: not a count", name, s);
	return v;
}

int
main(int argc, char **argv)
{
	enum { O_DB = 256, O_CMD, O_SCHEDULED, O_TO, O_ENDPOINT, O_MULTIPART,
	    O_RETRY, O_REMOTE, O_CONFIRM, O_DAILY, O_WEEKLY, O_MANUAL, O_DRY,
	    O_FORCE, O_AT, O_ENCRYPT, O_USER, O_TRANSFER };
	static const struct option longopts[] = {
		{ "app", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "db", required_argument, NULL, O_DB },
		{ "cmd", required_argument, NULL, O_CMD },
		{ "scheduled", no_argument, NULL, O_SCHEDULED },
		{ "to", required_argument, NULL, O_TO },
		{ "endpoint", required_argument, NULL, O_ENDPOINT },
		{ "multipart-size", required_argument, NULL, O_MULTIPART },
		{ "retry", required_argument, NULL, O_RETRY },
		{ "transfer-timeout", required_argument, NULL, O_TRANSFER },
		{ "remote", no_argument, NULL, O_REMOTE },
		{ "confirm", required_argument, NULL, O_CONFIRM },
		{ "keep-daily", required_argument, NULL, O_DAILY },
		{ "keep-weekly", required_argument, NULL, O_WEEKLY },
		{ "keep-manual", required_argument, NULL, O_MANUAL },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "force", no_argument, NULL, O_FORCE },
		{ "at", required_argument, NULL, O_AT },
		{ "user", required_argument, NULL, O_USER },
		{ "encrypt-to", required_argument, NULL, O_ENCRYPT },
		{ NULL, 0, NULL, 0 },
	};
	const char *appdir = NULL, *cmd, *arg1, *arg2, *slash;
	struct sigaction sa;
	long kb;
	int c, rc, nargs;

	while ((c = getopt_long(argc, argv, "a:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'a': appdir = optarg; break;
		case 'v': opt.verbose = 1; break;
		case 'h': help(); return 0;
		case O_DB:
			if ((opt.db = strdup(optarg)) == NULL)
				die("out of memory");
			break;
		case O_CMD: opt.cmd = optarg; break;
		case O_SCHEDULED: opt.scheduled = 1; break;
		case O_TO: opt.to = optarg; break;
		case O_ENDPOINT: opt.endpoint = optarg; break;
		case O_MULTIPART:
			if (parse_size_kb(optarg, &kb) == -1 || kb < 5 * 1024)
				usage_error("--multipart-size %s: give a size of at least 5M (S3's smallest part)",
				    optarg);
			opt.multipart = (long long)kb * 1024;
			break;
		case O_RETRY: opt.retries = count_arg("--retry", optarg); break;
		case O_TRANSFER:
			if (parse_duration_ms(optarg, &opt.transfer_ms) == -1 ||
			    opt.transfer_ms <= 0)
				usage_error("--transfer-timeout %s: not a duration",
				    optarg);
			break;
		case O_REMOTE: opt.remote = 1; break;
		case O_CONFIRM: opt.confirm = optarg; break;
		case O_DAILY: opt.keep_daily = count_arg("--keep-daily", optarg); break;
		case O_WEEKLY: opt.keep_weekly = count_arg("--keep-weekly", optarg); break;
		case O_MANUAL: opt.keep_manual = count_arg("--keep-manual", optarg); break;
		case O_DRY: opt.dry_run = 1; break;
		case O_FORCE: opt.force = 1; break;
		case O_AT: opt.at = optarg; break;
		case O_USER: opt.cron_user = optarg; break;
		case O_ENCRYPT:
			if (*optarg == '\0' || *optarg == '-' ||
			    strchr(optarg, '\n') != NULL)
				usage_error("--encrypt-to %s: give a gpg key (ID, fingerprint or e-mail)",
				    optarg);
			opt.encrypt_to = optarg;
			break;
		default: usage(stderr); return 2;
		}
	}
	scrub_argv(argc, argv);
	nargs = argc - optind;
	if (nargs < 1)
		usage_error("which command? capture, list, info, verify, restore, download, delete, prune, upload, import or schedule");
	cmd = argv[optind];
	arg1 = nargs > 1 ? argv[optind + 1] : NULL;
	arg2 = nargs > 2 ? argv[optind + 2] : NULL;
	if (app_init(&app, appdir) == -1)
		die("app directory %s: %s", appdir ? appdir : ".", strerror(errno));
	slash = strrchr(app.dir, '/');
	snprintf(app_name, sizeof(app_name), "%s", slash != NULL && slash[1] ?
	    slash + 1 : "app");
	if (app_path(&app, backups_dir, sizeof(backups_dir), "backups") == -1)
		die("app directory: %s", strerror(errno));
	umask(077);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	atexit(cleanup_tmp);
	curl_global_init(CURL_GLOBAL_DEFAULT);

#define MAXARGS(k) do { if (nargs > (k) + 1) \
	usage_error("%s: unexpected argument %s", cmd, argv[optind + (k) + 1]); } while (0)
	if (strcmp(cmd, "capture") == 0) {
		MAXARGS(0);
		rc = cmd_capture();
	} else if (strcmp(cmd, "list") == 0) {
		MAXARGS(0);
		rc = cmd_list();
	} else if (strcmp(cmd, "info") == 0) {
		MAXARGS(1);
		rc = cmd_info(arg1);
	} else if (strcmp(cmd, "verify") == 0) {
		MAXARGS(1);
		rc = cmd_verify(arg1);
	} else if (strcmp(cmd, "restore") == 0) {
		MAXARGS(1);
		rc = cmd_restore(arg1);
	} else if (strcmp(cmd, "download") == 0) {
		MAXARGS(2);
		/* "download FILE" with one argument that is not an ID */
		if (arg1 != NULL && arg2 == NULL && strcmp(arg1, "latest") != 0 &&
		    !(arg1[0] == 'b' && isdigit((unsigned char)arg1[1]))) {
			arg2 = arg1;
			arg1 = NULL;
		}
		rc = cmd_download(arg1, arg2);
	} else if (strcmp(cmd, "delete") == 0) {
		MAXARGS(1);
		rc = cmd_delete(arg1);
	} else if (strcmp(cmd, "prune") == 0) {
		MAXARGS(0);
		rc = cmd_prune();
	} else if (strcmp(cmd, "upload") == 0) {
		MAXARGS(1);
		rc = cmd_upload(arg1);
	} else if (strcmp(cmd, "import") == 0) {
		MAXARGS(1);
		rc = cmd_import(arg1);
	} else if (strcmp(cmd, "schedule") == 0) {
		MAXARGS(0);
		rc = cmd_schedule();
	} else
		usage_error("unknown command: %s", cmd);
	free(opt.db);
	curl_global_cleanup();
	return rc;
}
