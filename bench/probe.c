/*
 * probe.c: crash-to-respawn timer for bench/supervise.sh.
 *
 *   probe COUNT GAP_MS COMM TARGET ...
 *
 * TARGET is SUPPID or SUPPID:STATEFILE (a supervisor), or floor:sh or
 * floor:direct (no supervisor: see below).  COUNT rounds; in each round every
 * target in turn gets one SIGKILL of its supervised process, and the time to
 * the new process is measured before the next target's turn, so no two
 * measurements overlap and slow drift of the machine hits every target alike.
 * A target is killed again no sooner than GAP_MS after its last respawn was
 * seen, so no supervisor's "one start per second" rule is ever hit.
 *
 * Supervisor: kill the child of SUPPID whose comm is COMM, then poll
 * /proc/SUPPID/task/SUPPID/children until a new live child with that comm
 * exists (it has exec'd the program).  With STATEFILE (dyno-run's
 * run/dynos/NAME) also time until its pid= line names another pid.
 *
 * Floor: this process is the supervisor: it kills its child, reaps it
 * (blocking waitpid), forks, setsid()s and execs COMM's program (PROGRAM,
 * taken from $PROBE_PROGRAM) through /bin/sh -c 'exec PROGRAM' (floor:sh, as
 * every supervisor here does) or directly (floor:direct), and polls its own
 * children the same way.
 *
 * Output, per target in the order given, in ms:
 *   T<i> n=.. median=.. max=.. min=.. [smedian=.. smax=.. smin=..]
 *   T<i> samples=..,..
 * Polling sleeps 50 us a turn.
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

/* pid is alive (not a zombie) and its comm is want. */
static int
is_prog(long pid, const char *want)
{
	char path[64], stat[512], *lp, *rp;
	size_t wl = strlen(want);

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	if (slurp(path, stat, sizeof(stat)) <= 0)
		return 0;
	lp = strchr(stat, '(');
	rp = strrchr(stat, ')');
	return lp != NULL && rp != NULL && (size_t)(rp - lp - 1) == wl &&
	    strncmp(lp + 1, want, wl) == 0 && rp[1] == ' ' && rp[2] != 'Z';
}

/* A live child of sup, other than old, whose comm is want; 0 if none. */
static pid_t
find_child(pid_t sup, const char *want, pid_t old)
{
	static char kids[65536];
	char path[64], *s, *e;

	snprintf(path, sizeof(path), "/proc/%ld/task/%ld/children", (long)sup,
	    (long)sup);
	if (slurp(path, kids, sizeof(kids)) <= 0)
		return 0;
	for (s = kids;; s = e) {
		long p = strtol(s, &e, 10);

		if (e == s)
			break;
		if (p != old && is_prog(p, want))
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

/* sup > 0: wait for a child of sup other than old running comm.
 * sup == 0: wait until process old itself runs comm. */
static pid_t
wait_child(pid_t sup, const char *comm, pid_t old)
{
	double end = now_ms() + DEADLINE_MS;
	pid_t p;

	while ((p = sup ? find_child(sup, comm, old) :
	    (is_prog(old, comm) ? old : 0)) == 0) {
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
report(const char *tag, double *v, int n)
{
	double s[MAXN];

	memcpy(s, v, sizeof(double) * (size_t)n);
	qsort(s, (size_t)n, sizeof(double), cmp);
	printf("%smedian=%.2f %smax=%.2f %smin=%.2f ", tag,
	    n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2, tag, s[n - 1],
	    tag, s[0]);
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

struct target {
	pid_t sup;		/* supervisor; 0: the floor, this process */
	int direct;		/* floor: exec without sh */
	const char *sfile;	/* dyno-run state file or NULL */
	pid_t old;		/* current supervised process */
	double next;		/* earliest next kill */
	double lat[MAXN], slat[MAXN];
};

static const char *comm, *prog;

/* One kill and respawn of t; 0, or -1 on a timeout. */
static int
one(struct target *t, int i, double gap)
{
	double t0, now, got = -1, sgot = t->sfile ? -1 : 0;
	pid_t p = 0, fresh = 0;

	sleep_until(t->next);
	t0 = now_ms();
	if (kill(t->old, SIGKILL) == -1) {
		perror("probe: kill");
		return -1;
	}
	if (t->sup == 0) {
		waitpid(t->old, NULL, 0);
		fresh = start(t->direct, prog);
	}
	for (;;) {
		now = now_ms();
		if (got < 0 && (p = t->sup ? find_child(t->sup, comm, t->old) :
		    (is_prog(fresh, comm) ? fresh : 0)) != 0)
			got = now - t0;
		if (sgot < 0) {
			long sp = state_pid(t->sfile);
			if (sp > 0 && sp != (long)t->old)
				sgot = now - t0;
		}
		if (got >= 0 && sgot >= 0)
			break;
		if (now - t0 > DEADLINE_MS) {
			fprintf(stderr, "probe: no respawn within %.0f ms\n",
			    DEADLINE_MS);
			return -1;
		}
		nap_us(50);
	}
	t->lat[i] = got;
	t->slat[i] = sgot;
	t->old = p;
	t->next = t0 + (got > sgot ? got : sgot) + gap;
	return 0;
}

int
main(int argc, char **argv)
{
	static struct target tg[16];
	int count, nt, i, k;
	double gap;

	if (argc < 5 || argc - 4 > 16 || (count = atoi(argv[1])) < 1 ||
	    count > MAXN) {
		fprintf(stderr, "usage: probe COUNT GAP_MS COMM "
		    "SUPPID[:STATEFILE]|floor:sh|floor:direct ...\n");
		return 2;
	}
	gap = atof(argv[2]);
	comm = argv[3];
	prog = getenv("PROBE_PROGRAM");
	nt = argc - 4;
	for (k = 0; k < nt; k++) {
		struct target *t = &tg[k];
		char *a = argv[4 + k], *colon = strchr(a, ':');

		if (strncmp(a, "floor:", 6) == 0) {
			if (prog == NULL) {
				fprintf(stderr, "probe: floor needs PROBE_PROGRAM\n");
				return 2;
			}
			t->direct = strcmp(a + 6, "direct") == 0;
			t->old = start(t->direct, prog);
			if (wait_child(0, comm, t->old) != t->old) {
				fprintf(stderr, "probe: floor child did not start\n");
				return 1;
			}
		} else {
			t->sup = (pid_t)atol(a);
			t->sfile = colon ? colon + 1 : NULL;
			if ((t->old = wait_child(t->sup, comm, 0)) == 0) {
				fprintf(stderr, "probe: no %s child of %ld\n", comm,
				    (long)t->sup);
				return 1;
			}
		}
		t->next = now_ms();
	}
	for (i = 0; i < count; i++)
		for (k = 0; k < nt; k++)
			if (one(&tg[k], i, gap) == -1)
				return 1;
	for (k = 0; k < nt; k++) {
		struct target *t = &tg[k];

		if (t->sup == 0) {
			kill(t->old, SIGKILL);
			waitpid(t->old, NULL, 0);
		}
		printf("T%d n=%d ", k, count);
		report("", t->lat, count);
		if (t->sfile)
			report("s", t->slat, count);
		printf("\nT%d samples=", k);
		for (i = 0; i < count; i++)
			printf("%s%.2f", i ? "," : "", t->lat[i]);
		printf("\n");
	}
	return 0;
}
