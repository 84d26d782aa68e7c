/*
 * remote.c: off the host: S3 (SigV4, multipart) and WebDAV through
 * libcurl, each request bounded; upload and import.
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
#include "curlretry.h"
#include "backup.h"

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
void
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
		q->retry_after = retry_after_parse(tmp, time(NULL));
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
 * One HTTP request, tried again as lib/retry.c says (like curl's --retry:
 * on a connection failure, a timeout, 408, 429 or 5xx, wait 1 s, then 2,
 * 4 ... at most 10 minutes, or what Retry-After says), --retry times at
 * most.  0 on a 2xx.
 */
static int
http_do(const struct remote *r, struct request *q)
{
	static const char empty_sha[] =
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	struct curl_slist *hdr = NULL;
	char h[512], code[128];
	const char *key, *secret, *token, *auth;
	struct retry again;
	long wait_ms;
	CURLcode rc = CURLE_OK;
	CURL *c;

	retry_init(&again, opt.retries, 600000);
	for (;;) {

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
		if (!retry_worth(curl_transient(rc), rc == CURLE_OK ? q->status : 0) ||
		    (wait_ms = retry_next(&again, rc == CURLE_OK ?
		    q->retry_after : -1)) < 0)
			return -1;
		say("%s %s: %s; trying again in %ld ms (%ld of %ld)", q->method,
		    r->location, q->error, wait_ms, again.made, again.max);
		sleep_ms(wait_ms);
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

void
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
int
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
void
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

int
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
int
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
