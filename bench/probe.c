/*
 * probe.c: crash-to-respawn timer for bench/supervise.sh.
 *
 *   probe respawn SUPPID COMM COUNT GAP_MS [STATEFILE]
 *	COUNT times: SIGKILL the child of SUPPID whose comm is COMM, then poll
 *	/proc/SUPPID/task/SUPPID/children until a new child with that comm
 *	exists (it has exec'd the program).  The next kill comes GAP_MS after
 *	the respawn was seen, so no supervisor's "one start per second" rule
 *	is ever hit.  With STATEFILE (a dyno-run run/dynos/NAME file) also
 *	times until its pid= line names a new live pid.
 *
 *   probe floor COMM COUNT sh|direct PROGRAM
 *	The same kill-to-exec'd time with no supervisor: this process kills
 *	its child, reaps it (blocking), forks, setsid()s and execs PROGRAM
 *	(through /bin/sh -c 'exec PROGRAM' with "sh", as every supervisor
 *	here does, or directly), and polls its own children the same way.
 *
 * Output: one line "n=.. median=.. max=.. min=.. [smedian=.. smax=..]" in
 * ms, then "samples=..." with every value.  Polling sleeps 50 us a turn.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXN 1000
#define DEADLINE_MS 5000.0

static double
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void
nap_us(long us)
{
	struct timespec t = { us / 1000000, (us % 1000000) * 1000 };

	while (nanosleep(&t, &t) == -1 && errno == EINTR)
		;
}

static void
sleep_until(double ms)
{
	struct timespec t;

	t.tv_sec = (time_t)(ms / 1e3);
	t.tv_nsec = (long)((ms - t.tv_sec * 1e3) * 1e6);
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
		;
}

static int
slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd == -1)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return (int)n;
}

/* A live (not zombie) child of sup, other than old, whose comm is want. */
static pid_t
find_child(pid_t sup, const char *want, pid_t old)
{
	static char kids[65536];
	char path[64], stat[512], *s, *e, *rp;
	size_t wl = strlen(want);

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)sup,
	    (long)sup);
	if (slurp(path, kids, sizeof(kids)) <= 0)
		return 0;
	for (s = kids;; s = e) {
		long p = strtol(s, &e, 10);

		if (e == s)
			break;
		if (p == old)
			continue;
		snprintf(path, sizeof(path), "/proc/%ld/stat", p);
		if (slurp(path, stat, sizeof(stat)) <= 0)
			continue;
		s = strchr(stat, '(');
		rp = strrchr(stat, ')');
		if (s == NULL || rp == NULL || (size_t)(rp - s - 1) != wl ||
		    strncmp(s + 1, want, wl) != 0 || rp[2] == 'Z')
			continue;
		return (pid_t)p;
	}
	return 0;
}

static long
state_pid(const char *file)
{
	char buf[8192], *p;

	if (slurp(file, buf, sizeof(buf)) <= 0)
		return -1;
	if (strncmp(buf, "pid=", 4) == 0)
		return strtol(buf + 4, NULL, 10);
	if ((p = strstr(buf, "\npid=")) == NULL)
		return -1;
	return strtol(p + 5, NULL, 10);
}

static pid_t
wait_child(pid_t sup, const char *comm, pid_t old)
{
	double end = now_ms() + DEADLINE_MS;
	pid_t p;

	while ((p = find_child(sup, comm, old)) == 0) {
		if (now_ms() > end)
			return 0;
		nap_us(50);
	}
	return p;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
report(const char *tag, double *v, int n, int print_samples)
{
	double s[MAXN];
	int i;

	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp);
	printf("%smedian=%.2f %smax=%.2f %smin=%.2f ", tag,
	    n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, tag, s[n - 1],
	    tag, s[0]);
	if (print_samples) {
		printf("\nsamples=");
		for (i = 0; i < n; i++)
			printf("%s%.2f", i ? "," : "", v[i]);
	}
}

static int
respawn(pid_t sup, const char *comm, int count, double gap, const char *sfile)
{
	static double lat[MAXN], slat[MAXN];
	double next, t0, t;
	pid_t old, p;
	int i;

	if ((old = wait_child(sup, comm, 0)) == 0) {
		fprintf(stderr, "probe: no %s child of %ld\n", comm, (long)sup);
		return 1;
	}
	next = now_ms() + gap;
	for (i = 0; i < count; i++) {
		double got = -1, sgot = sfile ? -1 : 0;

		sleep_until(next);
		if (kill(old, SIGKILL) == -1) {
			perror("probe: kill");
			return 1;
		}
		t0 = now_ms();
		p = 0;
		for (;;) {
			t = now_ms();
			if (got < 0 && (p = find_child(sup, comm, old)) != 0)
				got = t - t0;
			if (sgot < 0) {
				long sp = state_pid(sfile);
				if (sp > 0 && sp != (long)old)
					sgot = t - t0;
			}
			if (got >= 0 && sgot >= 0)
				break;
			if (t - t0 > DEADLINE_MS) {
				fprintf(stderr, "probe: no respawn within %.0f ms "
				    "(kill %d)\n", DEADLINE_MS, i + 1);
				return 1;
			}
			nap_us(50);
		}
		lat[i] = got;
		slat[i] = sgot;
		old = p;
		next = t0 + (got > sgot ? got : sgot) + gap;
	}
	printf("n=%d ", count);
	report("", lat, count, 0);
	if (sfile)
		report("s", slat, count, 0);
	printf("\nsamples=");
	for (i = 0; i < count; i++)
		printf("%s%.2f", i ? "," : "", lat[i]);
	printf("\n");
	return 0;
}

static pid_t
start(int direct, const char *prog)
{
	pid_t pid = fork();
	char cmd[4200];
	int fd;

	if (pid != 0)
		return pid;
	setsid();
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (fd > 2)
			close(fd);
	}
	if (direct)
		execl(prog, prog, (char *)NULL);
	else {
		snprintf(cmd, sizeof(cmd), "exec %s", prog);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
	}
	_exit(127);
}

static int
floor_run(const char *comm, int count, int direct, const char *prog)
{
	static double lat[MAXN];
	pid_t self = getpid(), old, p;
	double t0;
	int i;

	old = start(direct, prog);
	if (wait_child(self, comm, 0) != old) {
		fprintf(stderr, "probe: floor child did not start\n");
		return 1;
	}
	for (i = 0; i < count; i++) {
		nap_us(100000);		/* pacing between samples */
		t0 = now_ms();
		kill(old, SIGKILL);
		waitpid(old, NULL, 0);
		start(direct, prog);
		if ((p = wait_child(self, comm, old)) == 0) {
			fprintf(stderr, "probe: floor respawn failed\n");
			return 1;
		}
		lat[i] = now_ms() - t0;
		old = p;
	}
	kill(old, SIGKILL);
	waitpid(old, NULL, 0);
	printf("n=%d ", count);
	report("", lat, count, 1);
	printf("\n");
	return 0;
}

int
main(int argc, char **argv)
{
	int n;

	if (argc >= 6 && strcmp(argv[1], "respawn") == 0) {
		n = atoi(argv[4]);
		if (n < 1 || n > MAXN)
			return 2;
		return respawn((pid_t)atol(argv[2]), argv[3], n, atof(argv[5]),
		    argc > 6 ? argv[6] : NULL);
	}
	if (argc == 6 && strcmp(argv[1], "floor") == 0) {
		n = atoi(argv[3]);
		if (n < 1 || n > MAXN)
			return 2;
		return floor_run(argv[2], n, strcmp(argv[4], "direct") == 0,
		    argv[5]);
	}
	fprintf(stderr, "usage: probe respawn SUPPID COMM COUNT GAP_MS "
	    "[STATEFILE]\n       probe floor COMM COUNT sh|direct PROGRAM\n");
	return 2;
}
