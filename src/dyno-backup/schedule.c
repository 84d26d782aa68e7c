/*
 * schedule.c: the crontab or /etc/cron.d line for a daily capture.
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

/* A word for a crontab line: as is when safe, else in single quotes. */
static void
shell_word(const char *s, char *out, size_t outlen)
{
	size_t o = 0;

	if (*s != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:,@+") == strlen(s)) {
		snprintf(out, outlen, "%s", s);
		return;
	}
	out[o++] = '\'';
	for (; *s != '\0' && o + 6 < outlen; s++) {
		if (*s == '\'') {
			memcpy(out + o, "'\\''", 4);
			o += 4;
		} else if (*s == '%') {
			/* cron turns a bare % into a newline */
			memcpy(out + o, "\\%", 2);
			o += 2;
		} else
			out[o++] = *s;
	}
	out[o++] = '\'';
	out[o] = '\0';
}

int
cmd_schedule(void)
{
	const char *at = opt.at != NULL ? opt.at : "02:00";
	char self[PATH_MAX], w[8192], line[16384];
	long hh, mm;
	ssize_t len;
	int o;

	if (strlen(at) != 5 || at[2] != ':' || !isdigit((unsigned char)at[0]) ||
	    !isdigit((unsigned char)at[1]) || !isdigit((unsigned char)at[3]) ||
	    !isdigit((unsigned char)at[4]))
		usage_error("--at %s: give the time as HH:MM, e.g. 02:30", at);
	hh = (at[0] - '0') * 10 + at[1] - '0';
	mm = (at[3] - '0') * 10 + at[4] - '0';
	if (hh > 23 || mm > 59)
		usage_error("--at %s: no such time of day", at);
	if (opt.db != NULL)
		usage_error("schedule: --db would put the password in the crontab; set DATABASE_URL with dyno-deploy config:set instead");
	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0)
		snprintf(self, sizeof(self), "dyno-backup");
	else
		self[len] = '\0';
	o = snprintf(line, sizeof(line), "%ld %ld * * * ", mm, hh);
	/* /etc/cron.d and /etc/crontab lines name the user; crontab -e's do not. */
	if (opt.cron_user != NULL) {
		const char *u = opt.cron_user;
		if (*u == '\0' || *u == '-' || strspn(u, "abcdefghijklmnopqrstuvwxyz"
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != strlen(u) ||
		    strlen(u) > 32)
			usage_error("--user %s: not a user name", u);
		if (getpwnam(u) == NULL)
			usage_error("--user %s: no such user", u);
		o += snprintf(line + o, sizeof(line) - (size_t)o, "%s ", u);
	}
	shell_word(self, w, sizeof(w));
	o += snprintf(line + o, sizeof(line) - (size_t)o, "%s -a ", w);
	shell_word(app.dir, w, sizeof(w));
	o += snprintf(line + o, sizeof(line) - (size_t)o, "%s capture --scheduled", w);
	if (opt.cmd != NULL) {
		shell_word(opt.cmd, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --cmd %s", w);
	}
	if (opt.to != NULL) {
		shell_word(opt.to, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --to %s", w);
	}
	if (opt.encrypt_to != NULL) {
		shell_word(opt.encrypt_to, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --encrypt-to %s", w);
	}
	if (opt.endpoint != NULL) {
		shell_word(opt.endpoint, w, sizeof(w));
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --endpoint %s", w);
	}
	if (opt.keep_daily != 7)
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --keep-daily %ld", opt.keep_daily);
	if (opt.keep_weekly != 4)
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --keep-weekly %ld", opt.keep_weekly);
	if (opt.keep_manual != 10)
		o += snprintf(line + o, sizeof(line) - (size_t)o, " --keep-manual %ld", opt.keep_manual);
	if ((size_t)o >= sizeof(line))
		die("schedule: the line is too long");
	printf("%s\n", line);
	return fflush(stdout) == 0 ? 0 : 1;
}
