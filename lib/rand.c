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
static int seeded;

/* Forked workers call this, or they would share one stream. */
void
rand_seed(void)
{
	if (getrandom(s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
		s[0] = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
		s[1] = (uint64_t)clock_ms() * 0x9e3779b97f4a7c15ULL;
	}
	if (s[0] == 0 && s[1] == 0)
		s[1] = 1;
	seeded = 1;
}

uint64_t
rand_next(void)
{
	uint64_t x, y;

	if (!seeded)
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
	{
		/* 8-4-4-4-12 hex digits, without printf: one per request. */
		static const char hex[] = "0123456789abcdef";
		int i, o = 0;
		for (i = 0; i < 16; i++) {
			uint64_t w = i < 8 ? a : b;
			unsigned byte = (unsigned)(w >> (56 - 8 * (i % 8))) & 0xff;
			if (i == 4 || i == 6 || i == 8 || i == 10)
				out[o++] = '-';
			out[o++] = hex[byte >> 4];
			out[o++] = hex[byte & 15];
		}
		out[o] = '\0';
	}
}
