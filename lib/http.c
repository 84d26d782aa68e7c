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

/*
 * Transfer-Encoding's codings, the list of RFC 9110 section 5.6.1 with
 * optional parameters: 0 for exactly "chunked", 1 for other codings before
 * a final "chunked" (valid, but nothing the router decodes), -1 for a final
 * coding that is not chunked, chunked twice or with parameters, or a list
 * that does not parse.  Empty elements are allowed, as the list rule says.
 */
static int
te_codings(const char *v, size_t len)
{
	size_t i = 0, n = 0;
	int last_chunked = 0;

	while (i < len) {
		size_t start;
		int params = 0;

		while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && is_tchar((unsigned char)v[i]))
			i++;
		if (i == start)
			return -1;
		if (last_chunked)
			return -1;	/* chunked was not the last */
		last_chunked = http_token_eq(v + start, i - start, "chunked");
		/* Parameters: OWS ";" OWS token "=" ( token / quoted-string ),
		 * held only to the bytes they may contain. */
		while (i < len && v[i] != ',') {
			unsigned char ch = (unsigned char)v[i];
			if (ch == ';')
				params = 1;
			else if (!params && ch != ' ' && ch != '\t')
				return -1;
			i++;
		}
		if (last_chunked && params)
			return -1;
		n++;
	}
	if (!last_chunked)
		return -1;
	return n == 1 ? 0 : 1;
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

/*
 * Framing rules shared by requests and responses: 0, -1 for a message that
 * cannot be framed safely, or -2 for one framed by chunked under codings the
 * router does not decode (a request's 501; a response passes them on).
 */
static int
framing(struct http_msg *m)
{
	size_t i;
	int n_cl = 0, n_te = 0, ret = 0;

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
			int r;

			/* One TE field, whose final coding is chunked, once. */
			if (n_te++ > 0 ||
			    (r = te_codings(h->value, h->value_len)) < 0)
				return -1;
			if (r == 1)
				ret = -2;
			m->chunked = 1;
			m->has_te = 1;
		} else if (http_token_eq(h->name, h->name_len, "connection")) {
			/*
			 * A field that frames the message, or says where it
			 * goes, is never hop-by-hop (RFC 9110 section
			 * 7.6.1): a sender naming one here means the next hop
			 * to read the body otherwise than we do.  Refused.
			 */
			if (http_list_has(h->value, h->value_len,
			    "content-length") || http_list_has(h->value,
			    h->value_len, "transfer-encoding") ||
			    http_list_has(h->value, h->value_len, "host"))
				return -1;
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
	return ret;
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

/* reg-name's bytes but "%": unreserved and sub-delims (RFC 3986). */
static int
is_regname(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~' || c == '!' || c == '$' || c == '&' || c == '\'' ||
	    c == '(' || c == ')' || c == '*' || c == '+' || c == ',' ||
	    c == ';' || c == '=';
}

/*
 * Is h[0..len) uri-host [ ":" port ] (RFC 9112 section 3.2), the port a
 * number up to 65535?  Stricter than RFC 3986 where it costs no one: the
 * host is not empty, a ":" has a port after it, and an IP-literal holds
 * only what an IPv6 address can.  No userinfo: "user@host" is refused.
 */
int
http_host_valid(const char *h, size_t len)
{
	size_t i = 0;
	long port = 0;

	if (len > 0 && h[0] == '[') {
		for (i = 1; i < len && h[i] != ']'; i++)
			if (hexval((unsigned char)h[i]) < 0 && h[i] != ':' &&
			    h[i] != '.')
				return 0;
		if (i == len || i < 3)
			return 0;
		i++;
	} else {
		for (; i < len && h[i] != ':'; i++) {
			if (h[i] == '%') {
				if (i + 2 >= len || hexval((unsigned char)h[i + 1]) < 0 ||
				    hexval((unsigned char)h[i + 2]) < 0)
					return 0;
				i += 2;
			} else if (!is_regname((unsigned char)h[i]))
				return 0;
		}
		if (i == 0)
			return 0;
	}
	if (i == len)
		return 1;
	if (h[i] != ':' || ++i == len || len - i > 5)
		return 0;
	for (; i < len; i++) {
		if (h[i] < '0' || h[i] > '9')
			return 0;
		port = port * 10 + (h[i] - '0');
	}
	return port <= 65535;
}

/*
 * The request target: origin-form ("/path?query") goes on as it is;
 * absolute-form ("http://host/path") goes on as origin-form, its authority
 * taking Host's place (RFC 9112 section 3.2.2).  CONNECT's authority-form
 * is not implemented (501), and neither is OPTIONS's asterisk-form (400, as
 * any other target that is none of these).  0, or the status to refuse with.
 */
static int
request_target(struct http_msg *m)
{
	const char *t = m->target, *auth, *end = m->target + m->target_len;
	size_t i = 0;

	if (m->method_len == 7 && memcmp(m->method, "CONNECT", 7) == 0)
		return 501;
	if (t[0] == '/') {
		m->path = t;
		m->path_len = m->target_len;
		return 0;
	}
	/* scheme "://": http or https, any case, nothing else. */
	if (m->target_len > 7 && http_token_eq(t, 7, "http://"))
		i = 7;
	else if (m->target_len > 8 && http_token_eq(t, 8, "https://"))
		i = 8;
	else
		return 400;
	auth = t + i;
	while (t + i < end && t[i] != '/' && t[i] != '?' && t[i] != '#')
		i++;
	if (t + i < end && t[i] == '#')
		return 400;
	if (!http_host_valid(auth, (size_t)(t + i - auth)))
		return 400;
	m->host = auth;
	m->host_len = (size_t)(t + i - auth);
	m->host_from_target = 1;
	/* An empty path ("http://a?q", "http://a") is "/" (RFC 9112
	 * section 3.2.1): the caller writes one before the rest. */
	m->path = t + i;
	m->path_len = (size_t)(end - (t + i));
	return 0;
}

int
http_parse_request(const char *buf, size_t len, struct http_msg *m)
{
	const char *cr, *sp1, *sp2, *end;
	size_t linelen, i;
	int n, k, hosts = 0;

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
	if ((k = framing(m)) == -1)
		return m->error = 400, -1;
	if (m->has_te && m->minor == 0)
		return m->error = 400, -1;
	if (k == -2)
		return m->error = 501, -1;	/* codings we do not decode */
	for (i = 0; i < m->nheaders; i++)
		if (m->headers[i].name_len == 4 &&
		    http_token_eq(m->headers[i].name, 4, "host")) {
			if (hosts++ > 0 || !http_host_valid(m->headers[i].value,
			    m->headers[i].value_len))
				return m->error = 400, -1;
			m->host = m->headers[i].value;
			m->host_len = m->headers[i].value_len;
		}
	if (hosts == 0 && m->minor == 1)
		return m->error = 400, -1;
	if ((k = request_target(m)) != 0)
		return m->error = k, -1;
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

/*
 * The states of a chunked body (RFC 9112 section 7.1), one byte at a time.
 * The chunk line and the trailer section are parsed to the grammar and then
 * dropped: the router writes its own chunk lines, so only data bytes leave.
 */
enum {
	CH_SIZE,		/* chunk-size: HEXDIG */
	CH_BWS,			/* BWS before ";" */
	CH_EXT_NAME0,		/* after ";": BWS, then the name */
	CH_EXT_NAME,		/* chunk-ext-name: token */
	CH_EXT_NAME_BWS,	/* BWS after the name: "=" or ";" follows */
	CH_EXT_VAL0,		/* after "=": BWS, then token / quoted-string */
	CH_EXT_TOKEN,		/* a token value */
	CH_EXT_QUOTED,		/* inside a quoted-string */
	CH_EXT_QPAIR,		/* after "\" in a quoted-string */
	CH_EXT_AFTER,		/* after a closing quote */
	CH_SIZE_LF,
	CH_DATA, CH_DATA_CR, CH_DATA_LF,
	CH_TRAILER_START,	/* a field line, or the CR of the empty line */
	CH_TRAILER_NAME,	/* field-name: token */
	CH_TRAILER_VALUE,	/* ":" and the value: no CTL but HTAB */
	CH_TRAILER_LF, CH_END_LF, CH_DONE
};

/* The longest chunk line and trailer section taken: no one needs more. */
#define CHUNK_LINE_MAX 4096
#define TRAILER_MAX 4096

void
chunked_init(struct chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = CH_SIZE;
}

/* qdtext and the second byte of a quoted-pair (RFC 9110 section 5.6.4). */
static int
is_qdtext(unsigned char ch)
{
	return ch == '\t' || ch == ' ' || ch == 0x21 ||
	    (ch >= 0x23 && ch <= 0x5b) || (ch >= 0x5d && ch <= 0x7e) ||
	    ch >= 0x80;
}

static int
is_qpair(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* One byte of a chunk line after its size: the next state, or -1. */
static int
chunk_ext_byte(int state, unsigned char ch)
{
	int ws = ch == ' ' || ch == '\t';

	switch (state) {
	case CH_EXT_TOKEN:
		if (is_tchar(ch))
			return CH_EXT_TOKEN;
		/* FALLTHROUGH */
	case CH_SIZE:		/* the size has a digit: this is not one */
	case CH_EXT_AFTER:
		if (ch == '\r')
			return CH_SIZE_LF;
		/* FALLTHROUGH */
	case CH_BWS:
		return ch == ';' ? CH_EXT_NAME0 : ws ? CH_BWS : -1;
	case CH_EXT_NAME0:
		return is_tchar(ch) ? CH_EXT_NAME : ws ? CH_EXT_NAME0 : -1;
	case CH_EXT_NAME:
		if (is_tchar(ch))
			return CH_EXT_NAME;
		/* FALLTHROUGH */
	case CH_EXT_NAME_BWS:
		if (ch == '\r')
			return state == CH_EXT_NAME ? CH_SIZE_LF : -1;
		if (ch == '=')
			return CH_EXT_VAL0;
		return ch == ';' ? CH_EXT_NAME0 : ws ? CH_EXT_NAME_BWS : -1;
	case CH_EXT_VAL0:
		if (ch == '"')
			return CH_EXT_QUOTED;
		return is_tchar(ch) ? CH_EXT_TOKEN : ws ? CH_EXT_VAL0 : -1;
	case CH_EXT_QUOTED:
		if (ch == '"')
			return CH_EXT_AFTER;
		return ch == '\\' ? CH_EXT_QPAIR : is_qdtext(ch) ?
		    CH_EXT_QUOTED : -1;
	case CH_EXT_QPAIR:
		return is_qpair(ch) ? CH_EXT_QUOTED : -1;
	}
	return -1;
}

/* One byte of the trailer section: the next state, or -1. */
static int
trailer_byte(int state, unsigned char ch)
{
	switch (state) {
	case CH_TRAILER_START:
		if (ch == '\r')
			return CH_END_LF;
		return is_tchar(ch) ? CH_TRAILER_NAME : -1;	/* no obs-fold */
	case CH_TRAILER_NAME:
		if (ch == ':')
			return CH_TRAILER_VALUE;
		return is_tchar(ch) ? CH_TRAILER_NAME : -1;
	case CH_TRAILER_VALUE:
		if (ch == '\r')
			return CH_TRAILER_LF;
		return ch == '\t' || (ch >= 0x20 && ch != 0x7f) ?
		    CH_TRAILER_VALUE : -1;
	case CH_TRAILER_LF:
		return ch == '\n' ? CH_TRAILER_START : -1;
	case CH_END_LF:
		return ch == '\n' ? CH_DONE : -1;
	}
	return -1;
}

/*
 * Walk a chunked body: consume buf[0..len) up to the end of the body or of
 * the first data span in it, whichever comes first.  Returns the bytes
 * consumed (0 only when len is 0 or the body is done), and in *data and
 * *datalen the span of chunk data among them (*datalen 0 when none), or -1
 * on anything RFC 9112 section 7.1 does not allow.  Chunk lines, extensions
 * and trailers are checked and consumed but never handed out: a caller
 * that forwards only the spans under its own chunk lines forwards only what
 * was parsed.  A caller calls again with the rest until all is consumed.
 */
ssize_t
chunked_feed(struct chunked *c, const char *buf, size_t len,
    const char **data, size_t *datalen)
{
	size_t i = 0;

	*data = NULL;
	*datalen = 0;
	while (i < len && c->state != CH_DONE) {
		unsigned char ch = (unsigned char)buf[i];
		int next;

		switch (c->state) {
		case CH_DATA: {
			size_t take = len - i;
			if ((uint64_t)take > c->left)
				take = (size_t)c->left;
			*data = buf + i;
			*datalen = take;
			c->left -= take;
			i += take;
			if (c->left == 0)
				c->state = CH_DATA_CR;
			return (ssize_t)i;
		}
		case CH_SIZE: {
			int v = hexval(ch);
			if (v >= 0) {
				if (++c->digits > 16)
					return -1;
				c->size = (c->size << 4) | (uint64_t)v;
				c->line_len++;
				i++;
				break;
			}
			if (c->digits == 0)
				return -1;
		}
			/* FALLTHROUGH */
		case CH_BWS: case CH_EXT_NAME0: case CH_EXT_NAME:
		case CH_EXT_NAME_BWS: case CH_EXT_VAL0: case CH_EXT_TOKEN:
		case CH_EXT_QUOTED: case CH_EXT_QPAIR: case CH_EXT_AFTER:
			if ((next = chunk_ext_byte(c->state, ch)) < 0 ||
			    ++c->line_len > CHUNK_LINE_MAX)
				return -1;
			c->state = next;
			i++;
			break;
		case CH_SIZE_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->state = c->size == 0 ? CH_TRAILER_START : CH_DATA;
			c->left = c->size;
			c->line_len = 0;
			break;
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
		default:	/* the trailer section, to its empty line */
			if ((next = trailer_byte(c->state, ch)) < 0 ||
			    ++c->line_len > TRAILER_MAX)
				return -1;
			c->state = next;
			i++;
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
 * drops: the fixed list, and any field a Connection header names (never
 * Host, Content-Length or Transfer-Encoding: the parsers refuse that)?  conn is what
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
	 * ... and any field the Connection header names: never one that
	 * frames the message, since framing() refused a message naming one.
	 */
	for (i = 0; conn[i] >= 0; i++)
		if (http_list_has_n(m->headers[conn[i]].value,
		    m->headers[conn[i]].value_len, h->name, h->name_len))
			return 1;
	return 0;
}
