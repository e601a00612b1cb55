/*
 * What the LDAP search pool (directory/ldap.c) and the replica
 * (directory/ldap_sync.c) share: one way to open, secure and bind a
 * connection, and one way to say why that failed.
 */
#ifndef POSTERN_DIR_LDAP_H
#define POSTERN_DIR_LDAP_H

#include <stddef.h>

#include <ldap.h>

#include "config.h"

struct directory;

/* The search pool: connections on threads of their own. */
int	dir_ldap_open(const struct config *cfg, struct directory **dir_r,
	    char *err, size_t errlen);
int	dir_ldap_check(const struct config *cfg, char *err, size_t errlen);
/*
 * directory.ldap.sync: an RFC 4533 replica kept by a thread of its own;
 * lookups are answered from memory.  Open waits for the first refresh (at
 * most directory.ldap.timeout seconds).
 */
int	dir_ldap_sync_open(const struct config *cfg, struct directory **dir_r,
	    char *err, size_t errlen);
/* --check-config: connect, bind, prove the provider takes the sync control. */
int	dir_ldap_sync_check(const struct config *cfg, char *err, size_t errlen);

/* A handle for uri with postern's options and, if configured, StartTLS. */
int	dir_ldap_handle(const struct ldap_cfg *cfg, const char *uri, LDAP **ld_r);
/* Bind as the daemon: SASL, simple with bind_dn, or anonymous. */
int	dir_ldap_service_bind(const struct ldap_cfg *cfg, const char *password,
	    LDAP *ld);
/* Why connecting to uri failed, in an operator's words. */
void	dir_ldap_describe_failure(const struct ldap_cfg *cfg, const char *uri,
	    int rc, char *out, size_t len);
/*
 * The password in directory.ldap.bind_password_file (first line), after
 * checking that directory.ldap.ca_file, if set, can be read: libldap would
 * only say so at the first TLS handshake.  Errors name the key and file.
 */
int	dir_ldap_read_files(const struct config *config, char **password_r,
	    char *err, size_t errlen);

/*
 * --check-config over every URI: note each URI's result (an unreachable
 * one is a warning on stderr, any other failure an error; the reasons
 * collect in err), then the verdict: 0, or -1 with err saying why.
 */
struct dir_ldap_check {
	size_t	 reachable;
	size_t	 errlen_used;
	int	 rc;
};
void	dir_ldap_check_note(struct dir_ldap_check *c, int r, const char *why,
	    char *err, size_t errlen);
int	dir_ldap_check_verdict(struct dir_ldap_check *c, char *err);

#endif
