/*
 * fuzz_proxy.c: libFuzzer harness for what dyno-route passes on: the head a
 * dyno gets for a request and the head a client gets for a response, both
 * rebuilt from the parse with http_connection_headers and http_hop_by_hop
 * deciding which fields go, the way src/dyno-route/relay_http.c does it.
 *
 * The input is read as a request and as a response.  When it parses, the
 * rebuilt head must:
 *
 *   - parse again, whole, as the same kind of message, with exactly the
 *     fields this harness expects, in order, values unchanged: every field
 *     but the hop-by-hop list, Connection itself and the fields a
 *     Connection header names (judged here by a separate, simple reading);
 *   - never lose a framing field: Content-Length, Transfer-Encoding and Host
 *     stay even when a Connection header names them, so the dyno or the
 *     client frames the body the router forwards as the router framed it;
 *   - carry no CR, LF or NUL but the line ends: one line per field.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dyno.h"

#define CHECK(x) do { if (!(x)) __builtin_trap(); } while (0)

static int
lower(int c)
{
	return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int
same_name(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t i;

	if (alen != blen)
		return 0;
	for (i = 0; i < alen; i++)
		if (lower((unsigned char)a[i]) != lower((unsigned char)b[i]))
			return 0;
	return 1;
}

static int
named(const struct http_header *h, const char *lit)
{
	return same_name(h->name, h->name_len, lit, strlen(lit));
}

/* Is name one of the comma-separated, space-trimmed items of v? */
static int
listed(const char *v, size_t len, const char *name, size_t nlen)
{
	size_t i = 0;

	while (i <= len) {
		size_t j = i, s, e;

		while (j < len && v[j] != ',')
			j++;
		s = i;
		e = j;
		while (s < e && (v[s] == ' ' || v[s] == '\t'))
			s++;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (same_name(v + s, e - s, name, nlen))
			return 1;
		i = j + 1;
	}
	return 0;
}

/* This harness's own answer to "does a proxy pass h on?". */
static int
passes(const struct http_msg *m, const struct http_header *h)
{
	static const char *const hop[] = {
		"connection", "keep-alive", "proxy-connection", "te",
		"trailer", "upgrade", "proxy-authenticate",
		"proxy-authorization",
	};
	size_t i;

	for (i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (named(h, hop[i]))
			return 0;
	if (named(h, "content-length") || named(h, "transfer-encoding") ||
	    named(h, "host"))
		return 1;
	for (i = 0; i < m->nheaders; i++)
		if (named(&m->headers[i], "connection") &&
		    listed(m->headers[i].value, m->headers[i].value_len,
		    h->name, h->name_len))
			return 0;
	return 1;
}

struct out {
	char *data;
	size_t len, cap;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->len + n > o->cap) {
		o->cap = (o->len + n) * 2;
		o->data = realloc(o->data, o->cap);
		CHECK(o->data != NULL);
	}
	if (n > 0)
		memcpy(o->data + o->len, s, n);
	o->len += n;
}

#define PUT_LIT(o, lit) put((o), (lit), sizeof(lit) - 1)

/* The fields a proxy passes on, as dyno-route writes them (buf_header). */
static void
put_fields(struct out *o, const struct http_msg *m)
{
	int conn[HTTP_HEADERS_MAX + 1];
	size_t i;

	http_connection_headers(m, conn, sizeof(conn) / sizeof(conn[0]));
	for (i = 0; i < m->nheaders; i++) {
		const struct http_header *h = &m->headers[i];

		if (http_hop_by_hop(h, m, conn))
			continue;
		put(o, h->name, h->name_len);
		PUT_LIT(o, ": ");
		put(o, h->value, h->value_len);
		PUT_LIT(o, "\r\n");
	}
	PUT_LIT(o, "\r\n");
}

/* The rebuilt message a2 of a: the expected fields, framing unchanged. */
static void
check_rebuilt(const struct http_msg *a, const struct out *o,
    const struct http_msg *a2, int n)
{
	size_t i, k = 0, lines = 0;

	CHECK(n > 0 && (size_t)n == o->len);
	for (i = 0; i + 1 < o->len; i++) {
		CHECK(o->data[i] != '\0');
		if (o->data[i] == '\r' || o->data[i] == '\n') {
			CHECK(o->data[i] == '\r' && o->data[i + 1] == '\n');
			lines++;
			i++;
		}
	}
	for (i = 0; i < a->nheaders; i++) {
		const struct http_header *h = &a->headers[i], *h2;

		if (!passes(a, h))
			continue;
		CHECK(k < a2->nheaders);
		h2 = &a2->headers[k++];
		CHECK(h2->name_len == h->name_len &&
		    memcmp(h2->name, h->name, h->name_len) == 0);
		CHECK(h2->value_len == h->value_len &&
		    memcmp(h2->value, h->value, h->value_len) == 0);
	}
	CHECK(k == a2->nheaders);
	CHECK(lines == a2->nheaders + 2);	/* start line, fields, blank */
	for (i = 0; i < a2->nheaders; i++)
		CHECK(!named(&a2->headers[i], "connection"));
	CHECK(a2->content_length == a->content_length);
	CHECK(a2->chunked == a->chunked);
	CHECK((a2->host == NULL) == (a->host == NULL));
	if (a->host != NULL)
		CHECK(a2->host_len == a->host_len &&
		    memcmp(a2->host, a->host, a->host_len) == 0);
}

static void
check_request(const char *buf, size_t len, struct http_msg *m,
    struct http_msg *m2)
{
	struct out o = { 0 };
	char *copy;
	int n;

	if (http_parse_request(buf, len, m) <= 0)
		return;
	put(&o, m->method, m->method_len);
	PUT_LIT(&o, " ");
	put(&o, m->target, m->target_len);
	if (m->minor == 1)
		PUT_LIT(&o, " HTTP/1.1\r\n");
	else
		PUT_LIT(&o, " HTTP/1.0\r\n");
	put_fields(&o, m);
	copy = malloc(o.len);
	CHECK(copy != NULL);
	memcpy(copy, o.data, o.len);
	n = http_parse_request(copy, o.len, m2);
	check_rebuilt(m, &(struct out){ copy, o.len, o.len }, m2, n);
	CHECK(m2->method_len == m->method_len && m2->target_len == m->target_len);
	CHECK(m2->minor == m->minor);
	free(copy);
	free(o.data);
}

static void
check_response(const char *buf, size_t len, struct http_msg *m,
    struct http_msg *m2)
{
	struct out o = { 0 };
	const char *cr;
	size_t rlen;
	char *copy;
	int n;

	if (http_parse_response(buf, len, m) <= 0)
		return;
	/* Our status line, with the dyno's own reason phrase. */
	cr = memchr(buf, '\r', m->head_len);
	CHECK(cr != NULL);
	rlen = cr - buf > 13 ? (size_t)(cr - buf - 13) : 0;
	PUT_LIT(&o, "HTTP/1.1 ");
	put(&o, buf + 9, 3);
	PUT_LIT(&o, " ");
	put(&o, buf + 13, rlen);
	PUT_LIT(&o, "\r\n");
	put_fields(&o, m);
	copy = malloc(o.len);
	CHECK(copy != NULL);
	memcpy(copy, o.data, o.len);
	n = http_parse_response(copy, o.len, m2);
	check_rebuilt(m, &(struct out){ copy, o.len, o.len }, m2, n);
	CHECK(m2->status == m->status);
	free(copy);
	free(o.data);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_msg m, m2;	/* large: keep off the stack */
	char *buf;

	if (size > 2 * HTTP_HEAD_MAX)
		return 0;
	if ((buf = malloc(size ? size : 1)) == NULL)
		return 0;
	if (size > 0)
		memcpy(buf, data, size);
	check_request(buf, size, &m, &m2);
	check_response(buf, size, &m, &m2);
	free(buf);
	return 0;
}
