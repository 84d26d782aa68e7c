/*
 * build.c: the steps of a build: every command through lib/spawn.c,
 * buildpacks (as the dynos' user with -u), sanitising the code, reading its
 * Procfile, the release phase.
 */
#define _GNU_SOURCE
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
#include <sys/file.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"
#include "deploy.h"

/*
 * Run c->argv through spawn_process, in a session of its own (killed as a
 * whole), its output (stderr always, stdout unless c->out_fd) sent to our
 * stdout and appended to c->logfd, killed when --build-timeout passes.
 * Returns the exit status (128+signal), or -1 if it could not run.
 */
static int
run_cmd(const struct cmd *c)
{
	extern char **environ;
	struct spawn_opts so;
	int fds[2], status = 0;
	int64_t deadline = clock_ms() + opt.build_ms;
	pid_t pid;
	char buf[8192];
	sigset_t stop, old;

	if (pipe2(fds, O_CLOEXEC) == -1)
		return -1;
	memset(&so, 0, sizeof(so));
	so.argv = c->argv;
	so.envp = c->envp != NULL ? c->envp : c->as_user ? opt.user_env :
	    environ;
	so.dir = c->cwd;
	so.in_fd = c->in_fd;
	so.out_fd = c->out_fd >= 0 ? c->out_fd : fds[1];
	so.err_fd = fds[1];
	so.new_session = 1;
	/* A kill -9 of the deploy must not leave its build running. */
	so.pdeathsig = SIGKILL;
	/* The app's code gains no privilege; an operator's build may. */
	so.setid_ok = !c->as_user;
	if (c->as_user) {
		so.user = opt.user;
		so.uid = opt.uid;
		so.gid = opt.gid;
	}
	fflush(stdout);
	/* No stop signal between fork and knowing the session to kill. */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGHUP);
	sigprocmask(SIG_BLOCK, &stop, &old);
	pid = spawn_process(&so);
	if (pid > 0)
		build_pgid = pid;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fds[1]);
	if (pid == -1) {
		close(fds[0]);
		return -1;
	}
	for (;;) {
		struct pollfd pfd = { fds[0], POLLIN, 0 };
		int64_t now = clock_ms();
		ssize_t n;

		if (now >= deadline) {
			kill(-pid, SIGKILL);
			fprintf(stderr, "dyno-deploy: %s timed out after %llds\n",
			    c->argv[0], (long long)(opt.build_ms / 1000));
			break;
		}
		if (poll(&pfd, 1, (int)(deadline - now > 1000 ? 1000 :
		    deadline - now)) <= 0)
			continue;
		n = read(fds[0], buf, sizeof(buf));
		if (n <= 0)
			break;
		if (!c->quiet)
			(void)!write(1, buf, (size_t)n);
		if (c->logfd >= 0)
			(void)!write(c->logfd, buf, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	kill(-pid, SIGKILL);	/* whatever it left behind */
	build_pgid = 0;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* run_cmd as us, output (stdout too) to our stdout and logfd. */
int
run_logged(char *const argv[], const char *cwd, char **envp, int logfd,
    int quiet)
{
	struct cmd c = { argv, cwd, envp, -1, -1, logfd, quiet, 0 };

	return run_cmd(&c);
}

/* Heroku's bin/release prints YAML; we read default_process_types only. */
static void
buildpack_release_types(const char *yaml, char *procfile_add, size_t len)
{
	const char *p = strstr(yaml, "default_process_types:");
	size_t off = strlen(procfile_add);

	if (p == NULL)
		return;
	p = strchr(p, '\n');
	while (p != NULL && (p[1] == ' ' || p[1] == '\t')) {
		const char *line = p + 1, *eol = strchr(line, '\n');
		size_t n = eol ? (size_t)(eol - line) : strlen(line);
		while (n > 0 && (*line == ' ' || *line == '\t')) {
			line++;
			n--;
		}
		if (n > 0 && off + n + 2 < len) {
			memcpy(procfile_add + off, line, n);
			off += n;
			procfile_add[off++] = '\n';
			procfile_add[off] = '\0';
		}
		p = eol;
	}
}

/* ENV_DIR: one file per config var, named by the key. */
static void
envdir_write(const char *envdir, const struct env *config)
{
	size_t k;

	if (mkdir(envdir, 0700) == -1)
		die("cannot make %s: %s", envdir, strerror(errno));
	for (k = 0; k < config->n; k++) {
		char f[PATH_MAX], key[256];
		const char *eq = strchr(config->vars[k], '=');
		snprintf(key, sizeof(key), "%.*s", (int)(eq - config->vars[k]),
		    config->vars[k]);
		snprintf(f, sizeof(f), "%s/%s", envdir, key);
		if (atomicfile_write(f, eq + 1, strlen(eq + 1), 0600, 0) == -1)
			die("cannot write %s: %s", f, strerror(errno));
	}
}

/* A folder's contents into another, by tar, as root: both are ours. */
static void
tree_copy(const char *from, const char *to, int logfd)
{
	char *argv[] = { "sh", "-c", "tar -C \"$1\" -cf - . | "
	    "tar -C \"$2\" -xf - --no-same-owner", "sh", (char *)from,
	    (char *)to, NULL };

	if (run_logged(argv, NULL, NULL, logfd, 1) != 0)
		die("cannot copy %s to %s", from, to);
}

/*
 * The buildpacks run as the dynos' user (-u) in a build area of that user's:
 * a fresh folder in $TMPDIR (or /tmp), since .dyno is root's alone.  Root
 * fills it (code, cache, config vars) while it is still root's, hands it
 * over whole, and afterwards takes back only a tar stream of the code and
 * the cache, written by the user and unpacked by root in .dyno/tmp, where
 * the user cannot reach: whatever the build left (symlinks, FIFOs, a
 * process still running), root never walks the user's tree.
 */
static void
area_enter(char *area, size_t len, const char *code, const char *cache,
    const struct env *config, int logfd)
{
	const char *tmp = getenv("TMPDIR");
	char sub[PATH_MAX], ids[64];

	snprintf(area, len, "%s/dyno-build.XXXXXX", tmp && tmp[0] == '/' ? tmp :
	    "/tmp");
	if (mkdtemp(area) == NULL)
		die("cannot make a build area in %s: %s", tmp && tmp[0] == '/' ?
		    tmp : "/tmp", strerror(errno));
	snprintf(sub, sizeof(sub), "%s/app", area);
	if (mkdir(sub, 0755) == -1)
		die("cannot make %s: %s", sub, strerror(errno));
	tree_copy(code, sub, logfd);
	snprintf(sub, sizeof(sub), "%s/cache", area);
	if (mkdir(sub, 0700) == -1)
		die("cannot make %s: %s", sub, strerror(errno));
	tree_copy(cache, sub, logfd);
	snprintf(sub, sizeof(sub), "%s/env", area);
	envdir_write(sub, config);
	snprintf(ids, sizeof(ids), "%lu:%lu", (unsigned long)opt.uid,
	    (unsigned long)opt.gid);
	{
		/* -P: symlinks are changed themselves, never followed. */
		char *argv[] = { "chown", "-R", "-P", "-h", ids, area, NULL };
		if (run_logged(argv, NULL, NULL, logfd, 0) != 0)
			die("cannot give %s to %s", area, opt.user);
	}
}

/* What the user's tar wrote to fd, unpacked into dir (made afresh) by root. */
static void
area_take(const char *area, const char *what, const char *dir, mode_t mode,
    const char *builddir, int logfd)
{
	char out[PATH_MAX], from[PATH_MAX];
	int fd;

	snprintf(out, sizeof(out), "%s/%s.tar", builddir, what);
	snprintf(from, sizeof(from), "%s/%s", area, what);
	fd = open(out, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		die("cannot make %s: %s", out, strerror(errno));
	{
		char *argv[] = { "tar", "-C", from, "-cf", "-", ".", NULL };
		struct cmd c = { argv, area, NULL, -1, fd, logfd, 0, 1 };
		if (run_cmd(&c) != 0)
			die("cannot take the build's %s back from %s", what, area);
	}
	remove_tree(dir);
	if (mkdir(dir, mode) == -1 || lseek(fd, 0, SEEK_SET) == -1)
		die("cannot make %s: %s", dir, strerror(errno));
	{
		char *argv[] = { "tar", "-C", (char *)dir, "-xf", "-",
		    "--no-same-owner", NULL };
		struct cmd c = { argv, NULL, NULL, fd, -1, logfd, 0, 0 };
		if (run_cmd(&c) != 0)
			die("cannot unpack the build's %s", what);
	}
	close(fd);
	unlink(out);
	sanitize_tree(dir, logfd);
}

/* The user empties the area, then root removes the empty folder. */
void
area_leave(const char *area, int logfd)
{
	char *argv[] = { "rm", "-rf", "--", "app", "cache", "env", NULL };
	struct cmd c = { argv, area, NULL, -1, -1, logfd, 1, 1 };

	(void)run_cmd(&c);
	remove_tree(area);
}

void
buildpacks_run(const char *builddir, const struct env *config, int logfd,
    char *procfile_add, size_t addlen)
{
	char code[PATH_MAX], cache[4096], envdir[PATH_MAX], area[PATH_MAX];
	char bcode[PATH_MAX + 8], bcache[PATH_MAX + 8], benv[PATH_MAX + 8];
	int i, as_user = opt.user != NULL;

	if (opt.nbuildpacks == 0)
		return;
	snprintf(code, sizeof(code), "%s/app", builddir);
	state_path(cache, sizeof(cache), "cache");
	if (mkdir_mode(cache, 0700) == -1)
		die("cannot make %s: %s", cache, strerror(errno));
	if (as_user) {
		area_enter(area, sizeof(area), code, cache, config, logfd);
		snprintf(failed_area, sizeof(failed_area), "%s", area);
		snprintf(bcode, sizeof(bcode), "%s/app", area);
		snprintf(bcache, sizeof(bcache), "%s/cache", area);
		snprintf(benv, sizeof(benv), "%s/env", area);
	} else {
		snprintf(envdir, sizeof(envdir), "%s/env", builddir);
		envdir_write(envdir, config);
		snprintf(bcode, sizeof(bcode), "%s", code);
		snprintf(bcache, sizeof(bcache), "%s", cache);
		snprintf(benv, sizeof(benv), "%s", envdir);
	}
	for (i = 0; i < opt.nbuildpacks; i++) {
		char bp[PATH_MAX], detect[PATH_MAX], compile[PATH_MAX],
		    release[PATH_MAX], out[PATH_MAX];
		int rc;

		if (realpath(opt.buildpacks[i], bp) == NULL)
			die("buildpack %s: %s", opt.buildpacks[i], strerror(errno));
		snprintf(detect, sizeof(detect), "%s/bin/detect", bp);
		snprintf(compile, sizeof(compile), "%s/bin/compile", bp);
		snprintf(release, sizeof(release), "%s/bin/release", bp);
		{
			char *argv[] = { detect, bcode, NULL };
			struct cmd c = { argv, bcode, NULL, -1, -1, logfd, 0,
			    as_user };
			char msg[256];
			int n = snprintf(msg, sizeof(msg), "-----> %s: detect\n", bp);
			(void)!write(1, msg, (size_t)n);
			(void)!write(logfd, msg, (size_t)n);
			if (access(detect, X_OK) == 0 && (rc = run_cmd(&c)) != 0) {
				n = snprintf(msg, sizeof(msg), "-----> %s does not "
				    "apply (detect exited %d)\n", bp, rc);
				(void)!write(1, msg, (size_t)n);
				(void)!write(logfd, msg, (size_t)n);
				continue;
			}
		}
		{
			char *argv[] = { compile, bcode, bcache, benv, NULL };
			struct cmd c = { argv, bcode, NULL, -1, -1, logfd, 0,
			    as_user };
			char msg[256];
			int n = snprintf(msg, sizeof(msg), "-----> %s: compile\n", bp);
			(void)!write(1, msg, (size_t)n);
			(void)!write(logfd, msg, (size_t)n);
			rc = run_cmd(&c);
			if (rc != 0)
				die("buildpack %s: compile failed (exit %d); nothing "
				    "changed", bp, rc);
		}
		if (access(release, X_OK) == 0) {
			char *argv[] = { release, bcode, NULL };
			char text[8192];
			int fd;
			snprintf(out, sizeof(out), "%s/release.yml", builddir);
			fd = open(out, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
			{
				struct cmd c = { argv, bcode, NULL, -1, fd, logfd,
				    0, as_user };
				if (fd == -1 || run_cmd(&c) != 0)
					die("buildpack %s: bin/release failed", bp);
			}
			close(fd);
			if (file_read(out, text, sizeof(text)) > 0)
				buildpack_release_types(text, procfile_add, addlen);
			unlink(out);
		}
	}
	if (as_user) {
		char newcache[4200];
		area_take(area, "app", code, 0755, builddir, logfd);
		snprintf(newcache, sizeof(newcache), "%s.new", cache);
		area_take(area, "cache", newcache, 0700, builddir, logfd);
		remove_tree(cache);
		if (rename(newcache, cache) == -1)
			die("cannot keep the build cache: %s", strerror(errno));
		area_leave(area, logfd);
		failed_area[0] = '\0';
	} else
		remove_tree(envdir);
}

/*
 * The code as the tenant gave it holds nothing the platform would not:
 * special files (devices, FIFOs, sockets) go, set-id bits and
 * world-writable bits come off (the sticky bit too), whatever a tarball,
 * a git tree or a buildpack left.  Symlinks stay (never followed here).
 * Each change is said once on stdout and in the build log.  -1 if the
 * tree cannot be walked.
 */
static int
sanitize_at(int dfd, const char *rel, int logfd, int depth)
{
	DIR *d;
	struct dirent *de;
	int fd;

	if (depth > 256)
		return -1;
	if ((fd = dup(dfd)) == -1 || (d = fdopendir(fd)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX], msg[PATH_MAX + 128];
		struct stat st;
		mode_t keep;
		int n = 0, cfd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "",
		    de->d_name);
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
		    S_ISLNK(st.st_mode))
			continue;
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			if (unlinkat(dfd, de->d_name, 0) == 0)
				n = snprintf(msg, sizeof(msg), "-----> removed %s: "
				    "not a file, folder or symlink\n", sub);
		} else {
			keep = st.st_mode & 0777 & ~(mode_t)S_IWOTH;
			if ((st.st_mode & 07777) != keep) {
				if (fchmodat(dfd, de->d_name, keep, 0) == -1) {
					closedir(d);
					return -1;
				}
				n = snprintf(msg, sizeof(msg), "-----> %s: mode %04o "
				    "made %04o (no set-id, sticky or world-writable "
				    "bits)\n", sub, (unsigned)(st.st_mode & 07777),
				    (unsigned)keep);
			}
		}
		if (n > 0) {
			(void)!write(1, msg, (size_t)n);
			(void)!write(logfd, msg, (size_t)n);
		}
		if (!S_ISDIR(st.st_mode))
			continue;
		cfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (cfd == -1 || sanitize_at(cfd, sub, logfd, depth + 1) == -1) {
			if (cfd != -1)
				close(cfd);
			closedir(d);
			return -1;
		}
		close(cfd);
	}
	closedir(d);
	return 0;
}

void
sanitize_tree(const char *dir, int logfd)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;

	/* The top folder too: a tarball's "./" entry sets its mode. */
	if (dfd == -1 || fstat(dfd, &st) == -1 || ((st.st_mode & 07777) !=
	    (st.st_mode & 0777 & ~(mode_t)S_IWOTH) && fchmod(dfd, st.st_mode &
	    0777 & ~(mode_t)S_IWOTH) == -1) || sanitize_at(dfd, "", logfd, 0) == -1)
		die("cannot check the modes in %s: %s", dir, strerror(errno));
	if ((st.st_mode & 07777) != (st.st_mode & 0777 & ~(mode_t)S_IWOTH)) {
		char msg[128];
		int n = snprintf(msg, sizeof(msg), "-----> the top folder: mode "
		    "%04o made %04o (no set-id, sticky or world-writable bits)\n",
		    (unsigned)(st.st_mode & 07777),
		    (unsigned)(st.st_mode & 0777 & ~(mode_t)S_IWOTH));
		(void)!write(1, msg, (size_t)n);
		if (logfd >= 0)
			(void)!write(logfd, msg, (size_t)n);
	}
	close(dfd);
}

/*
 * The code's Procfile: code is untrusted, so the file is read only if it
 * is a regular file inside it (a symlink to /etc/shadow is refused, a FIFO
 * does not hold the deploy and its lock), at most 1 MB.  -1 with errno.
 */
int
procfile_read_code(const char *code, char **text)
{
	int dfd = open(code, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	int rc, saved;

	if (dfd == -1)
		return -1;
	rc = file_read_beneath(dfd, "Procfile", text, NULL, 1 << 20);
	saved = errno;
	close(dfd);
	errno = saved;
	return rc;
}

/* Run the Procfile's release: entry as a one-off dyno in the new release. */
void
release_phase(const char *builddir, const struct procfile *pf, int logfd)
{
	const struct proctype *rel = procfile_find(pf, "release");
	char dynorun[PATH_MAX];
	int rc;

	if (rel == NULL)
		return;
	snprintf(dynorun, sizeof(dynorun), "%s/dyno-run", self_dir);
	if (access(dynorun, X_OK) == -1)
		snprintf(dynorun, sizeof(dynorun), "dyno-run");
	{
		char msg[512];
		int n = snprintf(msg, sizeof(msg), "-----> Release phase: %s\n",
		    rel->command);
		(void)!write(1, msg, (size_t)n);
		(void)!write(logfd, msg, (size_t)n);
	}
	{
		/* As a dyno: as the dynos' user (-u), with their limits. */
		char *argv[12];
		int n = 0;
		argv[n++] = dynorun;
		argv[n++] = "-a";
		argv[n++] = app.dir;
		if (opt.user != NULL) {
			argv[n++] = "-u";
			argv[n++] = (char *)opt.user;
			if (opt.trust_dir)
				argv[n++] = "--trust-app-dir";
		}
		argv[n++] = "--release";
		argv[n++] = (char *)builddir;
		argv[n++] = "--one-off";
		argv[n++] = rel->command;
		argv[n] = NULL;
		rc = run_logged(argv, NULL, NULL, logfd, 0);
	}
	if (rc != 0)
		die("release phase failed (exit %d): current is unchanged", rc);
}
