/*
 * curlretry.h: which libcurl errors may pass if the request is made again
 * (retry.c's "transient"), for the programs that link libcurl.  A header,
 * so that lib/ itself needs no libcurl (it also builds with musl).
 */
#ifndef DYNO_CURLRETRY_H
#define DYNO_CURLRETRY_H

#include <curl/curl.h>

static inline int
curl_transient(CURLcode rc)
{
	return rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
	    rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
	    rc == CURLE_GOT_NOTHING || rc == CURLE_PARTIAL_FILE ||
	    rc == CURLE_COULDNT_RESOLVE_HOST;
}

#endif
