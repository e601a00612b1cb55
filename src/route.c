#include "autoconf.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "util.h"

struct route *
route_new(void)
{
	struct route *r = xcalloc(1, sizeof(*r));

	atomic_init(&r->refs, 1);
	return r;
}

int
route_add_host(struct route *r, const char *spec, const char **error_r)
{
	const char *at = strrchr(spec, '@');
	struct route_host *h;
	uint16_t port = 0;
	char *host;

	if (r->nhosts == ROUTE_HOSTS_MAX) {
		*error_r = "too many hosts";
		return -1;
	}
	if (at != NULL) {
		if (at == spec) {
			*error_r = "empty user before '@'";
			return -1;
		}
		if (!route_user_valid(spec, (size_t)(at - spec))) {
			*error_r = "control character or space in the user name";
			return -1;
		}
		if (r->backend_user == NULL)
			r->backend_user = xstrndup(spec, (size_t)(at - spec));
		spec = at + 1;
	}
	if (hostport_parse(spec, &host, &port, error_r) < 0)
		return -1;
	for (const char *p = host; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == '/' || *p == ',') {
			free(host);
			*error_r = "invalid character in host";
			return -1;
		}
	}
	h = &r->hosts[r->nhosts++];
	h->host = host;
	h->port = port;
	return 0;
}

bool
route_user_valid(const char *user, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)user[i] <= 0x20 || user[i] == 0x7f)
			return false;
	return true;
}

int
route_set_backend_user(struct route *r, const char *user, const char **error_r)
{
	if (user != NULL && !route_user_valid(user, strlen(user))) {
		*error_r = "control character or space in the backend user name";
		return -1;
	}
	free(r->backend_user);
	r->backend_user = user != NULL ? xstrdup(user) : NULL;
	return 0;
}

struct route *
route_ref(struct route *r)
{
	atomic_fetch_add_explicit(&r->refs, 1,
	    memory_order_relaxed);
	return r;
}

void
route_unref(struct route **rp)
{
	struct route *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	if (atomic_fetch_sub_explicit(&r->refs, 1,
	    memory_order_acq_rel) != 1)
		return;
	for (size_t i = 0; i < r->nhosts; i++)
		free(r->hosts[i].host);
	free(r->backend_user);
	free(r->dn);
	free(r);
}
