#include "autoconf.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "directory.h"
#include "directory/backend.h"
#include "directory/http.h"
#include "log.h"
#include "route.h"
#include "util.h"

size_t
http_header_escape(const char *in, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, w = 0;	/* needed, written */

	for (; *in != '\0'; in++) {
		unsigned char c = (unsigned char)*in;
		bool esc = c <= 0x20 || c >= 0x7f || c == '%';
		size_t n = esc ? 3 : 1;

		/* Once a piece does not fit, nothing after it is written. */
		if (w == o && o + n < outlen) {
			if (esc) {
				out[o] = '%';
				out[o + 1] = hex[c >> 4];
				out[o + 2] = hex[c & 15];
			} else
				out[o] = (char)c;
			w += n;
		}
		o += n;
	}
	if (outlen > 0)
		out[w] = '\0';
	return o;
}

int
http_auth_wait_parse(const char *v, unsigned *secs_r)
{
	unsigned secs = 0;

	if (*v == '\0')
		return -1;
	for (; *v != '\0'; v++) {
		if (*v < '0' || *v > '9')
			return -1;
		/* Past the cap the value no longer matters: no overflow. */
		if (secs <= HTTP_AUTH_WAIT_MAX)
			secs = secs * 10 + (unsigned)(*v - '0');
	}
	*secs_r = secs < HTTP_AUTH_WAIT_MAX ? secs : HTTP_AUTH_WAIT_MAX;
	return 0;
}

#ifdef HAVE_LIBCURL
#include <curl/curl.h>

#define HTTP_LOG_EVERY_MS	10000
#define HTTP_BODY_MAX		(64 * 1024)	/* an answer's body is read and dropped */
#define HTTP_VALUE_MAX		512		/* an Auth-* header's value, NUL included */

/* One lookup on its way; the thread's own once taken from the queue. */
struct http_req {
	struct dir_request	*req;
	struct http_req		*next;
	CURL			*easy;
	struct curl_slist	*headers;
	size_t			 body;
	bool			 have_status;
	bool			 too_long;	/* an Auth-* value past HTTP_VALUE_MAX */
	char			 status[HTTP_VALUE_MAX];
	char			 server[HTTP_VALUE_MAX];
	char			 port[HTTP_VALUE_MAX];
	char			 user[HTTP_VALUE_MAX];
	char			 error_code[HTTP_VALUE_MAX];
	char			 wait[HTTP_VALUE_MAX];
};

struct dir_http {
	struct directory	 dir;
	const char		*url;		/* the config's, which outlives us */
	unsigned		 timeout_ms;
	size_t			 queue_max;
	bool			 pass_password;
	CURLM			*multi;
	pthread_t		 thread;
	bool			 started;
	/* Under mtx: what workers hand over, and how many are not answered. */
	pthread_mutex_t		 mtx;
	struct http_req		*head, *tail;
	size_t			 pending;
	bool			 stop;
	/* The thread's own. */
	struct http_req		*inflight;
	struct log_limit	 log_full, log_fail;
};

static void
req_free(struct http_req *hr)
{
	if (hr->easy != NULL)
		curl_easy_cleanup(hr->easy);
	/* Auth-Pass sits in the list: wipe it before it goes back. */
	for (struct curl_slist *l = hr->headers; l != NULL; l = l->next)
		explicit_bzero(l->data, strlen(l->data));
	curl_slist_free_all(hr->headers);
	explicit_bzero(hr, sizeof(*hr));
	free(hr);
}

/* Answer (or drop) hr's request and forget it.  On the thread. */
static void
req_finish(struct dir_http *dh, struct http_req *hr, enum dir_status status,
    struct route *route, const char *detail)
{
	if (dir_request_cancelled(hr->req)) {
		route_unref(&route);
		dir_request_drop(hr->req);
	} else
		dir_request_done(hr->req, status, route, detail);
	req_free(hr);
	pthread_mutex_lock(&dh->mtx);
	dh->pending--;
	pthread_mutex_unlock(&dh->mtx);
}

static bool
header_is(const char *line, size_t len, const char *name, const char **value_r,
    size_t *vlen_r)
{
	size_t n = strlen(name);

	if (len <= n || strncasecmp(line, name, n) != 0 || line[n] != ':')
		return false;
	line += n + 1;
	len -= n + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
	    line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	*value_r = line;
	*vlen_r = len;
	return true;
}

static void
copy_value(struct http_req *hr, char *dst, const char *v, size_t vlen)
{
	if (vlen >= HTTP_VALUE_MAX) {
		hr->too_long = true;
		vlen = HTTP_VALUE_MAX - 1;
	}
	memcpy(dst, v, vlen);
	dst[vlen] = '\0';
}

static size_t
on_header(char *buf, size_t size, size_t n, void *arg)
{
	struct http_req *hr = arg;
	size_t len = size * n, vlen;
	const char *v;

	/* A new status line (after a 100 Continue, say) starts afresh. */
	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		hr->have_status = hr->too_long = false;
		hr->status[0] = hr->server[0] = hr->port[0] = hr->user[0] = '\0';
		hr->error_code[0] = hr->wait[0] = '\0';
	} else if (header_is(buf, len, "Auth-Status", &v, &vlen)) {
		copy_value(hr, hr->status, v, vlen);
		hr->have_status = true;
	} else if (header_is(buf, len, "Auth-Server", &v, &vlen))
		copy_value(hr, hr->server, v, vlen);
	else if (header_is(buf, len, "Auth-Port", &v, &vlen))
		copy_value(hr, hr->port, v, vlen);
	else if (header_is(buf, len, "Auth-User", &v, &vlen))
		copy_value(hr, hr->user, v, vlen);
	else if (header_is(buf, len, "Auth-Error-Code", &v, &vlen))
		copy_value(hr, hr->error_code, v, vlen);
	else if (header_is(buf, len, "Auth-Wait", &v, &vlen))
		copy_value(hr, hr->wait, v, vlen);
	return len;
}

static size_t
on_body(char *buf, size_t size, size_t n, void *arg)
{
	struct http_req *hr = arg;

	(void)buf;
	if ((hr->body += size * n) > HTTP_BODY_MAX)
		return 0;	/* the transfer fails: nobody needs a large body */
	return size * n;
}

/* Add one header, escaped; false if it does not fit. */
static bool
add_header(struct http_req *hr, const char *name, const char *value,
    bool escape)
{
	char line[USERNAME_MAX * 3 + 1024 + 64];
	int n = snprintf(line, sizeof(line), "%s: ", name);
	size_t need;
	struct curl_slist *l;

	if (escape)
		need = http_header_escape(value, line + n, sizeof(line) - (size_t)n);
	else
		need = (size_t)snprintf(line + n, sizeof(line) - (size_t)n, "%s", value);
	if ((size_t)n + need >= sizeof(line)) {
		explicit_bzero(line, sizeof(line));
		return false;
	}
	l = curl_slist_append(hr->headers, line);
	explicit_bzero(line, sizeof(line));
	if (l == NULL)
		return false;
	hr->headers = l;
	return true;
}

/* Start hr's transfer.  -1 with a reason. */
static int
req_start(struct dir_http *dh, struct http_req *hr, const char **why_r)
{
	const char *pw = dir_request_password(hr->req);
	const char *addr = dir_request_client_addr(hr->req);
	char attempt[16];

	snprintf(attempt, sizeof(attempt), "%u", dir_request_attempt(hr->req) ?
	    dir_request_attempt(hr->req) : 1);
	*why_r = "the request does not fit";
	if (!add_header(hr, "Auth-Method", "plain", false) ||
	    !add_header(hr, "Auth-User", dir_request_name(hr->req)->full, true) ||
	    (dh->pass_password && pw != NULL &&
	    !add_header(hr, "Auth-Pass", pw, true)) ||
	    !add_header(hr, "Auth-Protocol",
	    proto_name(dir_request_proto(hr->req)), false) ||
	    !add_header(hr, "Auth-Login-Attempt", attempt, false) ||
	    !add_header(hr, "Client-IP", addr[0] ? addr : "unknown", true) ||
	    !add_header(hr, "Client-Host", "[UNAVAILABLE]", false) ||
	    !add_header(hr, "Expect", "", false))
		return -1;
	*why_r = "cannot start a transfer";
	if ((hr->easy = curl_easy_init()) == NULL)
		return -1;
	curl_easy_setopt(hr->easy, CURLOPT_URL, dh->url);
	curl_easy_setopt(hr->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(hr->easy, CURLOPT_HTTPHEADER, hr->headers);
	curl_easy_setopt(hr->easy, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(hr->easy, CURLOPT_HEADERDATA, hr);
	curl_easy_setopt(hr->easy, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(hr->easy, CURLOPT_WRITEDATA, hr);
	curl_easy_setopt(hr->easy, CURLOPT_TIMEOUT_MS, (long)dh->timeout_ms);
	curl_easy_setopt(hr->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)dh->timeout_ms);
	curl_easy_setopt(hr->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(hr->easy, CURLOPT_PRIVATE, hr);
	if (curl_multi_add_handle(dh->multi, hr->easy) != CURLM_OK)
		return -1;
	hr->next = dh->inflight;
	dh->inflight = hr;
	return 0;
}

/* Read the answer's headers the way nginx's auth_http does. */
static void
req_answer(struct dir_http *dh, struct http_req *hr, CURLcode rc)
{
	char detail[HTTP_VALUE_MAX * 2 + 128], spec[HTTP_VALUE_MAX + 16];
	struct route *route;
	const char *error;
	long code = 0;

	if (rc != CURLE_OK) {
		snprintf(detail, sizeof(detail), "auth service: %s",
		    curl_easy_strerror(rc));
		log_limited(&dh->log_fail, HTTP_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "http: %s: %s", dh->url, curl_easy_strerror(rc));
		req_finish(dh, hr, DIR_TEMPFAIL, NULL, detail);
		return;
	}
	curl_easy_getinfo(hr->easy, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 || !hr->have_status) {
		if (code != 200)
			snprintf(detail, sizeof(detail), "auth service: "
			    "answered %ld", code);
		else
			snprintf(detail, sizeof(detail), "auth service: no Auth-Status "
			    "in the answer");
		log_limited(&dh->log_fail, HTTP_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "http: %s: %s", dh->url, detail + 14);
		req_finish(dh, hr, DIR_TEMPFAIL, NULL, detail);
		return;
	}
	if (hr->too_long) {
		req_finish(dh, hr, DIR_TEMPFAIL, NULL, "auth service: an Auth-* "
		    "header value is longer than 511 bytes");
		return;
	}
	if (strcmp(hr->status, "OK") != 0) {
		unsigned wait;

		/* Like nginx: "4xx" error codes say "try again later". */
		snprintf(detail, sizeof(detail), "auth service: Auth-Status \"%s\"%s%s",
		    hr->status, hr->error_code[0] ? " Auth-Error-Code " : "",
		    hr->error_code);
		/* Like nginx, a value that is no number is no wait. */
		if (http_auth_wait_parse(hr->wait, &wait) == 0)
			dir_request_set_wait(hr->req, wait * 1000);
		req_finish(dh, hr, hr->error_code[0] == '4' ? DIR_TEMPFAIL :
		    DIR_NOT_FOUND, NULL, detail);
		return;
	}
	if (hr->server[0] == '\0') {
		req_finish(dh, hr, DIR_TEMPFAIL, NULL,
		    "auth service: Auth-Status OK without Auth-Server");
		return;
	}
	snprintf(spec, sizeof(spec), strchr(hr->server, ':') != NULL ? "[%s]%s%s" :
	    "%s%s%s", hr->server, hr->port[0] ? ":" : "", hr->port);
	route = route_new();
	if (route_add_host(route, spec, &error) < 0 || (hr->user[0] != '\0' &&
	    route_set_backend_user(route, hr->user, &error) < 0)) {
		route_unref(&route);
		snprintf(detail, sizeof(detail), "auth service: unusable answer (%s): %s",
		    spec, error);
		req_finish(dh, hr, DIR_TEMPFAIL, NULL, detail);
		return;
	}
	snprintf(detail, sizeof(detail), "auth service: Auth-Server %s", spec);
	req_finish(dh, hr, DIR_OK, route, detail);
}

static void
inflight_remove(struct dir_http *dh, struct http_req *hr)
{
	for (struct http_req **p = &dh->inflight; *p != NULL; p = &(*p)->next) {
		if (*p == hr) {
			*p = hr->next;
			break;
		}
	}
	curl_multi_remove_handle(dh->multi, hr->easy);
}

/* Give up on transfers nobody waits for any more. */
static void
sweep_cancelled(struct dir_http *dh)
{
	struct http_req *hr = dh->inflight, *next;

	for (; hr != NULL; hr = next) {
		next = hr->next;
		if (dir_request_cancelled(hr->req)) {
			inflight_remove(dh, hr);
			req_finish(dh, hr, DIR_TEMPFAIL, NULL, NULL);
		}
	}
}

static void *
http_main(void *arg)
{
	struct dir_http *dh = arg;

	for (;;) {
		struct http_req *taken, *next;
		struct CURLMsg *msg;
		int running, left;
		bool stop;

		pthread_mutex_lock(&dh->mtx);
		taken = dh->head;
		dh->head = dh->tail = NULL;
		stop = dh->stop;
		pthread_mutex_unlock(&dh->mtx);
		for (; taken != NULL; taken = next) {
			const char *why;
			char detail[128];

			next = taken->next;
			if (stop || dir_request_cancelled(taken->req))
				req_finish(dh, taken, DIR_TEMPFAIL, NULL,
				    "directory shutting down");
			else if (req_start(dh, taken, &why) < 0) {
				snprintf(detail, sizeof(detail), "auth service: %s", why);
				req_finish(dh, taken, DIR_TEMPFAIL, NULL, detail);
			}
		}
		if (stop)
			break;
		sweep_cancelled(dh);
		curl_multi_perform(dh->multi, &running);
		while ((msg = curl_multi_info_read(dh->multi, &left)) != NULL) {
			struct http_req *hr;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&hr);
			CURLcode rc = msg->data.result;
			inflight_remove(dh, hr);
			req_answer(dh, hr, rc);
		}
		curl_multi_poll(dh->multi, NULL, 0, 1000, NULL);
	}
	while (dh->inflight != NULL) {
		struct http_req *hr = dh->inflight;

		inflight_remove(dh, hr);
		req_finish(dh, hr, DIR_TEMPFAIL, NULL, "directory shutting down");
	}
	return NULL;
}

static void
dir_http_lookup(struct directory *dir, struct dir_request *req)
{
	struct dir_http *dh = (struct dir_http *)dir;
	struct http_req *hr;

	pthread_mutex_lock(&dh->mtx);
	if (dh->pending >= dh->queue_max) {
		pthread_mutex_unlock(&dh->mtx);
		log_limited(&dh->log_full, HTTP_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "http: %zu lookups waiting or in flight (directory.http.queue): "
		    "refusing more until the auth service catches up", dh->queue_max);
		dir_request_done(req, DIR_TEMPFAIL, NULL,
		    "directory overloaded: too many lookups queued");
		return;
	}
	hr = xcalloc(1, sizeof(*hr));
	hr->req = req;
	if (dh->tail != NULL)
		dh->tail->next = hr;
	else
		dh->head = hr;
	dh->tail = hr;
	dh->pending++;
	pthread_mutex_unlock(&dh->mtx);
	curl_multi_wakeup(dh->multi);
}

static void
dir_http_free(struct directory *dir)
{
	struct dir_http *dh = (struct dir_http *)dir;

	if (dh->started) {
		pthread_mutex_lock(&dh->mtx);
		dh->stop = true;
		pthread_mutex_unlock(&dh->mtx);
		curl_multi_wakeup(dh->multi);
		pthread_join(dh->thread, NULL);
	}
	if (dh->multi != NULL)
		curl_multi_cleanup(dh->multi);
	pthread_mutex_destroy(&dh->mtx);
	free(dh);
	curl_global_cleanup();
}

static const struct directory_ops dir_http_ops = {
	.name = "http",
	.lookup = dir_http_lookup,
	.free = dir_http_free,
};

static int
http_backend_open(const struct config *cfg, struct directory **dir_r,
    char *err, size_t errlen)
{
	struct dir_http *dh;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(err, errlen, "http: cannot initialise libcurl");
		return -1;
	}
	dh = xcalloc(1, sizeof(*dh));
	dh->dir.ops = &dir_http_ops;
	dh->url = cfg->directory.http.url;
	dh->timeout_ms = cfg->directory.http.timeout * 1000;
	dh->queue_max = cfg->directory.http.queue;
	dh->pass_password = cfg->directory.http.pass_password;
	pthread_mutex_init(&dh->mtx, NULL);
	if ((dh->multi = curl_multi_init()) == NULL ||
	    pthread_create(&dh->thread, NULL, http_main, dh) != 0) {
		snprintf(err, errlen, "http: cannot start the request thread");
		dir_http_free(&dh->dir);
		return -1;
	}
	dh->started = true;
	*dir_r = &dh->dir;
	return 0;
}

/* --check-config: the URL parses; the service is asked nothing. */
static int
http_backend_check(const struct config *cfg, char *err, size_t errlen)
{
	CURLU *u = curl_url();
	CURLUcode rc = curl_url_set(u, CURLUPART_URL, cfg->directory.http.url, 0);

	curl_url_cleanup(u);
	if (rc != CURLUE_OK) {
		snprintf(err, errlen, "%s: directory.http.url: \"%s\": %s",
		    cfg->path, cfg->directory.http.url, curl_url_strerror(rc));
		return -1;
	}
	return 0;
}

#else	/* !HAVE_LIBCURL */

static int
http_backend_open(const struct config *cfg, struct directory **dir_r,
    char *err, size_t errlen)
{
	(void)dir_r;
	snprintf(err, errlen, "%s: directory.type: \"http\" needs postern built "
	    "with libcurl", cfg->path);
	return -1;
}

static int
http_backend_check(const struct config *cfg, char *err, size_t errlen)
{
	return http_backend_open(cfg, NULL, err, errlen);
}

#endif

const struct dir_backend dir_backend_http = {
	.name = "http",
	.open = http_backend_open,
	.check = http_backend_check,
	/* Answers may depend on the password and the client: never cached. */
	.cacheable = NULL,
};
