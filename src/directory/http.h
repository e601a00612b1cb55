/*
 * The http back-end (directory.type = "http"): nginx's mail auth_http
 * protocol.  A lookup is a GET to directory.http.url with the login in
 * request headers (Auth-User, Auth-Protocol, Client-IP, ...); the answer
 * is in response headers (Auth-Status, Auth-Server, Auth-Port, Auth-User).
 * Requests run on one thread per directory through libcurl's multi
 * interface, never on a worker.
 */
#ifndef POSTERN_DIRECTORY_HTTP_H
#define POSTERN_DIRECTORY_HTTP_H

#include <stddef.h>

/*
 * Escape a value for a request header as nginx does (URL style): '%',
 * bytes outside printable ASCII and the space become %XX, so nothing a
 * client sends can end a header.  Returns the length needed (excluding
 * the NUL); writes at most outlen bytes, NUL-terminated.
 */
size_t	http_header_escape(const char *in, char *out, size_t outlen);

/* The longest Auth-Wait honoured, in seconds: a longer one is cut to it. */
#define HTTP_AUTH_WAIT_MAX	60
/*
 * Read an Auth-Wait value: seconds, digits only (nginx's ngx_atoi: no
 * sign, no blanks, at least one digit).  0 with *secs_r at most
 * HTTP_AUTH_WAIT_MAX, however many digits; -1 if it is no number.
 */
int	http_auth_wait_parse(const char *v, unsigned *secs_r);

#endif
