/*
 * Fuzz LDAP attribute values to routes: ldap_entry_route().  The input is
 * a list of values, one a line; the first byte of a line says which
 * attribute it belongs to (u: user, h: host, p: port; anything else is
 * skipped), the rest is the value, which may hold any byte but LF.
 * Invariants: DIR_OK gives a route that passes fuzz_check_route(), whose
 * ports are all the port attribute's (1..65535) if there is one; no route
 * otherwise; the detail text is NUL-terminated within its buffer.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_route.h"
#include "ldap_entry.h"

#define VALUES_MAX	16

const char *const fuzz_seeds[] = {
	"hstore-a.example.net\n",
	"hstore-a:143\nhstore-b\np2143\n",
	"umbox-7\nh[2001:db8::1]:993\n",
	"hbob@store-c:110\n",
	"p0\nhx\n",
	"p65536\nhx\n",
	"u\nhx\n",
	"ux y\nhstore\n",
	"hst\x01ore\n",
	"pabc\n",
	NULL
};

struct vals {
	struct berval	 bv[VALUES_MAX];
	struct berval	*list[VALUES_MAX + 1];
	size_t		 n;
};

static void
add(struct vals *v, const char *p, size_t len)
{
	if (v->n == VALUES_MAX)
		return;
	v->bv[v->n].bv_val = (char *)p;
	v->bv[v->n].bv_len = len;
	v->list[v->n] = &v->bv[v->n];
	v->n++;
	v->list[v->n] = NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly `size` bytes: ASan sees any over-read. */
	char *buf = malloc(size ? size : 1), detail[256];
	struct vals u = { .n = 0 }, h = { .n = 0 }, p = { .n = 0 };
	struct ldap_entry_values ev = {
		.dn = "uid=fuzz,ou=people,dc=example,dc=org",
		.user_attr = "mailUser", .host_attr = "mailHost",
		.port_attr = "mailPort",
	};
	struct route *route = NULL;
	enum dir_status st;
	size_t start = 0;

	memcpy(buf, data, size);
	for (size_t i = 0; i <= size; i++) {
		if (i < size && buf[i] != '\n')
			continue;
		if (i > start) {
			struct vals *v = buf[start] == 'u' ? &u :
			    buf[start] == 'h' ? &h : buf[start] == 'p' ? &p : NULL;

			if (v != NULL)
				add(v, buf + start + 1, i - start - 1);
		}
		start = i + 1;
	}
	ev.user = u.n ? u.list : NULL;
	ev.hosts = h.n ? h.list : NULL;
	ev.port = p.n ? p.list : NULL;

	memset(detail, 'X', sizeof(detail));
	st = ldap_entry_route(&ev, &route, detail, sizeof(detail));
	if (memchr(detail, '\0', sizeof(detail)) == NULL)
		abort();
	if (st == DIR_OK) {
		fuzz_check_route(route);
		if (h.n == 0 || route->nhosts != h.n || route->dn == NULL)
			abort();
		if (p.n > 0) {
			/* The port attribute wins: its value, 1..65535, everywhere. */
			char *num = strndup(p.bv[0].bv_val, p.bv[0].bv_len);
			long want;

			/* Leading zeros are allowed: "0001" is port 1. */
			if (num == NULL)
				abort();
			want = strtol(num, NULL, 10);
			free(num);
			if (want < 1 || want > 65535)
				abort();
			for (size_t i = 0; i < route->nhosts; i++)
				if (route->hosts[i].port != want)
					abort();
		}
		if (u.n > 0 && (route->backend_user == NULL ||
		    u.bv[0].bv_len != strlen(route->backend_user) ||
		    memcmp(route->backend_user, u.bv[0].bv_val, u.bv[0].bv_len) != 0))
			abort();
		route_unref(&route);
	} else if (route != NULL ||
	    (st != DIR_NOT_FOUND && st != DIR_TEMPFAIL) ||
	    (st == DIR_NOT_FOUND && h.n > 0))
		abort();
	free(buf);
	return 0;
}
