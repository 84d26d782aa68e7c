/*
 * libdyno: the small modules the dyno programs share.  Each program links
 * this library statically; the programs never link to each other.  Every
 * function returns 0 (or a value >= 0) on success and -1 with errno set on
 * failure; none of them exits.
 */
#ifndef DYNO_H
#define DYNO_H

#include <dirent.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

struct app;

#define DYNO_NAME_MAX 64	/* "web", "worker" ... and "web.12" */
#define DYNO_ERR_MAX 512	/* room for "file:line: message" */
#define PROCTYPE_NAME_MAX 48	/* a type name leaves room for ".N" */

/* clock.c: the monotonic clock, in milliseconds. */
int64_t clock_ms(void);

/* retry.c: one policy for trying an HTTP request again (curl's --retry). */
struct retry {
	long made, max;		/* retries made; allowed after the first try */
	long wait_ms, cap_ms;	/* the next backoff; no wait longer */
};
void retry_init(struct retry *r, long max_retries, long cap_ms);
int retry_worth(int transient, long status);	/* may asking again help? */
long retry_after_parse(const char *value, time_t now);	/* seconds; -1 */
long retry_next(struct retry *r, long retry_after);	/* ms to wait; -1: no more */

/* strings.c: small parsers that never accept garbage. */
int parse_long(const char *s, long min, long max, long *out);
int parse_duration_ms(const char *s, int64_t *out);	/* "30", "30s", "250ms", "5m", "2h" */
int parse_size_kb(const char *s, long *out);		/* "512", "512M", "1G", "64K" (default MB) */
int name_valid(const char *s);			/* [A-Za-z0-9_-]+, at most 63 bytes */

/* log.c: Heroku's log line: "2026-11-26T02:30:00.123456+00:00 heroku[web.1]: text". */
size_t log_timestamp(char *buf, size_t len);
void log_event(FILE *fp, const char *source, const char *dyno,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_raw(FILE *fp, const char *source, const char *dyno,
    const char *text, size_t len);

/* atomicfile.c: temp file in the same folder, fsync, rename (+ fsync dir). */
int dir_fsync(const char *dir);	/* the names in it last; -1 with errno */
int dir_fsync_at(int dirfd, const char *dir);
int atomicfile_write(const char *path, const void *data, size_t len,
    mode_t mode, int durable);
int atomicfile_writeat(int dirfd, const char *name, const void *data,
    size_t len, mode_t mode, int durable);	/* name relative to dirfd */
int file_read(const char *path, char *buf, size_t len);	/* NUL-terminated; returns length */
int file_read_fd(int fd, char *buf, size_t len);	/* file_read of fd; closes it */
int file_read_alloc(const char *path, char **out, size_t *outlen, size_t max);
int file_read_alloc_fd(int fd, char **out, size_t *outlen, size_t max);	/* closes fd */
int file_read_beneath(int dirfd, const char *name, char **out, size_t *outlen,
    size_t max);	/* untrusted tree: no symlink out of it, regular files only */
int file_read_in(const char *path, char **out, size_t *outlen, size_t max);	/* file_read_beneath its own folder */
const char *file_read_error(int err);	/* why one of those two failed */
int mkdir_mode(const char *path, mode_t mode);	/* mkdir, or fix the mode if it exists */
int mkdir_modeat(int dirfd, const char *path, mode_t mode);

/* kv.c: "key=value" lines, one fact a line. */
int kv_get(const char *text, const char *key, char *out, size_t outlen);
int kv_get_long(const char *text, const char *key, long *out);

/* procfile.c: "NAME: command" lines. */
struct proctype {
	char name[DYNO_NAME_MAX];
	char *command;
};
struct procfile {
	struct proctype *types;
	size_t ntypes;
};
int procfile_parse(const char *text, size_t len, const char *filename,
    struct procfile *pf, char *err, size_t errlen);
int procfile_load(const char *path, struct procfile *pf, char *err,
    size_t errlen);
const struct proctype *procfile_find(const struct procfile *pf,
    const char *name);
void procfile_free(struct procfile *pf);

/* formation.c: "TYPE=COUNT" lines, and the TYPE=N / TYPE+N / TYPE-N arguments. */
#define FORMATION_MAX 64
struct formation {
	struct {
		char type[DYNO_NAME_MAX];
		long count;
	} entries[FORMATION_MAX];
	size_t n;
};
int formation_parse(const char *text, size_t len, const char *filename,
    struct formation *f, char *err, size_t errlen);
int formation_load(const struct app *a, struct formation *f, char *err,
    size_t errlen);
int formation_save(const struct app *a, const struct formation *f);
long formation_get(const struct formation *f, const char *type);	/* -1 if absent */
int formation_set(struct formation *f, const char *type, long count);
int formation_apply_arg(struct formation *f, const char *arg,
    const struct procfile *pf, long max, char *err, size_t errlen);
void formation_default(struct formation *f, const struct procfile *pf);

/* env.c: environments built from config vars, .env files and the process's own. */
struct env {
	char **vars;		/* "KEY=VALUE", NULL-terminated */
	size_t n, cap;
};
int env_init(struct env *e, char **base);
int env_set(struct env *e, const char *key, const char *value);
int env_unset(struct env *e, const char *key);
const char *env_get(const struct env *e, const char *key);
int env_load_config(struct env *e, const char *path, char *err, size_t errlen);
int env_load_config_at(struct env *e, int dirfd, const char *name,
    const char *path, char *err, size_t errlen);	/* path: for messages */
int env_load_dotenv(struct env *e, const char *path, char *err, size_t errlen);
int env_parse_config(struct env *e, const char *text, size_t len,
    const char *filename, char *err, size_t errlen);
int env_parse_dotenv(struct env *e, const char *text, size_t len,
    const char *filename, char *err, size_t errlen);
char *env_format_config(const struct env *e, size_t *len);	/* malloc'd */
int env_copy(struct env *dst, const struct env *src);
void env_free(struct env *e);
int key_valid(const char *key, size_t len);

/* selfpipe.c: signals become bytes on a pipe the event loop polls. */
int selfpipe_open(const int *signals, size_t n);	/* returns the read fd */
int selfpipe_read(int *sig);				/* 1 with *sig, 0 when drained */

/* spawn.c: a dyno process in its own session. */
struct spawn_opts {
	const char *command;	/* plain words exec'd, else /bin/sh -c */
	char *const *argv;	/* instead of command: exec'd as is (PATH) */
	char **envp;
	const char *dir;
	int in_fd, out_fd, err_fd;	/* -1: /dev/null */
	int new_session;
	uid_t uid;
	gid_t gid;
	const char *user;	/* non-NULL: initgroups, setgid, setuid */
	long nofile;		/* 0: leave RLIMIT_NOFILE alone */
	const char *cgroup_procs;	/* non-NULL: join this cgroup v2 first */
	int pdeathsig;		/* non-zero: sent to the child when we die */
	int setid_ok;		/* set-id programs may gain privileges (an
				 * operator's hook that mails through a setgid
				 * sendmail); else no_new_privs */
};
pid_t spawn_process(const struct spawn_opts *o);
void signals_reset(void);

/* proc.c: what /proc says about processes. */
int proc_starttime(pid_t pid, unsigned long long *start);
int proc_alive(pid_t pid, unsigned long long start);	/* 1 if pid still is that process */
int proc_uid(pid_t pid, uid_t *uid);	/* its one uid, or -1 (EPERM: mixed) */
pid_t proc_session(pid_t pid);	/* its session id, or -1 */
/*
 * A dyno, as proc.c proves its processes: in its session, below it, or
 * orphaned from it, AND every uid the dynos' uid, AND started no earlier
 * than its first process.  Nothing else is counted or signalled.
 */
struct proc_dyno {
	pid_t sid;		/* the dyno's first process: its session id */
	unsigned long long start;	/* that process's start (stat field 22) */
	uid_t uid;		/* the uid dyno-run gives its dynos */
	int adopted;		/* not our child: look in all of /proc */
};
struct proc_sample {
	struct proc_dyno dyno;
	long mem_kb;		/* PSS summed over the dyno's processes */
	int nprocs;
};
int proc_sample_dynos(struct proc_sample *s, size_t n, int memory);
/* Signal every process of the dyno; *refused (if not NULL): how many in its
 * session or below it were not signalled, being another uid's or older. */
int proc_dyno_kill(const struct proc_dyno *d, int sig, int *refused);
int proc_become_subreaper(void);

/* sock.c: a connect that met itself (nothing listens on the port). */
int sock_is_self(int fd);	/* 1 yes, 0 no, -1 not connected */

/* pidfd.c: watch a process that is not our child. */
int pidfd_watch(pid_t pid);		/* -1 with ENOSYS where unsupported */

/* notify.c: systemd's NOTIFY_SOCKET, without libsystemd. */
int notify_send(const char *msg);

/* lock.c: the flock that makes one supervisor per app. */
/* Each path relative to dirfd (AT_FDCWD: as open(2)), never a symlink. */
int lock_take(int dirfd, const char *path, pid_t *holder);	/* fd, or -1 (EWOULDBLOCK: *holder) */
int pidfile_lock(int dirfd, const char *path);	/* our pid, locked while the fd is open */
pid_t pidfile_holder(int dirfd, const char *path);	/* its pid while locked, else 0 */
void pidfile_release(int dirfd, const char *path, int fd);	/* at exit: remove or empty */

/* http.c: strict HTTP/1.x heads and chunked framing, for the router. */
#define HTTP_LINE_MAX 8192	/* request line, each header line (414 / 431) */
#define HTTP_NAME_MAX 1000	/* a header name (431) */
#define HTTP_HEADERS_MAX 100	/* header lines (431) */
#define HTTP_HEAD_MAX 65536	/* the whole head */
struct http_header {
	const char *name, *value;
	size_t name_len, value_len, line_len;
};
struct http_msg {
	const char *method, *target, *host;
	size_t method_len, target_len, host_len, head_len;
	const char *path;	/* the target in origin-form, for the dyno */
	size_t path_len;
	int host_from_target;	/* absolute-form: host is its authority */
	int minor, status, error;
	int64_t content_length;	/* -1: none */
	int chunked, has_te, keep_alive;
	int conn_close, conn_keepalive, conn_upgrade;
	struct http_header headers[HTTP_HEADERS_MAX];
	size_t nheaders;
};
struct chunked {
	int state, digits;
	uint64_t size, left;
	size_t line_len;	/* of the chunk line, or the trailer section */
};
int http_parse_request(const char *buf, size_t len, struct http_msg *m);
int http_parse_response(const char *buf, size_t len, struct http_msg *m);
int http_token_eq(const char *s, size_t len, const char *word);
int http_host_valid(const char *h, size_t len);	/* uri-host [":" port] */
int http_list_has(const char *v, size_t len, const char *word);
int http_list_has_n(const char *v, size_t len, const char *word, size_t wlen);
void http_connection_headers(const struct http_msg *m, int *conn,
    size_t max);	/* indexes of Connection headers, ended by -1 */
int http_hop_by_hop(const struct http_header *h, const struct http_msg *m,
    const int *conn);	/* a field a proxy drops */
void chunked_init(struct chunked *c);
ssize_t chunked_feed(struct chunked *c, const char *buf, size_t len,
    const char **data, size_t *datalen);	/* bytes taken; one data span */
int chunked_done(const struct chunked *c);

/* poller.c: readiness for many fds (epoll on Linux, poll elsewhere). */
#define POLLER_IN 1
#define POLLER_OUT 2
struct poller_event {
	void *data;
	int events;	/* POLLER_IN | POLLER_OUT, plus errors as both */
};
struct poller;
struct poller *poller_new(void);
int poller_set(struct poller *p, int fd, int events, void *data);	/* add or change; 0 events keeps it registered idle */
int poller_del(struct poller *p, int fd);
int poller_wait(struct poller *p, struct poller_event *ev, int max, int timeout_ms);
void poller_free(struct poller *p);

/* watch.c: notice a file in a folder being replaced (inotify on Linux). */
int watch_open(const char *dir);		/* fd to poll, or -1 */
int watch_changed(int fd, const char *name);	/* 1 if name changed since last call */

/* sha256.c: checksums of releases and slugs. */
struct sha256 {
	uint32_t h[8];
	uint64_t len;
	unsigned char buf[64];
	size_t fill;
};
void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t n);
void sha256_hex(struct sha256 *s, char out[65]);

/* md5.c: only to check S3 ETags. */
struct md5 {
	uint32_t h[4];
	uint64_t len;
	unsigned char buf[64];
	size_t fill;
};
void md5_init(struct md5 *m);
void md5_update(struct md5 *m, const void *data, size_t n);
void md5_final(struct md5 *m, unsigned char out[16]);

/* dburl.c: DATABASE_URL for dyno-backup; passwords kept out of argv. */
enum { DBURL_POSTGRES = 1, DBURL_SQLITE };
struct dburl {
	int type;
	char url[4096];		/* postgres: without the password */
	char password[1024];	/* postgres: for PGPASSWORD */
	char redacted[4096];	/* for meta files and messages: password "***" */
	char path[4096];	/* sqlite: absolute */
};
int dburl_parse(const char *url, const char *basedir, struct dburl *db,
    char *err, size_t errlen);
int xml_tag(const char *xml, const char *tag, char *out, size_t outlen);	/* <tag>text</tag> */

/* rand.c: fast non-cryptographic randomness seeded from the kernel. */
uint64_t rand_next(void);
void rand_seed(void);	/* again after fork */
void rand_uuid(char out[37]);

/* dynos.c: the supervisor's run/dynos/NAME files, as readers see them. */
struct dyno_info {
	char name[DYNO_NAME_MAX], type[DYNO_NAME_MAX], state[16], release[32];
	char command[1024];
	long pid, port, rss_kb, restarts, index;
	long long started, next_start;
};
long dyno_name_index(const char *name, const char *type);	/* TYPE.N: N, else -1 */
int dynos_list(const struct app *a, struct dyno_info **out, size_t *n);
int routes_has(const struct app *a, const char *name);
int route_parse(const char *line, size_t len, char *name, size_t namelen,
    char *addr, size_t addrlen);	/* "NAME HOST:PORT" */
/* The last line of run/routes: what the supervisor says of the web dynos. */
struct web_status {
	long want;		/* web dynos in the formation */
	long starting;		/* started, not yet bound to their port */
	long crashed;		/* exited, waiting for their restart */
	long long restart;	/* epoch ms of the soonest such restart, or 0 */
};
#define WEB_STATUS_COUNT_MAX 1000000
int web_status_parse(const char *line, size_t len, struct web_status *st);
int web_status_format(char *buf, size_t size, const struct web_status *st);

/* control.c: one line to the supervisor's FIFO (ENXIO: none is reading). */
int control_send(const struct app *a, const char *line);
struct control_lines {		/* the supervisor's side: bytes to lines */
	char buf[4096];
	size_t len;
	int overlong;		/* in a line too long to keep: drop it all */
};
void control_lines_feed(struct control_lines *cl, const char *data, size_t n,
    void (*fn)(char *line, void *arg), void *arg);
enum { CONTROL_RELOAD = 1, CONTROL_RESTART, CONTROL_STOP };
int control_parse(char *line, const char **arg);	/* a verb, or -1 */

/* app.c: the app directory and its .dyno state folder. */
struct app {
	char dir[4096];
	char state[4096];	/* APP/.dyno, for messages and for other programs */
	int fd;			/* APP/.dyno opened once, checked; -1: none yet */
	char why[8400];		/* a one-line reason app_init or app_prepare failed */
};
int app_init(struct app *a, const char *dir);	/* opens .dyno if there is one */
int app_prepare(struct app *a);	/* make .dyno, run/, run/dynos ... with their modes */
/* Files under .dyno by their names in it (run/lock), relative to a->fd,
 * never through a symlink at the last name. */
const char *app_rel(const struct app *a, const char *path);	/* NULL: not under .dyno */
int app_openat(const struct app *a, const char *rel, int flags, mode_t mode);
int app_unlinkat(const struct app *a, const char *rel);
int app_mkfifoat(const struct app *a, const char *rel, mode_t mode);
int app_lstat(const struct app *a, const char *rel, struct stat *st);
DIR *app_opendir(const struct app *a, const char *rel);
int app_read(const struct app *a, const char *rel, char *buf, size_t len);
int app_write(const struct app *a, const char *rel, const void *data,
    size_t len, mode_t mode, int durable);
int app_path(const struct app *a, char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int app_release(const struct app *a, char *version, size_t vlen,
    char *dir, size_t dlen);	/* 0: release found; 1: dev mode */
pid_t app_supervisor_pid(const struct app *a);	/* 0 if none */
int app_safe_for(const struct app *a, const char *user, uid_t uid, gid_t gid,
    char *why, size_t whylen);	/* can user not replace .dyno?  0 yes */

#endif
