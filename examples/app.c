/*
 * app.c: the sample app.  A tiny HTTP/1.1 server (a thread per connection,
 * keep-alive) that says which dyno answered, plus endpoints made for demos
 * and tests: /slow waits, /leak grows memory on purpose, /crash exits.
 * "app --worker" is the background worker: it logs a line now and then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t stopping;
static int inflight;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *dyno = "unknown";
char *leaks[1024];	/* /leak keeps its memory reachable from here */
static size_t nleaks;

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static long
query_long(const char *path, const char *key, long def)
{
	const char *q = strchr(path, '?'), *p;
	size_t klen = strlen(key);

	for (p = q; p != NULL; p = strchr(p + 1, '&'))
		if (strncmp(p + 1, key, klen) == 0 && p[1 + klen] == '=')
			return strtol(p + 2 + klen, NULL, 10);
	return def;
}

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Build the body for one request; returns the HTTP status. */
static int
route(const char *method, const char *path, char *body, size_t len)
{
	static size_t leaked_mb;
	size_t plen = strcspn(path, "?");

	if (plen == 1 && path[0] == '/') {
		snprintf(body, len, "Hello from %s\n", dyno);
		return 200;
	}
	if (plen == 5 && strncmp(path, "/slow", 5) == 0) {
		long ms = query_long(path, "ms", 2000);
		sleep_ms(ms);
		snprintf(body, len, "slow %ldms from %s\n", ms, dyno);
		return 200;
	}
	if (plen == 5 && strncmp(path, "/leak", 5) == 0) {
		long mb = query_long(path, "mb", 64);
		char *p = malloc((size_t)mb << 20);
		if (p == NULL) {
			snprintf(body, len, "out of memory\n");
			return 500;
		}
		memset(p, 0x5a, (size_t)mb << 20);	/* touch it: RSS, not just VSZ */
		pthread_mutex_lock(&mu);
		/* Keep it reachable, or the compiler drops malloc and memset. */
		leaks[nleaks++ % 1024] = p;
		leaked_mb += (size_t)mb;
		pthread_mutex_unlock(&mu);
		snprintf(body, len, "leaked %zu MB in %s\n", leaked_mb, dyno);
		return 200;
	}
	if (plen == 7 && strncmp(path, "/health", 7) == 0) {
		snprintf(body, len, "ok\n");
		return 200;
	}
	if (plen == 4 && strncmp(path, "/env", 4) == 0) {
		const char *q = strchr(path, '?'), *v;
		v = q && strncmp(q, "?name=", 6) == 0 ? getenv(q + 6) : NULL;
		snprintf(body, len, "%s\n", v ? v : "");
		return v ? 200 : 404;
	}
	if (plen == 4 && strncmp(path, "/pid", 4) == 0) {
		snprintf(body, len, "%ld\n", (long)getpid());
		return 200;
	}
	if (plen == 6 && strncmp(path, "/crash", 6) == 0 &&
	    strcmp(method, "POST") == 0) {
		fprintf(stderr, "crashing on purpose\n");
		exit(1);
	}
	snprintf(body, len, "not found\n");
	return 404;
}

static void *
serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char buf[16384], body[512], head[1280], method[16], path[2048];
	size_t have = 0;

	for (;;) {
		char *end, *cl, *conn;
		long clen = 0;
		int status, keep, n, hn;
		size_t headlen;
		int counted = 0;

		/* A request counts as in flight from its first byte, so a
		 * graceful stop never cuts one that has begun to arrive. */
		while ((end = memmem(buf, have, "\r\n\r\n", 4)) == NULL) {
			ssize_t r;
			if (have > 0 && !counted) {
				pthread_mutex_lock(&mu);
				inflight++;
				pthread_mutex_unlock(&mu);
				counted = 1;
			}
			if (have == sizeof(buf) - 1)
				goto done;
			r = read(fd, buf + have, sizeof(buf) - 1 - have);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				goto done;
			have += (size_t)r;
		}
		if (!counted) {
			pthread_mutex_lock(&mu);
			inflight++;
			pthread_mutex_unlock(&mu);
			counted = 1;
		}
		headlen = (size_t)(end - buf) + 4;
		buf[headlen - 2] = '\0';
		if (sscanf(buf, "%15s %2047s", method, path) != 2)
			goto done;
		keep = strstr(buf, "HTTP/1.1") != NULL;
		if ((conn = strcasestr(buf, "\r\nConnection:")) != NULL)
			keep = strncasecmp(conn + 13 + strspn(conn + 13, " "),
			    "close", 5) != 0 && (keep || strncasecmp(conn + 13 +
			    strspn(conn + 13, " "), "keep-alive", 10) == 0);
		if ((cl = strcasestr(buf, "\r\nContent-Length:")) != NULL)
			clen = strtol(cl + 17, NULL, 10);
		/* Drop the request body; the sample app has no use for it. */
		memmove(buf, buf + headlen, have - headlen);
		have -= headlen;
		while (clen > 0) {
			if (have > 0) {
				size_t take = (size_t)clen < have ? (size_t)clen : have;
				memmove(buf, buf + take, have - take);
				have -= take;
				clen -= (long)take;
				continue;
			}
			ssize_t r = read(fd, buf, sizeof(buf) - 1);
			if (r == -1 && errno == EINTR)
				continue;
			if (r <= 0)
				goto done;
			have = (size_t)r;
		}
		status = route(method, path, body, sizeof(body));
		n = (int)strlen(body);
		hn = snprintf(head, sizeof(head),
		    "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		    "Content-Length: %d\r\nX-Dyno: %s\r\n%s\r\n", status,
		    status == 200 ? "OK" : status == 404 ? "Not Found" : "Error",
		    n, dyno,
		    keep && !stopping ? "" : "Connection: close\r\n");
		/* Head and body in one write: two small writes would meet
		 * Nagle and delayed ACK and cost 40 ms a request. */
		if (strcmp(method, "HEAD") != 0 && (size_t)hn + (size_t)n <
		    sizeof(head)) {
			memcpy(head + hn, body, (size_t)n);
			hn += n;
		}
		if (write_all(fd, head, (size_t)hn) == -1)
			keep = 0;
		pthread_mutex_lock(&mu);
		inflight--;
		pthread_mutex_unlock(&mu);
		if (!keep || stopping)
			break;
		continue;
done:
		if (counted) {
			pthread_mutex_lock(&mu);
			inflight--;
			pthread_mutex_unlock(&mu);
		}
		break;
	}
	close(fd);
	return NULL;
}

static int
worker(void)
{
	long n = 0;
	long every = getenv("WORKER_INTERVAL_MS") ?
	    strtol(getenv("WORKER_INTERVAL_MS"), NULL, 10) : 5000;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while (!stopping) {
		struct timespec ts = { every / 1000, (every % 1000) * 1000000L };
		printf("worker %s tick %ld\n", dyno, ++n);
		nanosleep(&ts, NULL);	/* SIGTERM cuts it short */
	}
	printf("worker %s stopping\n", dyno);
	return 0;
}

int
main(int argc, char **argv)
{
	struct sigaction sa;
	struct sockaddr_in sin;
	int lfd, one = 1;
	sigset_t stopsigs;
	const char *port = getenv("PORT");

	if (getenv("DYNO") != NULL)
		dyno = getenv("DYNO");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;	/* no SA_RESTART: accept returns EINTR */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && strcmp(argv[1], "--worker") == 0)
		return worker();
	if (port == NULL) {
		fprintf(stderr, "app: PORT is not set\n");
		return 1;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)atoi(port));
	sin.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    listen(lfd, 1024) == -1) {
		fprintf(stderr, "app: cannot listen on %s: %s\n", port,
		    strerror(errno));
		return 1;
	}
	printf("%s listening on port %s\n", dyno, port);
	fflush(stdout);
	sigemptyset(&stopsigs);
	sigaddset(&stopsigs, SIGTERM);
	sigaddset(&stopsigs, SIGINT);
	while (!stopping) {
		pthread_t t;
		pthread_attr_t at;
		sigset_t old;
		int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (cfd == -1)
			continue;
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		pthread_sigmask(SIG_BLOCK, &stopsigs, &old);
		if (pthread_create(&t, &at, serve, (void *)(intptr_t)cfd) != 0)
			close(cfd);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		pthread_attr_destroy(&at);
	}
	/* Graceful stop: serve the connections the kernel already queued for
	 * us (a router may have sent requests on them), then take no more and
	 * let the requests in flight finish. */
	{
		int fl = fcntl(lfd, F_GETFL);
		int cfd;
		fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
		while ((cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
			pthread_t t;
			pthread_attr_t at;
			pthread_attr_init(&at);
			pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
			if (pthread_create(&t, &at, serve, (void *)(intptr_t)cfd) != 0)
				close(cfd);
			pthread_attr_destroy(&at);
		}
	}
	close(lfd);
	sleep_ms(50);	/* let those threads count themselves in flight */
	for (;;) {
		int busy;
		pthread_mutex_lock(&mu);
		busy = inflight;
		pthread_mutex_unlock(&mu);
		if (busy == 0)
			break;
		sleep_ms(10);
	}
	printf("%s stopped\n", dyno);
	return 0;
}
