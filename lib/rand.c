/*
 * rand.c: xorshift128+ seeded once from the kernel.  For load-balancing
 * choices and request ids, which must be unique and cheap, not secret.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "dyno.h"

static uint64_t s[2];
static pid_t seeded_pid;

static void
rand_seed(void)
{
	if (getrandom(s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
		s[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		s[1] = (uint64_t)clock_ms() * 0x9e3779b97f4a7c15ULL;
	}
	if (s[0] == 0 && s[1] == 0)
		s[1] = 1;
	seeded_pid = getpid();
}

uint64_t
rand_next(void)
{
	uint64_t x, y;

	if (seeded_pid != getpid())	/* forked workers must not share a stream */
		rand_seed();
	x = s[0];
	y = s[1];
	s[0] = y;
	x ^= x << 23;
	s[1] = x ^ y ^ (x >> 17) ^ (y >> 26);
	return s[1] + y;
}

void
rand_uuid(char out[37])
{
	uint64_t a = rand_next(), b = rand_next();

	a = (a & ~0xf000ULL) | 0x4000ULL;		/* version 4 */
	b = (b & ~(3ULL << 62)) | (2ULL << 62);	/* variant 10 */
	snprintf(out, 37, "%08x-%04x-%04x-%04x-%012llx",
	    (unsigned)(a >> 32), (unsigned)((a >> 16) & 0xffff),
	    (unsigned)(a & 0xffff), (unsigned)(b >> 48),
	    (unsigned long long)(b & 0xffffffffffffULL));
}
