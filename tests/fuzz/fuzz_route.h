/* Invariants of a route that a parser accepted (abort() when broken). */
#ifndef POSTERN_FUZZ_ROUTE_H
#define POSTERN_FUZZ_ROUTE_H

#include <stdlib.h>
#include <string.h>

#include "route.h"

static inline void
fuzz_check_route(const struct route *r)
{
	if (r == NULL || r->nhosts == 0 || r->nhosts > ROUTE_HOSTS_MAX)
		abort();
	for (size_t i = 0; i < r->nhosts; i++) {
		const char *h = r->hosts[i].host;

		/* A host name or address: no space, control byte, '/' or ','. */
		if (h == NULL || h[0] == '\0')
			abort();
		for (; *h != '\0'; h++)
			if ((unsigned char)*h <= 0x20 || *h == '/' || *h == ',')
				abort();
	}
	/* It goes into USER / LOGIN commands: nothing that splits them. */
	if (r->backend_user != NULL &&
	    !route_user_valid(r->backend_user, strlen(r->backend_user)))
		abort();
}

#endif
