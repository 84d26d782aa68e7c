/*
 * http.c: a strict HTTP/1.x message-head parser and a streaming chunked-body
 * framer, written for a proxy.  Strict because a proxy that reads a message
 * differently from the server behind it can be made to smuggle requests
 * (RFC 9112 section 11.2): anything ambiguous is rejected, never guessed at.
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

#include "dyno.h"

/* tchar from RFC 9110 section 5.6.2, as a table: names are checked per byte. */
static const unsigned char tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
	['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,
	['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
	['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1,
	['Y'] = 1, ['Z'] = 1,
	['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1,
	['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
	['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
	['y'] = 1, ['z'] = 1,
};

static int
is_tchar(unsigned char c)
{
	return tchar[c];
}

static unsigned char
ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c | 0x20) : c;
}

/*
 * Case-insensitive (ASCII) equality of s[0..len) and the string word.  It is
 * called for every header against every name a caller knows, so it stops at
 * the first differing byte instead of measuring word first.
 */
int
http_token_eq(const char *s, size_t len, const char *word)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (word[i] == '\0' || ascii_lower((unsigned char)s[i]) !=
		    ascii_lower((unsigned char)word[i]))
			return 0;
	return word[len] == '\0';
}

/* Does a comma-separated list value hold the wlen-byte token `word`? */
int
http_list_has_n(const char *v, size_t len, const char *word, size_t wlen)
{
	size_t i = 0, k;

	while (i < len) {
		size_t start, end;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		start = i;
		while (i < len && v[i] != ',')
			i++;
		end = i;
		while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
			end--;
		if (end - start != wlen || wlen == 0)
			continue;
		for (k = 0; k < wlen; k++)
			if (ascii_lower((unsigned char)v[start + k]) !=
			    ascii_lower((unsigned char)word[k]))
				break;
		if (k == wlen)
			return 1;
	}
	return 0;
}

/* Does a comma-separated list value hold token `word`? */
int
http_list_has(const char *v, size_t len, const char *word)
{
	return http_list_has_n(v, len, word, strlen(word));
}

/* The last element of a list value, for Transfer-Encoding's final coding. */
static void
list_last(const char *v, size_t len, const char **out, size_t *outlen)
{
	size_t end = len, start;

	while (end > 0 && (v[end - 1] == ' ' || v[end - 1] == '\t'))
		end--;
	start = end;
	while (start > 0 && v[start - 1] != ',')
		start--;
	while (start < end && (v[start] == ' ' || v[start] == '\t'))
		start++;
	*out = v + start;
	*outlen = end - start;
}

static int
parse_content_length(const char *v, size_t len, int64_t *out)
{
	int64_t n = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		if (n > (INT64_MAX - 9) / 10)
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	*out = n;
	return 0;
}

/*
 * Parse the header lines starting at buf[off] up to and including the empty
 * line.  Fills m->headers and the framing facts every message shares.
 * Returns the head length, 0 if incomplete, or -1 with m->error set.
 */
static int
parse_fields(const char *buf, size_t len, size_t off, struct http_msg *m,
    int limit_status)
{
	m->nheaders = 0;
	m->content_length = -1;
	m->chunked = 0;
	m->conn_close = m->conn_keepalive = m->conn_upgrade = 0;
	m->has_te = 0;
	for (;;) {
		const char *line = buf + off, *cr, *colon;
		size_t linelen, avail = len - off, nlen, vstart, vend;
		struct http_header *h;

		cr = memchr(line, '\r', avail);
		if (cr == NULL) {
			if (memchr(line, '\n', avail) != NULL)
				return m->error = 400, -1;	/* bare LF */
			if (avail > HTTP_LINE_MAX)
				return m->error = limit_status, -1;
			return 0;
		}
		linelen = (size_t)(cr - line);
		if (memchr(line, '\n', linelen) != NULL)
			return m->error = 400, -1;	/* bare LF */
		if (linelen > HTTP_LINE_MAX)
			return m->error = limit_status, -1;
		if (linelen + 1 >= avail)
			return 0;		/* need the LF */
		if (cr[1] != '\n')
			return m->error = 400, -1;	/* bare CR */
		if (linelen == 0)
			return (int)(off + 2);
		if (line[0] == ' ' || line[0] == '\t')
			return m->error = 400, -1;	/* obs-fold */
		colon = memchr(line, ':', linelen);
		if (colon == NULL || colon == line)
			return m->error = 400, -1;
		nlen = (size_t)(colon - line);
		for (size_t i = 0; i < nlen; i++)
			if (!is_tchar((unsigned char)line[i]))
				return m->error = 400, -1;	/* incl. space before ':' */
		if (nlen > HTTP_NAME_MAX)
			return m->error = limit_status, -1;
		if (m->nheaders == HTTP_HEADERS_MAX)
			return m->error = limit_status, -1;
		vstart = nlen + 1;
		while (vstart < linelen && (line[vstart] == ' ' || line[vstart] == '\t'))
			vstart++;
		vend = linelen;
		while (vend > vstart && (line[vend - 1] == ' ' || line[vend - 1] == '\t'))
			vend--;
		for (size_t i = vstart; i < vend; i++) {
			unsigned char c = (unsigned char)line[i];
			if (c == 0 || c == 0x7f || (c < 0x20 && c != '\t'))
				return m->error = 400, -1;
		}
		h = &m->headers[m->nheaders++];
		h->name = line;
		h->name_len = nlen;
		h->value = line + vstart;
		h->value_len = vend - vstart;
		h->line_len = linelen + 2;
		off += linelen + 2;
	}
}

/* Framing rules shared by requests and responses. */
static int
framing(struct http_msg *m)
{
	size_t i;
	int n_cl = 0, n_te = 0;

	for (i = 0; i < m->nheaders; i++) {
		struct http_header *h = &m->headers[i];

		/* Most fields are none of the three: their lengths say so. */
		if (h->name_len != 10 && h->name_len != 14 && h->name_len != 17)
			continue;
		if (http_token_eq(h->name, h->name_len, "content-length")) {
			if (n_cl++ > 0 || parse_content_length(h->value,
			    h->value_len, &m->content_length) == -1)
				return -1;
		} else if (http_token_eq(h->name, h->name_len,
		    "transfer-encoding")) {
			const char *last;
			size_t lastlen;

			/* One TE field, whose final coding is chunked, once. */
			if (n_te++ > 0)
				return -1;
			list_last(h->value, h->value_len, &last, &lastlen);
			if (!http_token_eq(last, lastlen, "chunked"))
				return -1;
			{
				size_t before = (size_t)(last - h->value);
				if (http_list_has(h->value, before, "chunked"))
					return -1;
			}
			m->chunked = 1;
			m->has_te = 1;
		} else if (http_token_eq(h->name, h->name_len, "connection")) {
			if (http_list_has(h->value, h->value_len, "close"))
				m->conn_close = 1;
			if (http_list_has(h->value, h->value_len, "keep-alive"))
				m->conn_keepalive = 1;
			if (http_list_has(h->value, h->value_len, "upgrade"))
				m->conn_upgrade = 1;
		}
	}
	if (n_cl > 0 && n_te > 0)
		return -1;
	return 0;
}

static int
parse_version(const char *p, size_t len, int *minor)
{
	if (len != 8 || memcmp(p, "HTTP/1.", 7) != 0 ||
	    (p[7] != '0' && p[7] != '1'))
		return -1;
	*minor = p[7] - '0';
	return 0;
}

int
http_parse_request(const char *buf, size_t len, struct http_msg *m)
{
	const char *cr, *sp1, *sp2, *end;
	size_t linelen, i;
	int n, hosts = 0;

	/* Not the 100 header slots: parse_fields fills those it uses. */
	memset(m, 0, offsetof(struct http_msg, headers));
	m->nheaders = 0;
	cr = memchr(buf, '\r', len);
	if (cr == NULL) {
		if (memchr(buf, '\n', len) != NULL)
			return m->error = 400, -1;
		if (len > HTTP_LINE_MAX)
			return m->error = 414, -1;
		return 0;
	}
	linelen = (size_t)(cr - buf);
	if (linelen > HTTP_LINE_MAX)
		return m->error = 414, -1;
	if (linelen + 1 >= len)
		return 0;
	if (cr[1] != '\n' || memchr(buf, '\n', linelen) != NULL)
		return m->error = 400, -1;
	end = buf + linelen;
	sp1 = memchr(buf, ' ', linelen);
	if (sp1 == NULL || sp1 == buf)
		return m->error = 400, -1;
	for (const char *p = buf; p < sp1; p++)
		if (!is_tchar((unsigned char)*p))
			return m->error = 400, -1;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (sp2 == NULL || sp2 == sp1 + 1)
		return m->error = 400, -1;
	for (const char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p == 0x7f)
			return m->error = 400, -1;
	if (parse_version(sp2 + 1, (size_t)(end - sp2 - 1), &m->minor) == -1)
		return m->error = 400, -1;
	m->method = buf;
	m->method_len = (size_t)(sp1 - buf);
	m->target = sp1 + 1;
	m->target_len = (size_t)(sp2 - sp1 - 1);
	n = parse_fields(buf, len, linelen + 2, m, 431);
	if (n <= 0)
		return n;
	m->head_len = (size_t)n;
	if (framing(m) == -1)
		return m->error = 400, -1;
	if (m->has_te && m->minor == 0)
		return m->error = 400, -1;
	for (i = 0; i < m->nheaders; i++)
		if (m->headers[i].name_len == 4 &&
		    http_token_eq(m->headers[i].name, 4, "host")) {
			hosts++;
			m->host = m->headers[i].value;
			m->host_len = m->headers[i].value_len;
		}
	if (hosts > 1 || (hosts == 0 && m->minor == 1))
		return m->error = 400, -1;
	m->keep_alive = m->minor == 1 ? !m->conn_close :
	    (m->conn_keepalive && !m->conn_close);
	return n;
}

int
http_parse_response(const char *buf, size_t len, struct http_msg *m)
{
	const char *cr;
	size_t linelen;
	int n;

	memset(m, 0, offsetof(struct http_msg, headers));
	m->nheaders = 0;
	cr = memchr(buf, '\r', len);
	if (cr == NULL) {
		if (memchr(buf, '\n', len) != NULL || len > HTTP_LINE_MAX)
			return m->error = 502, -1;
		return 0;
	}
	linelen = (size_t)(cr - buf);
	if (linelen + 1 >= len)
		return 0;
	if (cr[1] != '\n' || linelen < 12 || linelen > HTTP_LINE_MAX ||
	    parse_version(buf, 8, &m->minor) == -1 || buf[8] != ' ' ||
	    buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' || (linelen > 12 && buf[12] != ' '))
		return m->error = 502, -1;
	for (size_t i = 12; i < linelen; i++) {
		unsigned char c = (unsigned char)buf[i];
		if (c == '\n' || c == 0 || c == 0x7f || (c < 0x20 && c != '\t'))
			return m->error = 502, -1;
	}
	m->status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	n = parse_fields(buf, len, linelen + 2, m, 502);
	if (n <= 0) {
		if (n == -1)
			m->error = 502;
		return n;
	}
	m->head_len = (size_t)n;
	if (framing(m) == -1)
		return m->error = 502, -1;
	m->keep_alive = m->minor == 1 ? !m->conn_close :
	    (m->conn_keepalive && !m->conn_close);
	return n;
}

/* ---- chunked framing ---------------------------------------------------- */

enum {
	CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER_START, CH_TRAILER, CH_TRAILER_LF, CH_END_LF, CH_DONE
};

void
chunked_init(struct chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE;
}

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

/*
 * Walk len bytes of a chunked body.  Returns how many belong to it (fewer
 * than len only when the body ended), or -1 on a framing error.  The bytes
 * themselves are forwarded untouched; this only finds where the body ends.
 */
ssize_t
chunked_feed(struct chunked *c, const char *buf, size_t len)
{
	size_t i = 0;

	while (i < len && c->state != CH_DONE) {
		unsigned char ch = (unsigned char)buf[i];

		switch (c->state) {
		case CH_SIZE: {
			int v = hexval(ch);
			if (v >= 0) {
				if (++c->digits > 16)
					return -1;
				if (c->size > (UINT64_MAX >> 4))
					return -1;
				c->size = (c->size << 4) | (uint64_t)v;
				i++;
				break;
			}
			if (c->digits == 0)
				return -1;
			if (ch == ';' || ch == ' ' || ch == '\t')
				c->state = CH_EXT;
			else if (ch == '\r')
				c->state = CH_SIZE_LF;
			else
				return -1;
			i++;
			break;
		}
		case CH_EXT:
			if (ch == '\r')
				c->state = CH_SIZE_LF;
			else if (ch == '\n' || ch == 0)
				return -1;
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->state = c->size == 0 ? CH_TRAILER_START : CH_DATA;
			c->left = c->size;
			break;
		case CH_DATA: {
			size_t take = len - i;
			if ((uint64_t)take > c->left)
				take = (size_t)c->left;
			c->left -= take;
			i += take;
			if (c->left == 0)
				c->state = CH_DATA_CR;
			break;
		}
		case CH_DATA_CR:
			if (ch != '\r')
				return -1;
			i++;
			c->state = CH_DATA_LF;
			break;
		case CH_DATA_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->size = 0;
			c->digits = 0;
			c->state = CH_SIZE;
			break;
		case CH_TRAILER_START:
			i++;
			if (ch == '\r')
				c->state = CH_END_LF;
			else if (ch == '\n' || ch == ' ' || ch == '\t')
				return -1;
			else {
				c->trailer_len = 1;
				c->state = CH_TRAILER;
			}
			break;
		case CH_TRAILER:
			i++;
			if (ch == '\r')
				c->state = CH_TRAILER_LF;
			else if (ch == '\n' || ++c->trailer_len > HTTP_LINE_MAX)
				return -1;
			break;
		case CH_TRAILER_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->state = CH_TRAILER_START;
			break;
		case CH_END_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->state = CH_DONE;
			break;
		}
	}
	return (ssize_t)i;
}

int
chunked_done(const struct chunked *c)
{
	return c->state == CH_DONE;
}

/* ---- what a proxy passes on ----------------------------------------------- */

/* A header's name is the lowercase literal `lit`: lengths first, cheaply. */
#define NAME_IS(h, lit) ((h)->name_len == sizeof(lit) - 1 && \
	http_token_eq((h)->name, (h)->name_len, (lit)))

/*
 * Which of m's headers are Connection headers: their indexes in conn[],
 * ended by -1.  Looked up once per message, not once per header.
 */
void
http_connection_headers(const struct http_msg *m, int *conn, size_t max)
{
	size_t i, n = 0;

	for (i = 0; i < m->nheaders && n + 1 < max; i++)
		if (NAME_IS(&m->headers[i], "connection"))
			conn[n++] = (int)i;
	conn[n] = -1;
}

/*
 * Is h one of m's hop-by-hop fields (RFC 9110 section 7.6.1), which a proxy
 * drops: the fixed list, and any field a Connection header names but Host,
 * Content-Length and Transfer-Encoding?  conn is what
 * http_connection_headers found for m.
 */
int
http_hop_by_hop(const struct http_header *h, const struct http_msg *m,
    const int *conn)
{
	size_t i;

	switch (h->name_len) {
	case 2:
		if (NAME_IS(h, "te"))
			return 1;
		break;
	case 7:
		if (NAME_IS(h, "trailer") || NAME_IS(h, "upgrade"))
			return 1;
		break;
	case 10:
		if (NAME_IS(h, "connection") || NAME_IS(h, "keep-alive"))
			return 1;
		break;
	case 16:
		if (NAME_IS(h, "proxy-connection"))
			return 1;
		break;
	case 18:
		if (NAME_IS(h, "proxy-authenticate"))
			return 1;
		break;
	case 19:
		if (NAME_IS(h, "proxy-authorization"))
			return 1;
		break;
	}
	/*
	 * ... and any field the Connection header names, but never one that
	 * frames the message: the body goes on as it was framed, so a dyno
	 * told "Connection: content-length" would read it as the next request.
	 */
	if (NAME_IS(h, "content-length") || NAME_IS(h, "transfer-encoding") ||
	    NAME_IS(h, "host"))
		return 0;
	for (i = 0; conn[i] >= 0; i++)
		if (http_list_has_n(m->headers[conn[i]].value,
		    m->headers[conn[i]].value_len, h->name, h->name_len))
			return 1;
	return 0;
}
