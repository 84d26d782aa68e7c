/*
 * sock.c: what a connected TCP socket is connected to.  A connect to a
 * local port nothing listens on can meet itself: when the kernel happens
 * to pick that very port as the ephemeral source (dyno ports are in the
 * ephemeral range), TCP's simultaneous open connects the socket to
 * itself.  It looks like a listener that accepted, and is none.
 */
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "dyno.h"

int
sock_is_self(int fd)
{
	struct sockaddr_storage a, b;
	socklen_t alen = sizeof(a), blen = sizeof(b);

	if (getsockname(fd, (struct sockaddr *)&a, &alen) == -1 ||
	    getpeername(fd, (struct sockaddr *)&b, &blen) == -1)
		return -1;
	if (a.ss_family != b.ss_family)
		return 0;
	if (a.ss_family == AF_INET) {
		const struct sockaddr_in *x = (void *)&a, *y = (void *)&b;
		return x->sin_port == y->sin_port &&
		    x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (void *)&a, *y = (void *)&b;
		return x->sin6_port == y->sin6_port &&
		    memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
	}
	return 0;
}
