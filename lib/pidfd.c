/* pidfd.c: a file descriptor that polls readable when a process exits (Linux >= 5.3). */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "dyno.h"

int
pidfd_watch(pid_t pid)
{
#ifdef SYS_pidfd_open
	/* pidfds are close-on-exec from birth. */
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}
