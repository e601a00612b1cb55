#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ldap_entry.h"
#include "util.h"

/* Append " attr=v1,v2" to the detail text, as far as it goes. */
static void
detail_add(char *detail, size_t len, const char *attr, struct berval **vals)
{
	size_t o = strlen(detail);

	o += (size_t)snprintf(detail + o, o < len ? len - o : 0, " %s=", attr);
	for (int i = 0; vals[i] != NULL && o < len; i++)
		o += (size_t)snprintf(detail + o, len - o, "%s%.*s", i ? "," : "",
		    (int)vals[i]->bv_len, vals[i]->bv_val);
}

/* Append the NULL-terminated list of strings to the detail text. */
static void
detail_cat(char *detail, size_t len, ...)
{
	size_t o = strlen(detail);
	const char *part;
	va_list ap;

	va_start(ap, len);
	while (o + 1 < len && (part = va_arg(ap, const char *)) != NULL)
		o += str_copy(detail + o, part, len - o);
	va_end(ap);
}

/* A value as a string, or NULL if it holds a NUL or another control byte. */
static char *
value_str(const struct berval *bv)
{
	for (ber_len_t i = 0; i < bv->bv_len; i++)
		if ((unsigned char)bv->bv_val[i] < 0x20 || bv->bv_val[i] == 0x7f)
			return NULL;
	return xstrndup(bv->bv_val, bv->bv_len);
}

static int
parse_port(const struct berval *bv, long *port_r)
{
	char *p = value_str(bv), *end;
	long port;

	if (p == NULL || p[0] < '0' || p[0] > '9') {
		free(p);
		return -1;
	}
	port = strtol(p, &end, 10);
	if (*end != '\0' || port < 1 || port > 65535) {
		free(p);
		return -1;
	}
	free(p);
	*port_r = port;
	return 0;
}

enum dir_status
ldap_entry_route(const struct ldap_entry_values *v, struct route **route_r,
    char *detail, size_t dlen)
{
	struct route *r = route_new();
	enum dir_status status = DIR_OK;
	const char *error;
	long portnum = 0;

	if (v->label != NULL)
		str_copy(detail, v->label, dlen);
	else
		snprintf(detail, dlen, "ldap dn=%s", v->dn != NULL ? v->dn : "?");
	if (v->dn != NULL)
		r->dn = xstrdup(v->dn);
	if (v->user != NULL && v->user[0] != NULL) {
		char *u = value_str(v->user[0]);

		detail_add(detail, dlen, v->user_attr, v->user);
		if (u == NULL || route_set_backend_user(r, u, &error) < 0) {
			detail_cat(detail, dlen, " (bad ", v->user_attr, " value)", NULL);
			status = DIR_TEMPFAIL;
		}
		free(u);
	}
	if (v->port != NULL && v->port[0] != NULL) {
		detail_add(detail, dlen, v->port_attr, v->port);
		if (parse_port(v->port[0], &portnum) < 0) {
			detail_cat(detail, dlen, " (bad ", v->port_attr, " value)", NULL);
			status = DIR_TEMPFAIL;
		}
	}
	if (v->hosts == NULL || v->hosts[0] == NULL) {
		detail_cat(detail, dlen, " (entry has no ", v->host_attr, ")", NULL);
		if (status == DIR_OK)
			status = DIR_NOT_FOUND;
	} else {
		detail_add(detail, dlen, v->host_attr, v->hosts);
		for (int i = 0; v->hosts[i] != NULL && status == DIR_OK; i++) {
			char *h = value_str(v->hosts[i]);
			char mapped[HOST_MAP_HOST_MAX];
			int m = 0;

			if (h != NULL && v->map != NULL &&
			    (m = host_map_apply(v->map, h, mapped, sizeof(mapped))) > 0) {
				free(h);
				h = xstrdup(mapped);
				detail_cat(detail, dlen, " -> ", h, NULL);
			}
			if (m < 0) {
				detail_cat(detail, dlen, " (host_map: result too "
				    "long)", NULL);
				status = DIR_TEMPFAIL;
			} else if (h == NULL) {
				detail_cat(detail, dlen, " (bad host value: control "
				    "character)", NULL);
				status = DIR_TEMPFAIL;
			} else if (route_add_host(r, h, &error) < 0) {
				detail_cat(detail, dlen, " (bad host value: ", error, ")", NULL);
				status = DIR_TEMPFAIL;
			}
			free(h);
		}
	}
	/* An explicit port attribute wins over one inside the host value. */
	for (size_t i = 0; portnum > 0 && i < r->nhosts; i++)
		r->hosts[i].port = (uint16_t)portnum;
	if (status == DIR_OK)
		*route_r = r;
	else
		route_unref(&r);
	return status;
}

struct berval **
ldap_entry_first_values(LDAP *ld, LDAPMessage *e, char *const *names,
    const char **name_r)
{
	*name_r = names[0];
	for (size_t i = 0; names[i] != NULL; i++) {
		struct berval **v = ldap_get_values_len(ld, e, names[i]);

		if (v != NULL && v[0] != NULL) {
			*name_r = names[i];
			return v;
		}
		ldap_value_free_len(v);
	}
	return NULL;
}
