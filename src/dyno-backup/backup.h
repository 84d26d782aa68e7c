/*
 * backup.h: what the files of dyno-backup share: the options, the
 * backups folder, temp files, and each file's functions that the others
 * call.  See main.c.
 */
#ifndef BACKUP_H
#define BACKUP_H

#include <curl/curl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <sys/types.h>

#include "dyno.h"

#define META_MAX (64 * 1024)
#define ERRTAIL 2048		/* the end of a child's stderr, for the one-line error */
#define IO_BUF (256 * 1024)
#define RESP_MAX (256 * 1024)	/* an S3 answer body we read (XML) */
#define PARTS_MAX 10000		/* S3's limit on multipart parts */
#define DB_CMD 3	/* beside DBURL_POSTGRES and DBURL_SQLITE */
#define TMPS_MAX 8

struct backup_opts {
	char *db;
	const char *cmd, *to, *endpoint, *confirm, *at, *encrypt_to;
	const char *cron_user;
	int scheduled, verbose, remote, dry_run, force;
	long keep_daily, keep_weekly, keep_manual, retries;
	long long multipart;
	int64_t transfer_ms;
};

extern struct app app;
extern char backups_dir[PATH_MAX], app_name[256];
extern struct backup_opts opt;
extern char tmp_paths[TMPS_MAX][PATH_MAX];
extern volatile sig_atomic_t interrupted;
extern volatile pid_t current_child;
extern int capturing;

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

struct remote {
	int s3;
	char bucket[256], key[2048];	/* s3 */
	char url[4096];			/* the object's URL */
	char location[4096];		/* s3://bucket/key or the URL */
	char endpoint[1024];
	char sigv4[128];
};

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

/* main.c */
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void path_in(char *buf, size_t len, const char *dir, const char *name);
void tmp_add(const char *path);
void tmp_done(const char *path, int remove);
void cleanup_tmp(void);
void check_interrupted(void);
long long now_unix(void);
void iso_utc(long long t, char *buf, size_t len);
void human_size(long long n, char *buf, size_t len);
int in_path(const char *name);
int write_all(int fd, const void *p, size_t n);

/* store.c */
int id_parse(const char *s, long *num);
void id_format(long num, char *buf, size_t len);
void meta_fill(struct backup *b);
struct backup *backups_load(size_t *np);
void backups_free(struct backup *list, size_t n);
struct backup *backup_find(struct backup *list, size_t n, const char *id);
void meta_set(struct backup *b, const char *key, const char *value);
void meta_save(const struct backup *b);
void data_path(const struct backup *b, char *buf, size_t len);
int backups_lock(void);
long next_num(void);
void seq_save(long num);
void last_capture(const char *status, const char *error);
int cmd_list(void);
int cmd_info(const char *id);
int cmd_delete(const char *id);
int cmd_prune(void);

/* capture.c */
int cmd_capture(void);

/* check.c */
int range_sums(int fd, long long off, long long len, char sha[65],
    unsigned char md5[16]);
int file_sha256(const char *path, char out[65], long long *size);
int decompress_to(const char *src, const char *dst, char *err, size_t errlen);
int sqlite_check(const char *file, char *err, size_t errlen);
int readable(const char *type, const char *file, char *err, size_t errlen);
int decrypt_to(const struct backup *b, const char *path, char *out,
    size_t outlen, char *err, size_t errlen);
int cmd_verify(const char *id);

/* restore.c */
int cmd_restore(const char *id);
int cmd_download(const char *id, const char *dest);

/* remote.c */
void remote_check(const char *to);
void hex(const unsigned char *p, size_t n, char *out);
int upload(struct backup *b, const char *to, const char *endpoint,
    char *err, size_t errlen);
void backup_source(struct backup *b, char *path, size_t len, int *fetched);
int cmd_upload(const char *id);
int cmd_import(const char *location);

/* schedule.c */
int cmd_schedule(void);

/* db.c */
int has_suffix(const char *s, const char *suf);
void db_resolve(struct dburl *db);
char **pg_env(const struct dburl *db);
void scrub_argv(int argc, char **argv);

/* child.c */
void sink_init(struct sink *s, int fd);
int sink_put(struct sink *s, const char *p, size_t n);
int run_io(char *const argv[], char **envp, const char *dir, int in,
    struct feed *feed, struct sink *sink, const char *what, char *err,
    size_t errlen);
int run(char *const argv[], char **envp, const char *dir, int in,
    struct sink *sink, const char *what, char *err, size_t errlen);
void first_line(char *const argv[], char *out, size_t outlen);

#endif
