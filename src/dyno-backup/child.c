/*
 * child.c: the tools dyno-backup runs, through lib/spawn.c: their stdout
 * streamed into a file (hashed on the way), a file streamed into their
 * stdin, the end of their stderr for the one-line error.
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

void
sink_init(struct sink *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	sha256_init(&s->sha);
}

int
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
int
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

int
run(char *const argv[], char **envp, const char *dir, int in,
    struct sink *sink, const char *what, char *err, size_t errlen)
{
	return run_io(argv, envp, dir, in, NULL, sink, what, err, errlen);
}

/* The first line a command prints, e.g. its --version; "" if it fails. */
void
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
