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
#include "backup.h"

struct app app;
char backups_dir[PATH_MAX], app_name[256];
struct backup_opts opt = {
	NULL, NULL, NULL, NULL, NULL, NULL, NULL,
	NULL,
	0, 0, 0, 0, 0,
	7, 4, 10, 5,
	64LL << 20,
	3600 * 1000,
};

/* Temp files this run made and has not published: removed at exit. */
char tmp_paths[TMPS_MAX][PATH_MAX];
volatile sig_atomic_t interrupted;
volatile pid_t current_child;
/* A capture is under way: any failure is recorded for prune. */
int capturing;

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

void
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

void
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

void
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

void
path_in(char *buf, size_t len, const char *dir, const char *name)
{
	if (snprintf(buf, len, "%s/%s", dir, name) >= (int)len)
		die("path too long: %s/%s", dir, name);
}

void
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
void
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

void
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

void
check_interrupted(void)
{
	if (interrupted)
		die("interrupted; nothing was published");
}

/* The clock, or DYNO_BACKUP_NOW (unix seconds) for tests of retention. */
long long
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

void
iso_utc(long long t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void
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
int
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

int
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
		die("%s", app.why);
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

