/*
 * What the LDAP search pool (dir_ldap.c) and the replica (dir_ldap_sync.c)
 * share: one way to open, secure and bind a connection, and one way to say
 * why that failed.
 */
#ifndef POSTERN_DIR_LDAP_H
#define POSTERN_DIR_LDAP_H

#include <stddef.h>

#include <ldap.h>

#include "config.h"

/* A handle for uri with postern's options and, if configured, StartTLS. */
int	dir_ldap_handle(const struct ldap_cfg *cfg, const char *uri, LDAP **ld_r);
/* Bind as the daemon: SASL, simple with bind_dn, or anonymous. */
int	dir_ldap_service_bind(const struct ldap_cfg *cfg, const char *password,
	    LDAP *ld);
/* Why connecting to uri failed, in an operator's words. */
void	dir_ldap_describe_failure(const struct ldap_cfg *cfg, const char *uri,
	    int rc, char *out, size_t len);
int	dir_ldap_read_password_file(const char *path, char **out, char *err,
	    size_t errlen);

#endif
