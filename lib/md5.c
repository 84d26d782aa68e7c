/*
 * md5.c: MD5 (RFC 1321), only to check an S3 upload: S3's ETag of a plain
 * PUT is the MD5 of the body, and of a multipart upload the MD5 of the
 * parts' MD5s.  Never used where collisions would matter; sha256 is the
 * backup's own checksum.
 */
#include <string.h>

#include "dyno.h"

static const uint32_t T[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
	0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
	0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
	0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
	0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
	0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};
static const unsigned char S[64] = {
	7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
	5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9, 14, 20,
	4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
	6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
};

#define ROL(x, n) (((x) << (n)) | ((x) >> (32 - (n))))

static void
md5_block(struct md5 *m, const unsigned char *p)
{
	uint32_t x[16], a, b, c, d, f, t;
	int i, g;

	for (i = 0; i < 16; i++)
		x[i] = (uint32_t)p[i * 4] | (uint32_t)p[i * 4 + 1] << 8 |
		    (uint32_t)p[i * 4 + 2] << 16 | (uint32_t)p[i * 4 + 3] << 24;
	a = m->h[0]; b = m->h[1]; c = m->h[2]; d = m->h[3];
	for (i = 0; i < 64; i++) {
		if (i < 16) {
			f = (b & c) | (~b & d);
			g = i;
		} else if (i < 32) {
			f = (d & b) | (~d & c);
			g = (5 * i + 1) % 16;
		} else if (i < 48) {
			f = b ^ c ^ d;
			g = (3 * i + 5) % 16;
		} else {
			f = c ^ (b | ~d);
			g = (7 * i) % 16;
		}
		t = d;
		d = c;
		c = b;
		b = b + ROL(a + f + T[i] + x[g], S[i]);
		a = t;
	}
	m->h[0] += a; m->h[1] += b; m->h[2] += c; m->h[3] += d;
}

void
md5_init(struct md5 *m)
{
	m->h[0] = 0x67452301;
	m->h[1] = 0xefcdab89;
	m->h[2] = 0x98badcfe;
	m->h[3] = 0x10325476;
	m->len = 0;
	m->fill = 0;
}

void
md5_update(struct md5 *m, const void *data, size_t n)
{
	const unsigned char *p = data;
	size_t take;

	m->len += n;
	if (m->fill > 0) {
		take = 64 - m->fill < n ? 64 - m->fill : n;
		memcpy(m->buf + m->fill, p, take);
		m->fill += take;
		p += take;
		n -= take;
		if (m->fill < 64)
			return;
		md5_block(m, m->buf);
		m->fill = 0;
	}
	for (; n >= 64; p += 64, n -= 64)
		md5_block(m, p);
	memcpy(m->buf, p, n);
	m->fill = n;
}

void
md5_final(struct md5 *m, unsigned char out[16])
{
	uint64_t bits = m->len * 8;
	unsigned char pad[72];
	size_t padlen = (m->fill < 56 ? 56 : 120) - m->fill;
	int i;

	memset(pad, 0, sizeof(pad));
	pad[0] = 0x80;
	for (i = 0; i < 8; i++)
		pad[padlen + (size_t)i] = (unsigned char)(bits >> (8 * i));
	md5_update(m, pad, padlen + 8);
	for (i = 0; i < 16; i++)
		out[i] = (unsigned char)(m->h[i / 4] >> (8 * (i % 4)));
}
