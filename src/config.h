/*
 * The daemon's configuration: libconfig syntax in, a validated, immutable
 * struct config out.  Unknown keys and bad values are rejected with
 * "FILE:LINE: key: reason".  A reload builds a new struct and swaps it in;
 * a failed load leaves the running one alone.
 */
#ifndef POSTERN_CONFIG_H
#define POSTERN_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "host_map.h"
#include "log.h"
#include "username.h"

/* Host attributes directory.ldap.attributes.host may list. */
#define HOST_ATTRS_MAX		8
/* sun_path holds 108 bytes on Linux. */
#define CONTROL_PATH_MAX	108

enum proto_id {
	PROTO_IMAP,
	PROTO_POP3,
	PROTO_SIEVE,		/* ManageSieve, RFC 5804 */
	PROTO_COUNT
};

enum tls_mode {
	TLS_MODE_NONE,		/* plaintext only */
	TLS_MODE_STARTTLS,	/* STARTTLS/STLS offered */
	TLS_MODE_REQUIRED,	/* plaintext login refused until STARTTLS */
	TLS_MODE_IMPLICIT,	/* TLS from the first byte */
};

enum auth_verify {
	AUTH_VERIFY_NONE,	/* the backend checks passwords */
	AUTH_VERIFY_LDAP_BIND,	/* bind as the user's entry first */
};

enum backend_login {
	BACKEND_LOGIN_PASSTHROUGH,	/* the client's own credentials */
	BACKEND_LOGIN_MASTER,		/* AUTHENTICATE PLAIN as a master user */
};

/* Directory back-ends (src/directory/), as directory.type names them. */
enum dir_type {
	DIR_TYPE_LDAP,
	DIR_TYPE_FILE,
	DIR_TYPE_REGEX,
	DIR_TYPE_HTTP,
	DIR_TYPE_SQL,
	DIR_TYPE_COUNT
};

/* The sql back-end's client libraries. */
enum sql_driver {
	SQL_DRIVER_POSTGRESQL,	/* libpq */
	SQL_DRIVER_MYSQL,	/* libmariadb: MySQL and MariaDB */
	SQL_DRIVER_COUNT
};

/* TLS to the sql back-end's database (directory.sql.tls). */
enum sql_tls {
	SQL_TLS_NONE,		/* plain text, even if the server offers TLS */
	SQL_TLS_PREFER,		/* TLS if the server offers it; no check */
	SQL_TLS_REQUIRE,	/* TLS or no connection; the certificate unchecked */
	SQL_TLS_VERIFY,		/* TLS, certificate from ca_file, name = the host */
	SQL_TLS_COUNT
};

/* Back-ends in one directory.type list (a chain). */
#define DIR_CHAIN_MAX	8

/* Where a listener's sessions find the domain for logins without one. */
enum domain_from {
	DOMAIN_FROM_NONE,	/* default_domain only */
	DOMAIN_FROM_SNI,	/* the TLS server name the client asked for */
	DOMAIN_FROM_LOCAL_NAME,	/* the DNS name of the address it reached */
	DOMAIN_FROM_COUNT
};

struct listen_cfg {
	enum proto_id		 proto;
	char			*address;	/* as written, for logs */
	enum tls_mode		 tls;
	bool			 proxy_protocol;	/* a PROXY header comes first */
	/* Checked, lower case; NULL = username.default_domain, "" = none. */
	char			*default_domain;
	enum domain_from	 domain_from;	/* else default_domain */
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
};

struct ldap_cfg {
	char		*uri;		/* space-separated, failover order */
	char		*base;
	int		 scope;		/* LDAP_SCOPE_* */
	char		*filter;
	char		*bind_dn;
	char		*bind_password;
	char		*bind_password_file;
	char		*sasl_mech;
	bool		 starttls;
	char		*ca_file;
	unsigned	 pool;		/* search connections */
	unsigned	 auth_pool;	/* bind connections (auth.verify) */
	unsigned	 queue;		/* lookups waiting, per queue */
	unsigned	 timeout;	/* seconds */
	unsigned	 failback;	/* seconds on a backup URI before retrying the first */
	char		*attr_username;
	char		*attr_host;	/* the first of attr_hosts */
	char		**attr_hosts;	/* tried in order: the first present wins */
	size_t		 nattr_hosts;
	char		*attr_port;
	bool		 sync;		/* RFC 4533 replica instead of searches */
	char		*sync_filter;	/* which entries the replica holds */
	char		*sync_keys;	/* space-separated login attributes */
};

enum on_move {
	ON_MOVE_KEEP,		/* live sessions stay where they are */
	ON_MOVE_KICK,		/* live sessions on the old store are closed */
};

/* An address block of proxy.trusted_networks: family, bytes, prefix length. */
struct cidr {
	int		 family;	/* AF_INET or AF_INET6 */
	unsigned char	 addr[16];
	unsigned	 prefix;
};

/* What a named backend is told of the client before its greeting. */
enum backend_proxy {
	BACKEND_PROXY_NONE,
	BACKEND_PROXY_V1,	/* PROXY protocol v1 (text) */
	BACKEND_PROXY_V2,	/* PROXY protocol v2 (binary) */
};

/* A named store: the directory may name it instead of a host. */
struct backend_cfg {
	char		*name;
	char		**addresses;	/* tried in order */
	size_t		 naddresses;
	uint16_t	 port[PROTO_COUNT];	/* 0 = backend.*_port */
	enum tls_mode	 tls;
	bool		 verify;
	char		*ca_file;
	enum backend_proxy proxy_protocol;	/* header sent before anything */
	bool		 xclient;	/* POP3: ask CAPA, send XCLIENT if listed */
};

struct config {
	char		*path;

	struct {
		unsigned	 threads;	/* resolved: never 0 */
		char		*user;
		char		*pid_file;
		enum log_level	 log_level;
		bool		 log_json;
		unsigned	 drain;		/* seconds SIGTERM waits for sessions */
		char		*control;	/* control socket path, "" = none */
		char		*greeting;	/* text of the client greetings */
	} daemon;

	struct {
		unsigned	 connections;	/* 0 = unlimited */
		unsigned	 per_ip;	/* 0 = unlimited */
		unsigned	 per_user;	/* live sessions per login, 0 = unlimited */
		bool		 throttle;	/* slow refusals down, per address and user */
		unsigned	 throttle_entries;	/* keys per table (address, user) */
		unsigned	 throttle_max;	/* seconds, the longest refusal delay */
		unsigned	 throttle_window;	/* seconds quiet before a key resets */
		unsigned	 line_length;	/* bytes, whole pre-auth command */
		unsigned	 auth_failures;	/* then the connection is closed */
		unsigned	 bad_commands;	/* then the connection is closed */
	} limits;

	struct {
		unsigned	 login;		/* seconds, connect to logged in */
		unsigned	 idle;		/* seconds without traffic in relay */
		unsigned	 connect;	/* seconds per backend address */
		unsigned	 backend;	/* seconds, connected to logged in */
		unsigned	 lookup;	/* seconds for a directory answer */
		unsigned	 proxy_header;	/* seconds for a PROXY header */
	} timeouts;

	struct {
		/* Peers that may send a PROXY header (proxy_protocol listeners). */
		struct cidr	*trusted_networks;
		size_t		 ntrusted_networks;
	} proxy;

	struct {
		char			*listen;	/* "" = no metrics endpoint */
		struct sockaddr_storage	 addr;
		socklen_t		 addrlen;
	} metrics;

	struct {
		char	*cert;
		char	*key;
		char	*min_version;
		char	*ciphers;
		struct tls_cert {
			char	*cert;
			char	*key;
		}	*certificates;		/* more, chosen by SNI */
		size_t	 ncertificates;
	} tls;

	struct listen_cfg	*listen;
	size_t			 nlisten;

	struct username_cfg	 username;

	/*
	 * "" = default.  IMAP and POP3: the list sent after login.  Sieve:
	 * the SIEVE extensions announced before login (the backend's own
	 * capabilities are relayed after it).
	 */
	char			*capability[PROTO_COUNT];

	struct {
		/* asked in order; one entry unless directory.type is a list */
		enum dir_type	 type[DIR_CHAIN_MAX];
		size_t		 ntypes;
		struct {
			unsigned	 ttl;
			unsigned	 negative_ttl;
			unsigned	 entries;
			unsigned	 negative_entries;
			bool		 serve_stale;
			unsigned	 stale_max;	/* s past ttl; 0: no limit */
		} cache;
		struct ldap_cfg	 ldap;
		char		*file_path;
		char		*regex_path;
		struct {			/* nginx's auth_http protocol */
			char		*url;
			unsigned	 timeout;	/* seconds */
			unsigned	 queue;		/* requests waiting or in flight */
			bool		 pass_password;	/* send Auth-Pass */
		} http;
		struct {			/* PostgreSQL, MySQL/MariaDB */
			enum sql_driver	 driver;
			char		*hosts;		/* "host[:port] ...", in order */
			char		*database;
			char		*user;
			char		*password;
			char		*password_file;
			char		*query;		/* the login is $1 */
			unsigned	 pool;		/* connections */
			unsigned	 queue;		/* lookups waiting or in flight */
			unsigned	 timeout;	/* seconds per connect or query */
			unsigned	 failback;	/* seconds on a later host before
							   trying earlier ones; 0 never */
			enum sql_tls	 tls;
			char		*ca_file;	/* for SQL_TLS_VERIFY */
		} sql;
		enum on_move	 on_move;
		/* Which protocols a port from the directory applies to. */
		bool		 port_for[PROTO_COUNT];
		struct host_map	 host_map;	/* directory values to hosts */
	} directory;

	struct {
		uint16_t	 port[PROTO_COUNT];
		enum tls_mode	 tls;
		char		*ca_file;
		bool		 verify;
	} backend;

	struct backend_cfg	*backends;
	size_t			 nbackends;

	struct {
		bool		 passive;	/* logins' failures count */
		bool		 active;	/* probes */
		unsigned	 failures;	/* consecutive, then down */
		unsigned	 down_time;	/* seconds down before a trial */
		unsigned	 interval;	/* seconds between probes of an up address */
		unsigned	 timeout;	/* seconds for a probe's connect + greeting */
		unsigned	 entries;	/* addresses tracked (restart) */
		unsigned	 probes;	/* probes in flight, all workers */
	} health;

	struct {
		enum auth_verify verify;
		unsigned	 failure_delay;	/* seconds before a refusal is sent */
	} auth;
	struct {
		enum backend_login login;
		char		*master_user;
		char		*master_password;
	} master;
};

/* Is `type` one of directory.type's back-ends? */
bool		 config_dir_uses(const struct config *cfg, enum dir_type type);
/* directory.type's name for `type`. */
const char	*dir_type_name(enum dir_type type);

/* The named backend called `name` (case-insensitive), or NULL. */
const struct backend_cfg *config_backend(const struct config *cfg,
		    const char *name);

/*
 * Load and validate FILE.  On error returns -1 and writes
 * "FILE:LINE: key: reason" into err.
 */
int		 config_load(const char *path, struct config **config_r,
		    char *err, size_t errlen);
/* Parse from a string (tests); `name` stands in for the file name. */
int		 config_load_string(const char *name, const char *text,
		    struct config **config_r, char *err, size_t errlen);
void		 config_free(struct config **configp);

/*
 * A file named by a path-valued key could not be read: writes
 * "CONFIG: KEY: PATH: reason" into err and returns -1.  Every such error
 * names the key and the configuration file, wherever the file is opened.
 */
int		 config_file_fail(const struct config *cfg, const char *key,
		    const char *path, const char *reason, char *err,
		    size_t errlen);
/* Open PATH for reading and close it again; config_file_fail() if not. */
int		 config_file_check(const struct config *cfg, const char *key,
		    const char *path, char *err, size_t errlen);

/* Is the address in one of the blocks?  IPv4-mapped IPv6 counts as IPv4. */
bool		 cidr_match(const struct cidr *list, size_t n,
		    const struct sockaddr *sa);
/* Parse "a.b.c.d/n", "x::y/n" or a bare address (a host).  0 or -1. */
int		 cidr_parse(const char *text, struct cidr *out);

const char	*proto_name(enum proto_id proto);
const char	*tls_mode_name(enum tls_mode mode);
const char	*domain_from_name(enum domain_from from);
const char	*sql_tls_name(enum sql_tls tls);

#endif
