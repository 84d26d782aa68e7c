/*
 * spawn.c: start a process the way a supervisor must.  The child gets its
 * own session (so the whole dyno can be signalled as one process group),
 * default signal dispositions and an empty mask, only the fds we hand it,
 * resource limits, and dropped privileges; then the command runs: exec'd
 * directly when it is plain words, else by /bin/sh -c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dyno.h"

/*
 * The C library keeps a few real-time signals for itself (glibc 32 and
 * 33, musl 32 to 34) and its sigaction refuses them, yet an ignored one
 * is inherited across exec like any other: whoever started us may have
 * ignored them.  Set such a signal to its default through the system
 * call itself.  SIGKILL and SIGSTOP fail here too, harmlessly.
 */
static void
signal_default_raw(int sig)
{
	struct {
		unsigned long handler, flags, restorer, mask;
	} k = { 0, 0, 0, 0 };			/* SIG_DFL, no flags, no mask */

	(void)syscall(SYS_rt_sigaction, sig, &k, NULL, sizeof(k.mask));
}

void
signals_reset(void)
{
	struct sigaction sa;
	sigset_t none;
	int sig;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		if (sigaction(sig, &sa, NULL) == -1 && errno == EINVAL)
			signal_default_raw(sig);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

static void
child_fail(const char *what)
{
	char msg[256];
	int n = snprintf(msg, sizeof(msg), "dyno: cannot %s: %s\n", what,
	    strerror(errno));

	if (n > 0)
		(void)!write(2, msg, (size_t)n);
	_exit(127);
}

/* Move fd onto target; -1 means /dev/null. */
static void
child_fd(int fd, int target)
{
	if (fd == -1) {
		fd = open("/dev/null", O_RDWR);
		if (fd == -1)
			child_fail("open /dev/null");
	}
	if (fd == target) {
		int fl = fcntl(fd, F_GETFD);
		(void)fcntl(fd, F_SETFD, fl & ~FD_CLOEXEC);
		return;
	}
	if (dup2(fd, target) == -1)
		child_fail("dup2");
}

static void
child_close_rest(void)
{
	long max = sysconf(_SC_OPEN_MAX), fd;

#ifdef SYS_close_range
	if (syscall(SYS_close_range, 3, ~0U, 0) == 0)
		return;
#endif
	if (max < 0 || max > 65536)
		max = 65536;
	for (fd = 3; fd < max; fd++)
		close((int)fd);
}

static void
child_setup(const struct spawn_opts *o)
{
	int in = o->in_fd, out = o->out_fd, errfd = o->err_fd;

	if (o->new_session && setsid() == -1)
		child_fail("setsid");
	if (o->pdeathsig != 0 && prctl(PR_SET_PDEATHSIG, o->pdeathsig) == -1)
		child_fail("set the parent-death signal");
	if (o->cgroup_procs != NULL) {
		/* Join the dyno's cgroup before anything else can fork. */
		char pid[32];
		int fd = open(o->cgroup_procs, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (fd == -1 || write(fd, pid, (size_t)n) != n)
			child_fail("join the dyno's cgroup");
		close(fd);
	}
	signals_reset();
	/* Keep the three fds clear of 0-2 before moving them into place. */
	if (in >= 0 && in < 3 && in != 0)
		in = fcntl(in, F_DUPFD_CLOEXEC, 3);
	if (out >= 0 && out < 3 && out != 1)
		out = fcntl(out, F_DUPFD_CLOEXEC, 3);
	if (errfd >= 0 && errfd < 3 && errfd != 2)
		errfd = fcntl(errfd, F_DUPFD_CLOEXEC, 3);
	child_fd(in, 0);
	child_fd(out, 1);
	child_fd(errfd, 2);
	child_close_rest();
	if (o->dir != NULL && chdir(o->dir) == -1) {
		char what[300];
		snprintf(what, sizeof(what), "enter %s", o->dir);
		child_fail(what);
	}
	if (o->nofile > 0) {
		struct rlimit rl;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
			rlim_t want = (rlim_t)o->nofile;
			if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
				want = rl.rlim_max;
			rl.rlim_cur = want;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (o->user != NULL) {
		if (initgroups(o->user, o->gid) == -1)
			child_fail("set supplementary groups");
		if (setgid(o->gid) == -1)
			child_fail("setgid");
		if (setuid(o->uid) == -1)
			child_fail("setuid");
		if (setuid(0) == 0) {
			errno = EPERM;
			child_fail("drop root for good");
		}
	}
	if (!o->setid_ok && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 &&
	    o->user != NULL)
		child_fail("set no_new_privs");
}

/*
 * A command of plain words (letters, digits, "_./:,@+%-" and "=" past the
 * first word, one space or tab between words, at most 63 of them) means the
 * same to sh as to execvp, so it is exec'd directly, as runsv execs
 * ./run: no shell start-up on every respawn, and the dyno's first process
 * is the app, which gets SIGTERM itself.  A leading "exec" is dropped.
 * Anything else (quotes, $, globs, redirections, ;, &, |, ~, #, a leading
 * assignment) goes to sh -c.  Returns argc, or 0 for sh.
 */
static int
plain_words(const char *cmd, char *buf, size_t buflen, char **argv, int max)
{
	static const char ok[] = "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:,@+%-=";
	size_t len = strlen(cmd), i;
	int argc = 0;

	if (len == 0 || len >= buflen)
		return 0;
	memcpy(buf, cmd, len + 1);
	for (i = 0; i < len;) {
		size_t start = i;
		while (i < len && buf[i] != ' ' && buf[i] != '\t') {
			if (strchr(ok, buf[i]) == NULL)
				return 0;
			if (buf[i] == '=' && argc == 0)
				return 0;	/* NAME=value: an assignment */
			i++;
		}
		if (i == start || argc == max - 1)
			return 0;	/* two blanks in a row, or too many */
		argv[argc++] = buf + start;
		if (i < len)
			buf[i++] = '\0';
		if (i == len && buf[len - 1] == '\0')
			return 0;	/* a trailing blank */
	}
	if (argc > 1 && strcmp(argv[0], "exec") == 0) {
		memmove(argv, argv + 1, (size_t)argc * sizeof(argv[0]));
		argc--;
	}
	argv[argc] = NULL;
	return argc;
}

pid_t
spawn_process(const struct spawn_opts *o)
{
	pid_t pid;

	pid = fork();
	if (pid != 0)
		return pid;
	child_setup(o);
	{
		static char words[4096];
		char *wargv[64];
		char *argv[] = { "sh", "-c", (char *)o->command, NULL };
		extern char **environ;

		if (o->argv != NULL) {
			environ = o->envp;
			execvp(o->argv[0], o->argv);
			{
				char what[300];
				snprintf(what, sizeof(what), "run %s", o->argv[0]);
				child_fail(what);
			}
		}
		if (plain_words(o->command, words, sizeof(words), wargv, 64) > 0) {
			/* execvp looks in the dyno's PATH, not ours. */
			environ = o->envp;
			execvp(wargv[0], wargv);
			/* Not found: a shell builtin (cd, export ...), or
			 * nothing; sh says which, as it always did. */
		}
		execve("/bin/sh", argv, o->envp);
		child_fail("exec /bin/sh");
	}
	return -1;
}
