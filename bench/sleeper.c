/* sleeper.c: the supervised program for bench/supervise.sh.  Prints its pid,
 * then pauses until a signal ends it.  Built by the script as "bsleeper" so
 * its /proc comm is unique and the probe can tell it from sh or a fork. */
#include <stdio.h>
#include <unistd.h>

int
main(void)
{
	printf("bsleeper %ld\n", (long)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
