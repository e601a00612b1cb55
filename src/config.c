#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <ldap.h>
#include <libconfig.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "directory.h"
#include "directory/sql.h"
#include "privsep.h"
#include "util.h"

#define DEFAULT_FILTER "(|(&(objectClass=perditionPopmap)(uid=%u))" \
	"(&(objectClass=inetLocalMailRecipient)(mail=%u)))"
/* Names neither the product nor its version. */
#define DEFAULT_GREETING "ready."
/* The greeting follows "* OK [CAPABILITY ...] " or "+OK " on one line. */
#define GREETING_MAX 200
#define DEFAULT_SYNC_FILTER "(|(objectClass=perditionPopmap)" \
	"(objectClass=inetLocalMailRecipient))"

static void	set_host_attrs(struct ldap_cfg *, const char *const *, size_t);

/* The state of one load: where errors go. */
struct loader {
	const char	*file;
	char		*err;
	size_t		 errlen;
};

static const char *const tls_mode_names[] = {
	[TLS_MODE_NONE] = "none",
	[TLS_MODE_STARTTLS] = "starttls",
	[TLS_MODE_REQUIRED] = "required",
	[TLS_MODE_IMPLICIT] = "implicit",
};
static const char *const proto_names[] = {
	[PROTO_IMAP] = "imap",
	[PROTO_POP3] = "pop3",
	[PROTO_SIEVE] = "sieve",
};
_Static_assert(nitems(proto_names) == PROTO_COUNT, "proto_names");
static const char *const domain_from_names[] = {
	[DOMAIN_FROM_NONE] = "none",
	[DOMAIN_FROM_SNI] = "sni",
	[DOMAIN_FROM_LOCAL_NAME] = "local_name",
};
_Static_assert(nitems(domain_from_names) == DOMAIN_FROM_COUNT,
    "domain_from_names");

const char *
domain_from_name(enum domain_from from)
{
	return domain_from_names[from];
}

const char *
proto_name(enum proto_id proto)
{
	return proto_names[proto];
}

const char *
tls_mode_name(enum tls_mode mode)
{
	return tls_mode_names[mode];
}

static int	fail(struct loader *ld, const config_setting_t *s,
		    const char *key, const char *fmt, ...)
		    __attribute__((format(printf, 4, 5)));

static int
fail(struct loader *ld, const config_setting_t *s, const char *key,
    const char *fmt, ...)
{
	char reason[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	snprintf(ld->err, ld->errlen, "%s:%u: %s: %s", ld->file,
	    s != NULL ? config_setting_source_line(s) : 0, key, reason);
	return -1;
}

/* Reject members of `group` not named in `allowed` (NULL-terminated). */
static int
check_keys(struct loader *ld, const config_setting_t *group, const char *path,
    const char *const *allowed)
{
	int n = config_setting_length(group);

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(group, (unsigned)i);
		const char *name = config_setting_name(s);
		const char *const *a;
		char key[128];

		for (a = allowed; *a != NULL; a++)
			if (strcmp(*a, name) == 0)
				break;
		if (*a == NULL) {
			snprintf(key, sizeof(key), "%s%s%s", path,
			    *path ? "." : "", name);
			return fail(ld, s, key, "unknown key");
		}
	}
	return 0;
}

/* Fetch group member `name` if present; -1 if present but not a group. */
static int
get_group(struct loader *ld, const config_setting_t *parent, const char *path,
    const char *name, const config_setting_t **group_r)
{
	const config_setting_t *s = config_setting_get_member(parent, name);
	char key[128];

	*group_r = s;
	if (s != NULL && config_setting_type(s) != CONFIG_TYPE_GROUP) {
		snprintf(key, sizeof(key), "%s%s%s", path, *path ? "." : "", name);
		return fail(ld, s, key, "must be a group { ... }");
	}
	return 0;
}

static int
get_uint(struct loader *ld, const config_setting_t *g, const char *path,
    const char *name, long long min, long long max, unsigned *out)
{
	const config_setting_t *s;
	long long v;
	char key[128];

	if (g == NULL || (s = config_setting_get_member(g, name)) == NULL)
		return 0;
	snprintf(key, sizeof(key), "%s.%s", path, name);
	if (config_setting_type(s) == CONFIG_TYPE_INT)
		v = config_setting_get_int(s);
	else if (config_setting_type(s) == CONFIG_TYPE_INT64)
		v = config_setting_get_int64(s);
	else
		return fail(ld, s, key, "must be an integer");
	if (v < min || v > max)
		return fail(ld, s, key, "must be between %lld and %lld", min, max);
	*out = (unsigned)v;
	return 0;
}

static int
get_bool(struct loader *ld, const config_setting_t *g, const char *path,
    const char *name, bool *out)
{
	const config_setting_t *s;
	char key[128];

	if (g == NULL || (s = config_setting_get_member(g, name)) == NULL)
		return 0;
	snprintf(key, sizeof(key), "%s.%s", path, name);
	if (config_setting_type(s) != CONFIG_TYPE_BOOL)
		return fail(ld, s, key, "must be true or false");
	*out = config_setting_get_bool(s) != 0;
	return 0;
}

/* Replace *out (which holds a default) with the string, if present. */
static int
get_str(struct loader *ld, const config_setting_t *g, const char *path,
    const char *name, char **out)
{
	const config_setting_t *s;
	char key[128];

	if (g == NULL || (s = config_setting_get_member(g, name)) == NULL)
		return 0;
	snprintf(key, sizeof(key), "%s.%s", path, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(ld, s, key, "must be a string");
	free(*out);
	*out = xstrdup(config_setting_get_string(s));
	return 0;
}

/*
 * Path-valued keys: a relative value names a file next to the configuration
 * file.  The result is absolute even when the configuration file was named
 * relative to the working directory, which the daemon leaves when it
 * detaches; "" (none) and absolute values are kept as written.
 */
static void
resolve_path(const char *config_file, char **pathp)
{
	const char *slash = strrchr(config_file, '/');
	int dirlen = slash != NULL ? (int)(slash - config_file) : 0;
	char cwd[4096], *out;
	size_t len;

	if (*pathp == NULL || (*pathp)[0] == '\0' || (*pathp)[0] == '/')
		return;
	if (config_file[0] == '/')
		cwd[0] = '\0';		/* dirlen 0: the file is in "/" */
	else if (getcwd(cwd, sizeof(cwd)) == NULL)
		str_copy(cwd, ".", sizeof(cwd));
	len = strlen(cwd) + (size_t)dirlen + strlen(*pathp) + 3;
	out = xmalloc(len);
	snprintf(out, len, "%s%s%.*s/%s", cwd, cwd[0] != '\0' && dirlen > 0 ?
	    "/" : "", dirlen, config_file, *pathp);
	free(*pathp);
	*pathp = out;
}

/* get_str() for a key that names a file: see resolve_path(). */
static int
get_path(struct loader *ld, const config_setting_t *g, const char *path,
    const char *name, char **out)
{
	if (get_str(ld, g, path, name, out) < 0)
		return -1;
	resolve_path(ld->file, out);
	return 0;
}

/* A string member that must be one of `names` (indexed by value). */
/* "one of: a, b, c" for an enum's error message. */
static const char *
enum_choices(const char *const *names, size_t n, char *out, size_t len)
{
	size_t o = str_copy(out, "one of:", len);

	for (size_t i = 0; i < n && o < len; i++)
		if (names[i] != NULL)
			o += (size_t)snprintf(out + o, len - o, "%s \"%s\"",
			    o > 7 ? "," : "", names[i]);
	return out;
}

static int
get_enum(struct loader *ld, const config_setting_t *g, const char *path,
    const char *name, const char *const *names, size_t n, int *out)
{
	const config_setting_t *s;
	const char *v;
	char key[128], choices[256];

	if (g == NULL || (s = config_setting_get_member(g, name)) == NULL)
		return 0;
	snprintf(key, sizeof(key), "%s.%s", path, name);
	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(ld, s, key, "must be a string");
	v = config_setting_get_string(s);
	for (size_t i = 0; i < n; i++) {
		if (names[i] != NULL && strcmp(v, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	return fail(ld, s, key, "unknown value \"%s\" (%s)", v,
	    enum_choices(names, n, choices, sizeof(choices)));
}

static void
config_defaults(struct config *c)
{
	c->daemon.threads = 0;
	c->daemon.user = xstrdup("");
	c->daemon.pid_file = xstrdup("");
	c->daemon.log_level = LOG_LVL_INFO;
	c->daemon.drain = 30;
	c->daemon.control = xstrdup("");
	c->metrics.listen = xstrdup("");
	c->daemon.greeting = xstrdup(DEFAULT_GREETING);
	c->limits.line_length = 65536;
	c->limits.auth_failures = 3;
	c->limits.bad_commands = 10;
	c->limits.throttle = true;
	c->health.passive = true;
	c->health.active = true;
	c->health.failures = 3;
	c->health.down_time = 30;
	c->health.interval = 10;
	c->health.timeout = 5;
	c->health.entries = 1024;
	c->health.probes = 16;
	c->limits.throttle_entries = 100000;
	c->limits.throttle_max = 30;
	c->limits.throttle_window = 300;
	c->timeouts.login = 60;
	c->timeouts.idle = 1800;
	c->timeouts.connect = 10;
	c->timeouts.backend = 30;
	c->timeouts.lookup = 5;
	c->timeouts.proxy_header = 5;
	c->tls.cert = xstrdup("");
	c->tls.key = xstrdup("");
	c->tls.min_version = xstrdup("TLSv1.2");
	c->tls.ciphers = xstrdup("");
	c->username.lower_case = true;
	c->username.delimiter = '@';
	c->username.default_domain = xstrdup("");
	c->username.strip_domain = false;
	c->capability[PROTO_IMAP] = xstrdup("");
	c->capability[PROTO_POP3] = xstrdup("");
	c->capability[PROTO_SIEVE] = xstrdup("");
	c->directory.type[0] = DIR_TYPE_LDAP;
	c->directory.ntypes = 1;
	c->directory.cache.ttl = 60;
	c->directory.cache.negative_ttl = 10;
	c->directory.cache.entries = 100000;
	c->directory.cache.negative_entries = 10000;
	c->directory.cache.serve_stale = true;
	c->directory.cache.stale_max = 3600;
	c->directory.ldap.uri = xstrdup("ldap://127.0.0.1/");
	c->directory.ldap.base = xstrdup("");
	c->directory.ldap.scope = LDAP_SCOPE_SUBTREE;
	c->directory.ldap.filter = xstrdup(DEFAULT_FILTER);
	c->directory.ldap.bind_dn = xstrdup("");
	c->directory.ldap.bind_password = xstrdup("");
	c->directory.ldap.bind_password_file = xstrdup("");
	c->directory.ldap.sasl_mech = xstrdup("");
	c->directory.ldap.ca_file = xstrdup("");
	c->directory.ldap.pool = 4;
	c->directory.ldap.auth_pool = 2;
	c->directory.ldap.queue = 4096;
	c->directory.ldap.timeout = 5;
	c->directory.ldap.failback = 60;
	c->directory.ldap.attr_username = xstrdup("username");
	c->directory.ldap.attr_host = NULL;
	set_host_attrs(&c->directory.ldap, (const char *const []){ "mailhost" }, 1);
	c->directory.ldap.attr_port = xstrdup("port");
	c->directory.ldap.sync = false;
	c->directory.ldap.sync_filter = xstrdup(DEFAULT_SYNC_FILTER);
	c->directory.ldap.sync_keys = xstrdup("uid mail");
	c->directory.on_move = ON_MOVE_KEEP;
	for (int p = 0; p < PROTO_COUNT; p++)
		c->directory.port_for[p] = true;
	c->directory.file_path = xstrdup("popmap");
	c->directory.regex_path = xstrdup("");
	c->directory.http.url = xstrdup("");
	c->directory.http.timeout = 5;
	c->directory.http.queue = 4096;
	c->directory.sql.driver = SQL_DRIVER_POSTGRESQL;
	c->directory.sql.hosts = xstrdup("");
	c->directory.sql.database = xstrdup("");
	c->directory.sql.user = xstrdup("");
	c->directory.sql.password = xstrdup("");
	c->directory.sql.password_file = xstrdup("");
	c->directory.sql.query = xstrdup("");
	c->directory.sql.pool = 4;
	c->directory.sql.queue = 4096;
	c->directory.sql.timeout = 5;
	c->directory.sql.failback = 60;
	c->directory.sql.tls = SQL_TLS_PREFER;
	c->directory.sql.ca_file = xstrdup("");
	c->backend.port[PROTO_IMAP] = 143;
	c->backend.port[PROTO_POP3] = 110;
	c->backend.port[PROTO_SIEVE] = 4190;
	c->backend.tls = TLS_MODE_NONE;
	c->backend.ca_file = xstrdup("");
	c->backend.verify = true;
	c->auth.verify = AUTH_VERIFY_NONE;
	c->auth.failure_delay = 2;
	c->master.login = BACKEND_LOGIN_PASSTHROUGH;
	c->master.master_user = xstrdup("");
	c->master.master_password = xstrdup("");
}

/*
 * The greeting is sent verbatim inside a protocol line: no CR, LF or other
 * control byte may end the line early or smuggle another one in.
 */
static int
check_greeting(struct loader *ld, const config_setting_t *s, const char *v)
{
	size_t len = strlen(v);

	if (len == 0 || len > GREETING_MAX)
		return fail(ld, s, "daemon.greeting",
		    "must be 1 to %d bytes long", GREETING_MAX);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return fail(ld, s, "daemon.greeting",
			    "must not contain control characters");
	return 0;
}

static int
load_daemon(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "threads", "user", "pid_file",
	    "log_level", "log_format", "drain", "control", "greeting", NULL };
	static const char *const formats[] = { "text", "json" };
	static const char *const levels[] = { "error", "warning", "info", "debug" };
	const config_setting_t *g;
	int level = (int)c->daemon.log_level, json = 0;

	if (get_group(ld, root, "", "daemon", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (check_keys(ld, g, "daemon", keys) < 0 ||
	    get_uint(ld, g, "daemon", "threads", 0, 256, &c->daemon.threads) < 0 ||
	    get_str(ld, g, "daemon", "user", &c->daemon.user) < 0 ||
	    get_path(ld, g, "daemon", "pid_file", &c->daemon.pid_file) < 0 ||
	    get_enum(ld, g, "daemon", "log_level", levels, nitems(levels), &level) < 0 ||
	    get_enum(ld, g, "daemon", "log_format", formats, nitems(formats), &json) < 0 ||
	    get_uint(ld, g, "daemon", "drain", 0, 86400, &c->daemon.drain) < 0 ||
	    get_path(ld, g, "daemon", "control", &c->daemon.control) < 0 ||
	    get_str(ld, g, "daemon", "greeting", &c->daemon.greeting) < 0)
		return -1;
	if (strlen(c->daemon.control) >= CONTROL_PATH_MAX)
		return fail(ld, config_setting_get_member(g, "control"), "daemon.control",
		    "must be a path of fewer than %d bytes (relative paths count "
		    "from the configuration file's directory)", CONTROL_PATH_MAX);
	if (check_greeting(ld, config_setting_get_member(g, "greeting"),
	    c->daemon.greeting) < 0)
		return -1;
	c->daemon.log_level = (enum log_level)level;
	c->daemon.log_json = json == 1;
	return 0;
}

/* A group of bounded unsigned settings, described by a table. */
struct uint_key {
	const char	*name;
	long long	 min, max;
	size_t		 offset;	/* into struct config */
};

/* extra: more allowed keys (read by the caller), NULL-terminated, or NULL. */
static int
load_uint_group(struct loader *ld, const config_setting_t *root,
    const char *group, const struct uint_key *table, size_t n,
    const char *const *extra, struct config *c)
{
	const char *keys[24];
	const config_setting_t *g;
	size_t k = 0;

	if (get_group(ld, root, "", group, &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	for (size_t i = 0; i < n && k + 1 < nitems(keys); i++)
		keys[k++] = table[i].name;
	for (; extra != NULL && *extra != NULL && k + 1 < nitems(keys); extra++)
		keys[k++] = *extra;
	keys[k] = NULL;
	if (check_keys(ld, g, group, keys) < 0)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (get_uint(ld, g, group, table[i].name, table[i].min, table[i].max,
		    (unsigned *)(void *)((char *)c + table[i].offset)) < 0)
			return -1;
	return 0;
}

static int
load_limits(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const struct uint_key table[] = {
		{ "connections", 0, 10000000, offsetof(struct config, limits.connections) },
		{ "per_ip", 0, 10000000, offsetof(struct config, limits.per_ip) },
		{ "line_length", 512, 1048576, offsetof(struct config, limits.line_length) },
		{ "auth_failures", 1, 100, offsetof(struct config, limits.auth_failures) },
		{ "bad_commands", 1, 1000, offsetof(struct config, limits.bad_commands) },
		{ "per_user", 0, 10000000, offsetof(struct config, limits.per_user) },
		{ "throttle_entries", 16, 10000000,
		    offsetof(struct config, limits.throttle_entries) },
		{ "throttle_max", 1, 3600, offsetof(struct config, limits.throttle_max) },
		{ "throttle_window", 1, 86400,
		    offsetof(struct config, limits.throttle_window) },
	};
	static const char *const extra[] = { "throttle", NULL };
	const config_setting_t *g = config_setting_get_member(root, "limits");

	if (load_uint_group(ld, root, "limits", table, nitems(table), extra, c) < 0)
		return -1;
	/* load_uint_group() checked that g, if present, is a group. */
	return get_bool(ld, g, "limits", "throttle", &c->limits.throttle);
}

static int
load_health(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const struct uint_key table[] = {
		{ "failures", 1, 100, offsetof(struct config, health.failures) },
		{ "down_time", 1, 86400, offsetof(struct config, health.down_time) },
		{ "interval", 1, 86400, offsetof(struct config, health.interval) },
		{ "timeout", 1, 3600, offsetof(struct config, health.timeout) },
		{ "entries", 1, 1000000, offsetof(struct config, health.entries) },
		{ "probes", 1, 1024, offsetof(struct config, health.probes) },
	};
	static const char *const extra[] = { "passive", "active", NULL };
	const config_setting_t *g = config_setting_get_member(root, "health");

	if (load_uint_group(ld, root, "health", table, nitems(table), extra, c) < 0)
		return -1;
	/* load_uint_group() checked that g, if present, is a group. */
	if (get_bool(ld, g, "health", "passive", &c->health.passive) < 0 ||
	    get_bool(ld, g, "health", "active", &c->health.active) < 0)
		return -1;
	if (c->health.timeout > c->health.interval) {
		const config_setting_t *s = config_setting_get_member(g, "timeout");

		return fail(ld, s != NULL ? s : config_setting_get_member(g,
		    "interval"), "health.timeout", "must not be longer than "
		    "health.interval (%u)", c->health.interval);
	}
	return 0;
}

static int
load_timeouts(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const struct uint_key table[] = {
		{ "login", 1, 86400, offsetof(struct config, timeouts.login) },
		{ "idle", 1, 604800, offsetof(struct config, timeouts.idle) },
		{ "connect", 1, 3600, offsetof(struct config, timeouts.connect) },
		{ "backend", 1, 3600, offsetof(struct config, timeouts.backend) },
		{ "lookup", 1, 3600, offsetof(struct config, timeouts.lookup) },
		{ "proxy_header", 1, 60, offsetof(struct config, timeouts.proxy_header) },
	};

	return load_uint_group(ld, root, "timeouts", table, nitems(table), NULL, c);
}

static int
load_tls(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "cert", "key", "min_version",
	    "ciphers", "certificates", NULL };
	static const char *const cert_keys[] = { "cert", "key", NULL };
	const config_setting_t *g, *list;

	if (get_group(ld, root, "", "tls", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (check_keys(ld, g, "tls", keys) < 0 ||
	    get_path(ld, g, "tls", "cert", &c->tls.cert) < 0 ||
	    get_path(ld, g, "tls", "key", &c->tls.key) < 0 ||
	    get_str(ld, g, "tls", "min_version", &c->tls.min_version) < 0 ||
	    get_str(ld, g, "tls", "ciphers", &c->tls.ciphers) < 0)
		return -1;
	if ((list = config_setting_get_member(g, "certificates")) != NULL) {
		int n;

		if (config_setting_type(list) != CONFIG_TYPE_LIST)
			return fail(ld, list, "tls.certificates",
			    "must be a list ( { cert = ...; key = ...; }, ... )");
		n = config_setting_length(list);
		c->tls.certificates = xcalloc((size_t)n + 1, sizeof(*c->tls.certificates));
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
			struct tls_cert *tc = &c->tls.certificates[i];
			char path[40];

			snprintf(path, sizeof(path), "tls.certificates[%d]", i);
			c->tls.ncertificates++;
			if (config_setting_type(e) != CONFIG_TYPE_GROUP)
				return fail(ld, e, path, "must be a group { ... }");
			if (check_keys(ld, e, path, cert_keys) < 0 ||
			    get_path(ld, e, path, "cert", &tc->cert) < 0 ||
			    get_path(ld, e, path, "key", &tc->key) < 0)
				return -1;
			if (tc->cert == NULL || tc->key == NULL)
				return fail(ld, e, path, "needs cert and key");
		}
	}
	if (strcmp(c->tls.min_version, "TLSv1.2") != 0 &&
	    strcmp(c->tls.min_version, "TLSv1.3") != 0)
		return fail(ld, config_setting_get_member(g, "min_version"),
		    "tls.min_version", "must be \"TLSv1.2\" or \"TLSv1.3\"");
	return 0;
}

static int
parse_listen_address(const char *text, struct listen_cfg *l, const char **error_r)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV |
	    AI_PASSIVE, .ai_socktype = SOCK_STREAM }, *res;
	char *host = NULL, portstr[8];
	uint16_t port = 0;
	int rc;

	if (hostport_parse(text, &host, &port, error_r) < 0)
		return -1;
	if (port == 0) {
		free(host);
		*error_r = "needs a port (address:port)";
		return -1;
	}
	snprintf(portstr, sizeof(portstr), "%u", port);
	rc = getaddrinfo(strcmp(host, "*") == 0 ? NULL : host, portstr, &hints, &res);
	free(host);
	if (rc != 0) {
		*error_r = "not a numeric IPv4 or [IPv6] address";
		return -1;
	}
	memcpy(&l->addr, res->ai_addr, res->ai_addrlen);
	l->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void
add_listen(struct config *c, enum proto_id proto, const char *addr,
    enum tls_mode tls)
{
	struct listen_cfg *l;
	const char *error;

	c->listen = xrealloc(c->listen, (c->nlisten + 1) * sizeof(*c->listen));
	l = &c->listen[c->nlisten++];
	memset(l, 0, sizeof(*l));
	l->proto = proto;
	l->address = xstrdup(addr);
	l->tls = tls;
	if (parse_listen_address(addr, l, &error) < 0)
		abort();	/* only used with constant defaults */
}

/* listen[].default_domain: a host name, kept lower case; "" = none. */
static int
load_listen_domain(struct loader *ld, const config_setting_t *g,
    const char *path, struct listen_cfg *l)
{
	char key[64], name[DOMAIN_NAME_MAX + 1];
	const char *error;

	if (get_str(ld, g, path, "default_domain", &l->default_domain) < 0)
		return -1;
	if (l->default_domain == NULL || l->default_domain[0] == '\0')
		return 0;
	snprintf(key, sizeof(key), "%s.default_domain", path);
	if (domain_check(l->default_domain, strlen(l->default_domain), name,
	    sizeof(name), &error) < 0)
		return fail(ld, config_setting_get_member(g, "default_domain"),
		    key, "\"%s\": %s", l->default_domain, error);
	free(l->default_domain);
	l->default_domain = xstrdup(name);
	return 0;
}

static int
load_listen(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "protocol", "address", "tls",
	    "proxy_protocol", "default_domain", "domain_from", NULL };
	const config_setting_t *list = config_setting_get_member(root, "listen");
	int n;

	if (list == NULL) {
		add_listen(c, PROTO_IMAP, "0.0.0.0:143", TLS_MODE_NONE);
		add_listen(c, PROTO_POP3, "0.0.0.0:110", TLS_MODE_NONE);
		return 0;
	}
	if (config_setting_type(list) != CONFIG_TYPE_LIST &&
	    config_setting_type(list) != CONFIG_TYPE_ARRAY)
		return fail(ld, list, "listen", "must be a list ( { ... }, ... )");
	if ((n = config_setting_length(list)) == 0)
		return fail(ld, list, "listen", "needs at least one listener");
	c->listen = xcalloc((size_t)n, sizeof(*c->listen));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct listen_cfg *l = &c->listen[i];
		char path[32], *proto = NULL;
		int tls = TLS_MODE_NONE, p = -1, from = DOMAIN_FROM_NONE;
		const char *error;

		snprintf(path, sizeof(path), "listen[%d]", i);
		c->nlisten++;
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return fail(ld, g, path, "must be a group { ... }");
		if (check_keys(ld, g, path, keys) < 0 ||
		    get_enum(ld, g, path, "protocol", proto_names, PROTO_COUNT, &p) < 0 ||
		    get_str(ld, g, path, "address", &l->address) < 0 ||
		    get_enum(ld, g, path, "tls", tls_mode_names,
		    nitems(tls_mode_names), &tls) < 0 ||
		    get_bool(ld, g, path, "proxy_protocol", &l->proxy_protocol) < 0 ||
		    get_enum(ld, g, path, "domain_from", domain_from_names,
		    nitems(domain_from_names), &from) < 0 ||
		    load_listen_domain(ld, g, path, l) < 0) {
			free(proto);
			return -1;
		}
		if (p < 0)
			return fail(ld, g, path,
			    "protocol is required (\"imap\", \"pop3\" or \"sieve\")");
		if (l->address == NULL)
			return fail(ld, g, path, "address is required");
		l->proto = (enum proto_id)p;
		l->tls = (enum tls_mode)tls;
		l->domain_from = (enum domain_from)from;
		if (l->domain_from == DOMAIN_FROM_SNI && l->tls == TLS_MODE_NONE)
			return fail(ld, config_setting_get_member(g, "domain_from"),
			    path, "domain_from \"sni\" needs tls (\"starttls\", "
			    "\"required\" or \"implicit\")");
		if (parse_listen_address(l->address, l, &error) < 0)
			return fail(ld, config_setting_get_member(g, "address"),
			    path, "address \"%s\": %s", l->address, error);
		for (int k = 0; k < i; k++)
			if (c->listen[k].addrlen == l->addrlen &&
			    memcmp(&c->listen[k].addr, &l->addr, l->addrlen) == 0)
				return fail(ld, g, path, "address %s is already used by listen[%d]",
				    l->address, k);
	}
	return 0;
}

static int
load_username(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "lower_case", "domain_delimiter",
	    "default_domain", "strip_domain", NULL };
	const config_setting_t *g;
	char *delim = xstrdup("@");

	if (get_group(ld, root, "", "username", &g) < 0)
		goto bad;
	if (g == NULL)
		goto good;
	if (check_keys(ld, g, "username", keys) < 0 ||
	    get_bool(ld, g, "username", "lower_case", &c->username.lower_case) < 0 ||
	    get_str(ld, g, "username", "domain_delimiter", &delim) < 0 ||
	    get_str(ld, g, "username", "default_domain", &c->username.default_domain) < 0 ||
	    get_bool(ld, g, "username", "strip_domain", &c->username.strip_domain) < 0)
		goto bad;
	if (strlen(delim) != 1 || (unsigned char)delim[0] <= 0x20 ||
	    (unsigned char)delim[0] >= 0x7f) {
		fail(ld, config_setting_get_member(g, "domain_delimiter"),
		    "username.domain_delimiter", "must be one printable ASCII character");
		goto bad;
	}
	for (const char *p = c->username.default_domain; *p != '\0'; p++) {
		if ((unsigned char)*p <= 0x20 || *p == delim[0]) {
			fail(ld, config_setting_get_member(g, "default_domain"),
			    "username.default_domain", "must not contain spaces, "
			    "control characters or the delimiter");
			goto bad;
		}
	}
good:
	c->username.delimiter = delim[0];
	free(delim);
	return 0;
bad:
	free(delim);
	return -1;
}

static int
load_capability(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "imap", "pop3", "sieve", NULL };
	const config_setting_t *g;

	if (get_group(ld, root, "", "capability", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (check_keys(ld, g, "capability", keys) < 0 ||
	    get_str(ld, g, "capability", "imap", &c->capability[PROTO_IMAP]) < 0 ||
	    get_str(ld, g, "capability", "pop3", &c->capability[PROTO_POP3]) < 0 ||
	    get_str(ld, g, "capability", "sieve", &c->capability[PROTO_SIEVE]) < 0)
		return -1;
	for (int p = 0; p < PROTO_COUNT; p++)
		if (strpbrk(c->capability[p], "\r\n") != NULL)
			return fail(ld, g, "capability", "must not contain line breaks");
	/* Sent inside a quoted string, so nothing there may need escaping. */
	if (strpbrk(c->capability[PROTO_SIEVE], "\"\\") != NULL)
		return fail(ld, config_setting_get_member(g, "sieve"), "capability.sieve",
		    "must not contain quotes or backslashes");
	return 0;
}

static bool
dn_valid(const char *text)
{
	LDAPDN dn = NULL;

	if (ldap_str2dn(text, &dn, LDAP_DN_FORMAT_LDAPV3) != LDAP_SUCCESS)
		return false;
	ldap_dnfree(dn);
	return true;
}

/*
 * A filter or base template is expanded for a sample user and the result
 * checked as the server would parse it (RFC 4515 filter, RFC 4514 DN), so a
 * typo fails here, not at every login.
 */
static int
check_ldap_template(struct loader *ld, const config_setting_t *g,
    const char *name, const char *tmpl, bool dn)
{
	static const struct username sample = { "user@example.org", "user",
	    "example.org" };
	const config_setting_t *s = config_setting_get_member(g, name);
	char key[64], out[4096];
	const char *error;
	size_t off;

	snprintf(key, sizeof(key), "directory.ldap.%s", name);
	if (ldap_expand(tmpl, &sample, PROTO_IMAP, dn, out, sizeof(out)) < 0)
		return fail(ld, s, key, "unknown %%-sequence (use %%u, %%l, %%d, %%p "
		    "or %%%%) or too long");
	if (dn) {
		if (out[0] != '\0' && !dn_valid(out))
			return fail(ld, s, key, "\"%s\" is not a valid DN", tmpl);
		return 0;
	}
	if (ldap_filter_check(out, &off, &error) < 0)
		return fail(ld, s, key, "not an RFC 4515 filter: %s at offset %zu "
		    "of \"%s\"", error, off, out);
	return 0;
}

/* An attribute description: a name (letters, digits, '-') or an OID. */
static int
check_attr_name(struct loader *ld, const config_setting_t *attrs,
    const char *name, const char *value)
{
	const config_setting_t *s = attrs != NULL ?
	    config_setting_get_member(attrs, name) : NULL;
	char key[64];
	bool ok = value[0] != '\0';

	for (const char *p = value; *p != '\0'; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == ';'))
			ok = false;
	if (ok)
		return 0;
	snprintf(key, sizeof(key), "directory.ldap.attributes.%s", name);
	return fail(ld, s, key, "\"%s\" is not an attribute name", value);
}

static void
set_host_attrs(struct ldap_cfg *l, const char *const *names, size_t n)
{
	for (size_t i = 0; i < l->nattr_hosts; i++)
		free(l->attr_hosts[i]);
	free(l->attr_hosts);
	l->attr_hosts = xcalloc(n + 1, sizeof(*l->attr_hosts));
	for (size_t i = 0; i < n; i++)
		l->attr_hosts[i] = xstrdup(names[i]);
	l->nattr_hosts = n;
	free(l->attr_host);
	l->attr_host = xstrdup(names[0]);
}

/* attributes.host: one name, or a list tried in order (first present wins). */
static int
get_host_attrs(struct loader *ld, const config_setting_t *attrs, struct ldap_cfg *l)
{
	const char *key = "directory.ldap.attributes.host";
	const config_setting_t *s = config_setting_get_member(attrs, "host");
	const char *names[HOST_ATTRS_MAX];
	int n;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		names[0] = config_setting_get_string(s);
		set_host_attrs(l, names, 1);
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_ARRAY &&
	    config_setting_type(s) != CONFIG_TYPE_LIST)
		return fail(ld, s, key, "must be a string or a list of strings");
	n = config_setting_length(s);
	if (n < 1 || n > HOST_ATTRS_MAX)
		return fail(ld, s, key, "must list 1 to %d attributes", HOST_ATTRS_MAX);
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);

		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(ld, s, key, "must be a string or a list of strings");
		names[i] = config_setting_get_string(e);
	}
	set_host_attrs(l, names, (size_t)n);
	return 0;
}

/* directory.host_map = ( { value = "..."; host = "..."; }, { regex = ...; } ) */
static int
load_host_map(struct loader *ld, const config_setting_t *dir, struct config *c)
{
	static const char *const keys[] = { "value", "regex", "host", NULL };
	const config_setting_t *list = config_setting_get_member(dir, "host_map");
	int n;

	if (list == NULL)
		return 0;
	if (config_setting_type(list) != CONFIG_TYPE_LIST)
		return fail(ld, list, "directory.host_map", "must be a list ( { ... }, ... )");
	n = config_setting_length(list);
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		char path[48], *value = xstrdup(""), *regex = xstrdup(""),
		    *host = xstrdup("");
		const char *error = NULL;
		int rc = -1;

		snprintf(path, sizeof(path), "directory.host_map[%d]", i);
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			rc = fail(ld, g, path, "must be a group { ... }");
		else if (check_keys(ld, g, path, keys) < 0 ||
		    get_str(ld, g, path, "value", &value) < 0 ||
		    get_str(ld, g, path, "regex", &regex) < 0 ||
		    get_str(ld, g, path, "host", &host) < 0)
			rc = -1;
		else if ((value[0] != '\0') == (regex[0] != '\0'))
			rc = fail(ld, g, path, "set value or regex, one of them");
		else if (host_map_add(&c->directory.host_map, value[0] ? value : regex,
		    regex[0] != '\0', host, &error) < 0)
			rc = fail(ld, g, path, "%s", error);
		else
			rc = 0;
		free(value);
		free(regex);
		free(host);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* The replica's filter is fixed (no placeholders); its keys are attributes. */
static int
check_sync(struct loader *ld, const config_setting_t *g, const struct ldap_cfg *l)
{
	const config_setting_t *s = config_setting_get_member(g, "sync_filter");
	const char *error;
	size_t off;
	bool any = false;

	if (strchr(l->sync_filter, '%') != NULL)
		return fail(ld, s, "directory.ldap.sync_filter",
		    "takes no %%-sequences: it selects every routing entry");
	if (ldap_filter_check(l->sync_filter, &off, &error) < 0)
		return fail(ld, s, "directory.ldap.sync_filter",
		    "not an RFC 4515 filter: %s at offset %zu", error, off);
	s = config_setting_get_member(g, "sync_keys");
	for (const char *p = l->sync_keys; *p != '\0'; p++) {
		if (*p == ' ')
			continue;
		any = true;
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == ';'))
			return fail(ld, s, "directory.ldap.sync_keys",
			    "\"%s\" is not a list of attribute names", l->sync_keys);
	}
	if (!any)
		return fail(ld, s, "directory.ldap.sync_keys",
		    "must name at least one login attribute");
	return 0;
}

static int
load_ldap(struct loader *ld, const config_setting_t *dir, struct config *c)
{
	static const char *const keys[] = { "uri", "base", "scope", "filter",
	    "bind_dn", "bind_password", "bind_password_file", "sasl_mech",
	    "starttls", "ca_file", "pool", "auth_pool", "queue", "timeout",
	    "failback", "attributes", "sync", "sync_filter", "sync_keys", NULL };
	static const char *const attr_keys[] = { "username", "host", "port", NULL };
	static const char *const scopes[] = { [LDAP_SCOPE_BASE] = "base",
	    [LDAP_SCOPE_ONELEVEL] = "one", [LDAP_SCOPE_SUBTREE] = "sub" };
	struct ldap_cfg *l = &c->directory.ldap;
	const config_setting_t *g, *attrs;
	const char *P = "directory.ldap", *A = "directory.ldap.attributes";

	if (get_group(ld, dir, "directory", "ldap", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (check_keys(ld, g, P, keys) < 0 ||
	    get_str(ld, g, P, "uri", &l->uri) < 0 ||
	    get_str(ld, g, P, "base", &l->base) < 0 ||
	    get_enum(ld, g, P, "scope", scopes, nitems(scopes), &l->scope) < 0 ||
	    get_str(ld, g, P, "filter", &l->filter) < 0 ||
	    get_str(ld, g, P, "bind_dn", &l->bind_dn) < 0 ||
	    get_str(ld, g, P, "bind_password", &l->bind_password) < 0 ||
	    get_path(ld, g, P, "bind_password_file", &l->bind_password_file) < 0 ||
	    get_str(ld, g, P, "sasl_mech", &l->sasl_mech) < 0 ||
	    get_bool(ld, g, P, "starttls", &l->starttls) < 0 ||
	    get_path(ld, g, P, "ca_file", &l->ca_file) < 0 ||
	    get_uint(ld, g, P, "pool", 1, 64, &l->pool) < 0 ||
	    get_uint(ld, g, P, "auth_pool", 1, 64, &l->auth_pool) < 0 ||
	    get_uint(ld, g, P, "queue", 1, 1000000, &l->queue) < 0 ||
	    get_uint(ld, g, P, "timeout", 1, 300, &l->timeout) < 0 ||
	    get_uint(ld, g, P, "failback", 1, 86400, &l->failback) < 0 ||
	    get_bool(ld, g, P, "sync", &l->sync) < 0 ||
	    get_str(ld, g, P, "sync_filter", &l->sync_filter) < 0 ||
	    get_str(ld, g, P, "sync_keys", &l->sync_keys) < 0 ||
	    get_group(ld, g, P, "attributes", &attrs) < 0)
		return -1;
	if (attrs != NULL && (check_keys(ld, attrs, A, attr_keys) < 0 ||
	    get_str(ld, attrs, A, "username", &l->attr_username) < 0 ||
	    get_host_attrs(ld, attrs, l) < 0 ||
	    get_str(ld, attrs, A, "port", &l->attr_port) < 0))
		return -1;
	if (l->uri[0] == '\0')
		return fail(ld, config_setting_get_member(g, "uri"), "directory.ldap.uri",
		    "must name at least one LDAP URI");
	if (check_ldap_template(ld, g, "filter", l->filter, false) < 0 ||
	    check_ldap_template(ld, g, "base", l->base, true) < 0)
		return -1;
	if (check_sync(ld, g, l) < 0)
		return -1;
	if (check_attr_name(ld, attrs, "username", l->attr_username) < 0 ||
	    check_attr_name(ld, attrs, "port", l->attr_port) < 0)
		return -1;
	for (size_t i = 0; i < l->nattr_hosts; i++)
		if (check_attr_name(ld, attrs, "host", l->attr_hosts[i]) < 0)
			return -1;
	if (l->bind_password[0] != '\0' && l->bind_password_file[0] != '\0')
		return fail(ld, g, P, "set bind_password or bind_password_file, not both");
	if (l->bind_dn[0] != '\0' && !dn_valid(l->bind_dn))
		return fail(ld, config_setting_get_member(g, "bind_dn"),
		    "directory.ldap.bind_dn", "\"%s\" is not a valid DN", l->bind_dn);
	return 0;
}

static const char *const sql_tls_names[] = {
	[SQL_TLS_NONE] = "none", [SQL_TLS_PREFER] = "prefer",
	[SQL_TLS_REQUIRE] = "require", [SQL_TLS_VERIFY] = "verify",
};
_Static_assert(nitems(sql_tls_names) == SQL_TLS_COUNT, "sql_tls_names");

const char *
sql_tls_name(enum sql_tls tls)
{
	return (size_t)tls < nitems(sql_tls_names) ? sql_tls_names[tls] : "?";
}

/*
 * directory.sql: hosts and query are checked as the back-end reads them
 * (a query that does not use $1, or splices a second parameter, is
 * refused here rather than on the first login).  ca_file goes with
 * tls = "verify" and only with it: "require" would check the chain with
 * it in libpq and not in libmariadb.  The file itself is opened when the
 * directory is prepared, as the user who reads it then.
 */
static int
load_sql(struct loader *ld, const config_setting_t *dir, struct config *c)
{
	static const char *const keys[] = { "driver", "hosts", "database", "user",
	    "password", "password_file", "query", "pool", "queue", "timeout",
	    "failback", "tls", "ca_file", NULL };
	static const char *const drivers[] = {
	    [SQL_DRIVER_POSTGRESQL] = "postgresql", [SQL_DRIVER_MYSQL] = "mysql" };
	struct sql_host hosts[SQL_HOSTS_MAX];
	char *query;
	const config_setting_t *g;
	const char *P = "directory.sql", *why;
	int driver = (int)c->directory.sql.driver;
	int tls = (int)c->directory.sql.tls;
	unsigned nparams;
	size_t n;

	if (get_group(ld, dir, "directory", "sql", &g) < 0)
		return -1;
	if (g != NULL && (check_keys(ld, g, P, keys) < 0 ||
	    get_enum(ld, g, P, "driver", drivers, nitems(drivers), &driver) < 0 ||
	    get_str(ld, g, P, "hosts", &c->directory.sql.hosts) < 0 ||
	    get_str(ld, g, P, "database", &c->directory.sql.database) < 0 ||
	    get_str(ld, g, P, "user", &c->directory.sql.user) < 0 ||
	    get_str(ld, g, P, "password", &c->directory.sql.password) < 0 ||
	    get_path(ld, g, P, "password_file", &c->directory.sql.password_file) < 0 ||
	    get_str(ld, g, P, "query", &c->directory.sql.query) < 0 ||
	    get_uint(ld, g, P, "pool", 1, 64, &c->directory.sql.pool) < 0 ||
	    get_uint(ld, g, P, "queue", 1, 1000000, &c->directory.sql.queue) < 0 ||
	    get_uint(ld, g, P, "timeout", 1, 300, &c->directory.sql.timeout) < 0 ||
	    get_uint(ld, g, P, "failback", 0, 86400, &c->directory.sql.failback) < 0 ||
	    get_enum(ld, g, P, "tls", sql_tls_names, nitems(sql_tls_names),
	    &tls) < 0 ||
	    get_path(ld, g, P, "ca_file", &c->directory.sql.ca_file) < 0))
		return -1;
	c->directory.sql.driver = (enum sql_driver)driver;
	c->directory.sql.tls = (enum sql_tls)tls;
	if (!config_dir_uses(c, DIR_TYPE_SQL))
		return 0;
	if (g == NULL)
		return fail(ld, config_setting_get_member(dir, "type"), P,
		    "directory.type names \"sql\": set directory.sql { hosts; "
		    "query; ... }");
	if (sql_hosts_parse(c->directory.sql.hosts, c->directory.sql.driver,
	    hosts, nitems(hosts), &n, &why) < 0)
		return fail(ld, config_setting_get_member(g, "hosts") != NULL ?
		    config_setting_get_member(g, "hosts") : g,
		    "directory.sql.hosts", "%s", why);
	query = xmalloc(SQL_QUERY_MAX);
	if (sql_query_translate(c->directory.sql.query, c->directory.sql.driver,
	    query, SQL_QUERY_MAX, &nparams, &why) < 0) {
		free(query);
		return fail(ld, config_setting_get_member(g, "query") != NULL ?
		    config_setting_get_member(g, "query") : g,
		    "directory.sql.query", "%s", why);
	}
	free(query);
	if (c->directory.sql.password[0] != '\0' &&
	    c->directory.sql.password_file[0] != '\0')
		return fail(ld, g, P, "set password or password_file, not both");
	if (c->directory.sql.tls == SQL_TLS_VERIFY &&
	    c->directory.sql.ca_file[0] == '\0')
		return fail(ld, config_setting_get_member(g, "tls"),
		    "directory.sql.ca_file", "tls = \"verify\" needs the CA "
		    "that issued the database's certificate");
	if (c->directory.sql.tls != SQL_TLS_VERIFY &&
	    c->directory.sql.ca_file[0] != '\0')
		return fail(ld, config_setting_get_member(g, "ca_file"),
		    "directory.sql.ca_file", "is used only with tls = \"verify\" "
		    "(tls is \"%s\")", sql_tls_name(c->directory.sql.tls));
	return 0;
}

static const char *const dir_type_names[] = { [DIR_TYPE_LDAP] = "ldap",
    [DIR_TYPE_FILE] = "file", [DIR_TYPE_REGEX] = "regex",
    [DIR_TYPE_HTTP] = "http", [DIR_TYPE_SQL] = "sql" };
_Static_assert(nitems(dir_type_names) == DIR_TYPE_COUNT, "dir_type_names");

bool
config_dir_uses(const struct config *c, enum dir_type type)
{
	for (size_t i = 0; i < c->directory.ntypes; i++)
		if (c->directory.type[i] == type)
			return true;
	return false;
}

const char *
dir_type_name(enum dir_type type)
{
	return dir_type_names[type];
}

/* One name of directory.type (a string, or an element of its list). */
static int
dir_type_parse(struct loader *ld, const config_setting_t *s, enum dir_type *out)
{
	const char *v;
	char choices[256];

	if (config_setting_type(s) != CONFIG_TYPE_STRING)
		return fail(ld, s, "directory.type", "must be a string or a list "
		    "of strings");
	v = config_setting_get_string(s);
	for (size_t i = 0; i < nitems(dir_type_names); i++) {
		if (strcmp(v, dir_type_names[i]) == 0) {
			*out = (enum dir_type)i;
			return 0;
		}
	}
	return fail(ld, s, "directory.type", "unknown value \"%s\" (%s)", v,
	    enum_choices(dir_type_names, nitems(dir_type_names), choices,
	    sizeof(choices)));
}

/* directory.type = "ldap" or a chain: [ "file", "regex", "ldap" ] */
static int
load_dir_types(struct loader *ld, const config_setting_t *g, struct config *c)
{
	const config_setting_t *s = config_setting_get_member(g, "type");
	int n;

	if (s == NULL)
		return 0;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		c->directory.ntypes = 1;
		return dir_type_parse(ld, s, &c->directory.type[0]);
	}
	if (!config_setting_is_aggregate(s) ||
	    config_setting_type(s) == CONFIG_TYPE_GROUP)
		return fail(ld, s, "directory.type", "must be a string or a list "
		    "of strings");
	if ((n = config_setting_length(s)) == 0)
		return fail(ld, s, "directory.type", "names no back-end");
	if (n > DIR_CHAIN_MAX)
		return fail(ld, s, "directory.type", "more than %d back-ends",
		    DIR_CHAIN_MAX);
	for (int i = 0; i < n; i++) {
		enum dir_type t;

		if (dir_type_parse(ld, config_setting_get_elem(s, (unsigned)i), &t) < 0)
			return -1;
		for (int k = 0; k < i; k++)
			if (c->directory.type[k] == t)
				return fail(ld, s, "directory.type", "\"%s\" listed "
				    "twice", dir_type_names[t]);
		c->directory.type[i] = t;
	}
	c->directory.ntypes = (size_t)n;
	return 0;
}

/*
 * directory.port_protocols = [ "imap" ] (or one string): a port that the
 * directory gives applies to these protocols only; the others connect to
 * the same host on their own port (backends[].*_port, backend.*_port).
 * One directory serves every protocol, and a port speaks only one.
 */
static int
load_port_protocols(struct loader *ld, const config_setting_t *g,
    struct config *c)
{
	const config_setting_t *s = config_setting_get_member(g, "port_protocols");
	char choices[128];
	int n;

	if (s == NULL)
		return 0;
	n = config_setting_type(s) == CONFIG_TYPE_STRING ? 1 :
	    config_setting_type(s) == CONFIG_TYPE_ARRAY ||
	    config_setting_type(s) == CONFIG_TYPE_LIST ? config_setting_length(s) : -1;
	if (n < 0)
		return fail(ld, s, "directory.port_protocols", "must be a string "
		    "or a list of strings");
	for (int p = 0; p < PROTO_COUNT; p++)
		c->directory.port_for[p] = false;
	for (int i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_type(s) ==
		    CONFIG_TYPE_STRING ? s : config_setting_get_elem(s, (unsigned)i);
		const char *v = config_setting_get_string(e);
		int p;

		if (v == NULL)
			return fail(ld, e, "directory.port_protocols", "must be a "
			    "string or a list of strings");
		for (p = 0; p < PROTO_COUNT && strcmp(v, proto_names[p]) != 0; p++)
			;
		if (p == PROTO_COUNT)
			return fail(ld, e, "directory.port_protocols", "unknown value "
			    "\"%s\" (%s)", v, enum_choices(proto_names, PROTO_COUNT,
			    choices, sizeof(choices)));
		c->directory.port_for[p] = true;
	}
	return 0;
}

static int
load_directory(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "type", "cache", "ldap", "file",
	    "regex", "http", "sql", "on_move", "host_map", "port_protocols", NULL };
	static const char *const moves[] = { [ON_MOVE_KEEP] = "keep",
	    [ON_MOVE_KICK] = "kick" };
	static const char *const cache_keys[] = { "ttl", "negative_ttl", "entries",
	    "negative_entries", "serve_stale", "stale_max", NULL };
	static const char *const file_keys[] = { "path", NULL };
	static const char *const regex_keys[] = { "path", NULL };
	static const char *const http_keys[] = { "url", "timeout", "queue",
	    "pass_password", NULL };
	const config_setting_t *g, *cache, *file, *regex, *http;
	int move = (int)c->directory.on_move;

	if (get_group(ld, root, "", "directory", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (check_keys(ld, g, "directory", keys) < 0 ||
	    load_dir_types(ld, g, c) < 0 ||
	    load_port_protocols(ld, g, c) < 0 ||
	    get_enum(ld, g, "directory", "on_move", moves, nitems(moves), &move) < 0 ||
	    get_group(ld, g, "directory", "cache", &cache) < 0 ||
	    get_group(ld, g, "directory", "file", &file) < 0 ||
	    get_group(ld, g, "directory", "regex", &regex) < 0 ||
	    get_group(ld, g, "directory", "http", &http) < 0)
		return -1;
	c->directory.on_move = (enum on_move)move;
	if (cache != NULL && (check_keys(ld, cache, "directory.cache", cache_keys) < 0 ||
	    get_uint(ld, cache, "directory.cache", "ttl", 0, 86400 * 7, &c->directory.cache.ttl) < 0 ||
	    get_uint(ld, cache, "directory.cache", "negative_ttl", 0, 86400, &c->directory.cache.negative_ttl) < 0 ||
	    get_uint(ld, cache, "directory.cache", "entries", 0, 100000000, &c->directory.cache.entries) < 0 ||
	    get_uint(ld, cache, "directory.cache", "negative_entries", 0, 100000000, &c->directory.cache.negative_entries) < 0 ||
	    get_bool(ld, cache, "directory.cache", "serve_stale", &c->directory.cache.serve_stale) < 0 ||
	    get_uint(ld, cache, "directory.cache", "stale_max", 0, 86400 * 7, &c->directory.cache.stale_max) < 0))
		return -1;
	if (file != NULL && (check_keys(ld, file, "directory.file", file_keys) < 0 ||
	    get_path(ld, file, "directory.file", "path", &c->directory.file_path) < 0))
		return -1;
	if (regex != NULL && (check_keys(ld, regex, "directory.regex", regex_keys) < 0 ||
	    get_path(ld, regex, "directory.regex", "path", &c->directory.regex_path) < 0))
		return -1;
	if (http != NULL && (check_keys(ld, http, "directory.http", http_keys) < 0 ||
	    get_str(ld, http, "directory.http", "url", &c->directory.http.url) < 0 ||
	    get_uint(ld, http, "directory.http", "timeout", 1, 300, &c->directory.http.timeout) < 0 ||
	    get_uint(ld, http, "directory.http", "queue", 1, 1000000, &c->directory.http.queue) < 0 ||
	    get_bool(ld, http, "directory.http", "pass_password", &c->directory.http.pass_password) < 0))
		return -1;
	if (http != NULL && c->directory.http.url[0] != '\0' &&
	    strncmp(c->directory.http.url, "http://", 7) != 0 &&
	    strncmp(c->directory.http.url, "https://", 8) != 0)
		return fail(ld, config_setting_get_member(http, "url"),
		    "directory.http.url", "must be an http:// or https:// URL");
	if (load_ldap(ld, g, c) < 0 || load_sql(ld, g, c) < 0 ||
	    load_host_map(ld, g, c) < 0)
		return -1;
	if (config_dir_uses(c, DIR_TYPE_FILE) && c->directory.file_path[0] == '\0')
		return fail(ld, file, "directory.file.path", "must name the map file");
	if (config_dir_uses(c, DIR_TYPE_REGEX) && c->directory.regex_path[0] == '\0')
		return fail(ld, regex != NULL ? regex : config_setting_get_member(g,
		    "type"), "directory.regex.path", "must name the regex map file");
	if (config_dir_uses(c, DIR_TYPE_HTTP) && c->directory.http.url[0] == '\0')
		return fail(ld, http != NULL ? http : config_setting_get_member(g,
		    "type"), "directory.http.url", "must name the auth service");
	return 0;
}

static int
load_backend(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "imap_port", "pop3_port",
	    "sieve_port", "tls", "ca_file", "verify", "login", "master_user",
	    "master_password", "master_password_file", NULL };
	static const char *const logins[] = { [BACKEND_LOGIN_PASSTHROUGH] =
	    "passthrough", [BACKEND_LOGIN_MASTER] = "master" };
	char *pwfile;
	int login = (int)c->master.login;
	const config_setting_t *g;
	unsigned imap = c->backend.port[PROTO_IMAP], pop3 = c->backend.port[PROTO_POP3];
	unsigned sieve = c->backend.port[PROTO_SIEVE];
	int tls = (int)c->backend.tls;

	if (get_group(ld, root, "", "backend", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	pwfile = xstrdup("");
	if (check_keys(ld, g, "backend", keys) < 0 ||
	    get_uint(ld, g, "backend", "imap_port", 1, 65535, &imap) < 0 ||
	    get_uint(ld, g, "backend", "pop3_port", 1, 65535, &pop3) < 0 ||
	    get_uint(ld, g, "backend", "sieve_port", 1, 65535, &sieve) < 0 ||
	    get_enum(ld, g, "backend", "tls", tls_mode_names,
	    nitems(tls_mode_names), &tls) < 0 ||
	    get_path(ld, g, "backend", "ca_file", &c->backend.ca_file) < 0 ||
	    get_bool(ld, g, "backend", "verify", &c->backend.verify) < 0 ||
	    get_enum(ld, g, "backend", "login", logins, nitems(logins), &login) < 0 ||
	    get_str(ld, g, "backend", "master_user", &c->master.master_user) < 0 ||
	    get_str(ld, g, "backend", "master_password", &c->master.master_password) < 0 ||
	    get_path(ld, g, "backend", "master_password_file", &pwfile) < 0) {
		free(pwfile);
		return -1;
	}
	c->master.login = (enum backend_login)login;
	if (pwfile[0] != '\0') {
		FILE *fp = privsep_fopen(pwfile);
		char line[512];

		if (fp == NULL) {
			fail(ld, config_setting_get_member(g, "master_password_file"),
			    "backend.master_password_file", "%s: %s", pwfile, strerror(errno));
			free(pwfile);
			return -1;
		}
		if (fgets(line, sizeof(line), fp) == NULL)
			line[0] = '\0';
		fclose(fp);
		line[strcspn(line, "\r\n")] = '\0';
		secret_free(&c->master.master_password);
		c->master.master_password = xstrdup(line);
		explicit_bzero(line, sizeof(line));
	}
	free(pwfile);
	if (c->master.login == BACKEND_LOGIN_MASTER &&
	    (c->master.master_user[0] == '\0' || c->master.master_password[0] == '\0'))
		return fail(ld, config_setting_get_member(g, "login"), "backend.login",
		    "\"master\" needs master_user and master_password");
	if (tls == TLS_MODE_REQUIRED)
		return fail(ld, config_setting_get_member(g, "tls"), "backend.tls",
		    "must be \"none\", \"starttls\" or \"implicit\"");
	c->backend.port[PROTO_IMAP] = (uint16_t)imap;
	c->backend.port[PROTO_POP3] = (uint16_t)pop3;
	c->backend.port[PROTO_SIEVE] = (uint16_t)sieve;
	c->backend.tls = (enum tls_mode)tls;
	return 0;
}

static int
load_auth(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "verify", "failure_delay", NULL };
	static const char *const verifies[] = { [AUTH_VERIFY_NONE] = "none",
	    [AUTH_VERIFY_LDAP_BIND] = "ldap-bind" };
	const config_setting_t *g;
	int v = (int)c->auth.verify;

	if (get_group(ld, root, "", "auth", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (check_keys(ld, g, "auth", keys) < 0 ||
	    get_enum(ld, g, "auth", "verify", verifies, nitems(verifies), &v) < 0 ||
	    get_uint(ld, g, "auth", "failure_delay", 0, 60, &c->auth.failure_delay) < 0)
		return -1;
	c->auth.verify = (enum auth_verify)v;
	if (c->auth.verify == AUTH_VERIFY_LDAP_BIND &&
	    !config_dir_uses(c, DIR_TYPE_LDAP))
		return fail(ld, config_setting_get_member(g, "verify"), "auth.verify",
		    "\"ldap-bind\" needs \"ldap\" in directory.type");
	return 0;
}

static int
load_backends(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "name", "addresses", "imap_port",
	    "pop3_port", "sieve_port", "tls", "verify", "ca_file",
	    "proxy_protocol", "xclient", NULL };
	static const char *const proxies[] = { "none", "v1", "v2" };
	const config_setting_t *list = config_setting_get_member(root, "backends");
	int n;

	if (list == NULL)
		return 0;
	if (config_setting_type(list) != CONFIG_TYPE_LIST)
		return fail(ld, list, "backends", "must be a list ( { ... }, ... )");
	n = config_setting_length(list);
	c->backends = xcalloc((size_t)n + 1, sizeof(*c->backends));
	for (int i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct backend_cfg *b = &c->backends[i];
		char path[32], *addrs = NULL, *save = NULL;
		unsigned imap = 0, pop3 = 0, sieve = 0;
		int tls = TLS_MODE_NONE, proxy = BACKEND_PROXY_NONE;

		snprintf(path, sizeof(path), "backends[%d]", i);
		c->nbackends++;
		b->verify = true;
		b->ca_file = xstrdup("");
		if (config_setting_type(g) != CONFIG_TYPE_GROUP)
			return fail(ld, g, path, "must be a group { ... }");
		if (check_keys(ld, g, path, keys) < 0 ||
		    get_str(ld, g, path, "name", &b->name) < 0 ||
		    get_str(ld, g, path, "addresses", &addrs) < 0 ||
		    get_uint(ld, g, path, "imap_port", 0, 65535, &imap) < 0 ||
		    get_uint(ld, g, path, "pop3_port", 0, 65535, &pop3) < 0 ||
		    get_uint(ld, g, path, "sieve_port", 0, 65535, &sieve) < 0 ||
		    get_enum(ld, g, path, "tls", tls_mode_names,
		    nitems(tls_mode_names), &tls) < 0 ||
		    get_bool(ld, g, path, "verify", &b->verify) < 0 ||
		    get_path(ld, g, path, "ca_file", &b->ca_file) < 0 ||
		    get_enum(ld, g, path, "proxy_protocol", proxies,
		    nitems(proxies), &proxy) < 0 ||
		    get_bool(ld, g, path, "xclient", &b->xclient) < 0) {
			free(addrs);
			return -1;
		}
		if (b->name == NULL || b->name[0] == '\0' || addrs == NULL) {
			free(addrs);
			return fail(ld, g, path, "needs a name and addresses");
		}
		for (char *a = strtok_r(addrs, " \t,", &save); a != NULL;
		    a = strtok_r(NULL, " \t,", &save)) {
			b->addresses = xrealloc(b->addresses,
			    (b->naddresses + 1) * sizeof(*b->addresses));
			b->addresses[b->naddresses++] = xstrdup(a);
		}
		free(addrs);
		if (b->naddresses == 0)
			return fail(ld, g, path, "addresses is empty");
		if (tls == TLS_MODE_REQUIRED)
			return fail(ld, config_setting_get_member(g, "tls"), path,
			    "tls must be \"none\", \"starttls\" or \"implicit\"");
		b->port[PROTO_IMAP] = (uint16_t)imap;
		b->port[PROTO_POP3] = (uint16_t)pop3;
		b->port[PROTO_SIEVE] = (uint16_t)sieve;
		b->tls = (enum tls_mode)tls;
		b->proxy_protocol = (enum backend_proxy)proxy;
		for (int k = 0; k < i; k++)
			if (strcasecmp(c->backends[k].name, b->name) == 0)
				return fail(ld, g, path, "name \"%s\" is already used",
				    b->name);
	}
	return 0;
}

int
cidr_parse(const char *text, struct cidr *out)
{
	char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	unsigned long prefix;
	unsigned max;

	if (strlen(text) >= sizeof(buf))
		return -1;
	memcpy(buf, text, strlen(text) + 1);
	memset(out, 0, sizeof(*out));
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	if (inet_pton(AF_INET, buf, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else
		return -1;
	out->prefix = max;
	if (slash == NULL)
		return 0;
	if (*slash < '0' || *slash > '9')
		return -1;
	prefix = strtoul(slash, &end, 10);
	if (*end != '\0' || prefix > max)
		return -1;
	out->prefix = (unsigned)prefix;
	/* Host bits set ("10.1.2.3/8") are a typo for a wider or narrower block. */
	for (unsigned bit = out->prefix; bit < max; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return -1;
	return 0;
}

static bool
prefix_equal(const unsigned char *a, const unsigned char *b, unsigned bits)
{
	if (memcmp(a, b, bits / 8) != 0)
		return false;
	if (bits % 8 == 0)
		return true;
	return ((a[bits / 8] ^ b[bits / 8]) & (0xff00 >> (bits % 8))) == 0;
}

bool
cidr_match(const struct cidr *list, size_t n, const struct sockaddr *sa)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };
	const unsigned char *a4 = NULL, *a6 = NULL;

	if (sa->sa_family == AF_INET)
		a4 = (const unsigned char *)&((const struct sockaddr_in *)
		    (const void *)sa)->sin_addr;
	else if (sa->sa_family == AF_INET6) {
		a6 = ((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr.s6_addr;
		if (memcmp(a6, mapped, sizeof(mapped)) == 0)
			a4 = a6 + 12;
	} else
		return false;
	for (size_t i = 0; i < n; i++) {
		if (list[i].family == AF_INET && a4 != NULL &&
		    prefix_equal(list[i].addr, a4, list[i].prefix))
			return true;
		if (list[i].family == AF_INET6 && a6 != NULL &&
		    prefix_equal(list[i].addr, a6, list[i].prefix))
			return true;
	}
	return false;
}

/* proxy = { trusted_networks = [ "10.0.0.0/8", ... ]; } */
static int
load_proxy(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "trusted_networks", NULL };
	const char *key = "proxy.trusted_networks";
	const config_setting_t *g, *list;
	int n;

	if (get_group(ld, root, "", "proxy", &g) < 0)
		return -1;
	if (g != NULL && check_keys(ld, g, "proxy", keys) < 0)
		return -1;
	list = g != NULL ? config_setting_get_member(g, "trusted_networks") : NULL;
	if (list != NULL) {
		if (config_setting_type(list) != CONFIG_TYPE_ARRAY &&
		    config_setting_type(list) != CONFIG_TYPE_LIST)
			return fail(ld, list, key, "must be a list of CIDR strings");
		n = config_setting_length(list);
		c->proxy.trusted_networks = xcalloc((size_t)n + 1,
		    sizeof(*c->proxy.trusted_networks));
		for (int i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(list,
			    (unsigned)i);
			const char *v;

			if (config_setting_type(e) != CONFIG_TYPE_STRING)
				return fail(ld, list, key, "must be a list of CIDR strings");
			v = config_setting_get_string(e);
			if (cidr_parse(v, &c->proxy.trusted_networks[i]) < 0)
				return fail(ld, e, key, "\"%s\" is not an address or "
				    "a network (address/prefix, no host bits)", v);
			c->proxy.ntrusted_networks++;
		}
	}
	for (size_t i = 0; i < c->nlisten; i++)
		if (c->listen[i].proxy_protocol && c->proxy.ntrusted_networks == 0)
			return fail(ld, list != NULL ? list : g, key, "listen %s has "
			    "proxy_protocol = true: list the balancers that may "
			    "send PROXY headers", c->listen[i].address);
	return 0;
}

const struct backend_cfg *
config_backend(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (strcasecmp(cfg->backends[i].name, name) == 0)
			return &cfg->backends[i];
	return NULL;
}

/* metrics.listen: a numeric address and port, not one a listener has. */
static int
load_metrics(struct loader *ld, const config_setting_t *root, struct config *c)
{
	static const char *const keys[] = { "listen", NULL };
	const config_setting_t *g, *s;
	struct listen_cfg l = { 0 };
	const char *error;

	if (get_group(ld, root, "", "metrics", &g) < 0)
		return -1;
	if (g == NULL)
		return 0;
	if (check_keys(ld, g, "metrics", keys) < 0 ||
	    get_str(ld, g, "metrics", "listen", &c->metrics.listen) < 0)
		return -1;
	if (c->metrics.listen[0] == '\0')
		return 0;
	s = config_setting_get_member(g, "listen");
	if (parse_listen_address(c->metrics.listen, &l, &error) < 0)
		return fail(ld, s, "metrics.listen", "\"%s\": %s",
		    c->metrics.listen, error);
	for (size_t i = 0; i < c->nlisten; i++)
		if (c->listen[i].addrlen == l.addrlen &&
		    memcmp(&c->listen[i].addr, &l.addr, l.addrlen) == 0)
			return fail(ld, s, "metrics.listen", "\"%s\" is already "
			    "used by listen[%zu]", c->metrics.listen, i);
	c->metrics.addr = l.addr;
	c->metrics.addrlen = l.addrlen;
	return 0;
}

static int
config_build(struct loader *ld, config_t *cf, struct config **config_r)
{
	static const char *const keys[] = { "daemon", "limits", "timeouts", "tls",
	    "listen", "username", "capability", "directory", "backend",
	    "backends", "auth", "proxy", "metrics", "health", NULL };
	const config_setting_t *root = config_root_setting(cf);
	struct config *c = xcalloc(1, sizeof(*c));

	c->path = xstrdup(ld->file);
	config_defaults(c);
	/* The default map, like any relative path, sits by the file. */
	resolve_path(ld->file, &c->directory.file_path);
	if (check_keys(ld, root, "", keys) < 0 ||
	    load_daemon(ld, root, c) < 0 ||
	    load_limits(ld, root, c) < 0 ||
	    load_timeouts(ld, root, c) < 0 ||
	    load_health(ld, root, c) < 0 ||
	    load_tls(ld, root, c) < 0 ||
	    load_listen(ld, root, c) < 0 ||
	    load_username(ld, root, c) < 0 ||
	    load_capability(ld, root, c) < 0 ||
	    load_directory(ld, root, c) < 0 ||
	    load_backend(ld, root, c) < 0 ||
	    load_backends(ld, root, c) < 0 ||
	    load_auth(ld, root, c) < 0 ||
	    load_proxy(ld, root, c) < 0 ||
	    load_metrics(ld, root, c) < 0) {
		config_free(&c);
		return -1;
	}
	if (c->master.login == BACKEND_LOGIN_MASTER &&
	    c->auth.verify == AUTH_VERIFY_NONE) {
		snprintf(ld->err, ld->errlen, "%s:0: backend.login: \"master\" logs "
		    "in without the user's password, so it needs auth.verify = "
		    "\"ldap-bind\"", ld->file);
		config_free(&c);
		return -1;
	}
	if (c->daemon.threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		c->daemon.threads = n > 0 ? (unsigned)n : 1;
	}
	*config_r = c;
	return 0;
}

static int
config_finish(struct loader *ld, config_t *cf, int read_ok,
    struct config **config_r)
{
	int rc;

	if (!read_ok) {
		snprintf(ld->err, ld->errlen, "%s:%d: %s",
		    config_error_file(cf) ? config_error_file(cf) : ld->file,
		    config_error_line(cf), config_error_text(cf) ?
		    config_error_text(cf) : strerror(errno));
		config_destroy(cf);
		return -1;
	}
	rc = config_build(ld, cf, config_r);
	config_destroy(cf);
	return rc;
}

int
config_load(const char *path, struct config **config_r, char *err, size_t errlen)
{
	struct loader ld = { .file = path, .err = err, .errlen = errlen };
	config_t cf;
	FILE *fp;
	int ok;

	if ((fp = privsep_fopen(path)) == NULL) {
		snprintf(err, errlen, "%s:0: %s", path, strerror(errno));
		return -1;
	}
	config_init(&cf);
	ok = config_read(&cf, fp) == CONFIG_TRUE;
	fclose(fp);
	return config_finish(&ld, &cf, ok, config_r);
}

int
config_load_string(const char *name, const char *text, struct config **config_r,
    char *err, size_t errlen)
{
	struct loader ld = { .file = name, .err = err, .errlen = errlen };
	config_t cf;

	config_init(&cf);
	return config_finish(&ld, &cf, config_read_string(&cf, text) == CONFIG_TRUE,
	    config_r);
}

int
config_file_fail(const struct config *cfg, const char *key, const char *path,
    const char *reason, char *err, size_t errlen)
{
	snprintf(err, errlen, "%s: %s: %s: %s", cfg->path, key, path, reason);
	return -1;
}

int
config_file_check(const struct config *cfg, const char *key, const char *path,
    char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO put there by mistake must not hang the check. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return config_file_fail(cfg, key, path, strerror(errno), err, errlen);
	close(fd);
	return 0;
}

void
config_free(struct config **configp)
{
	struct config *c = *configp;

	if (c == NULL)
		return;
	*configp = NULL;
	free(c->path);
	free(c->daemon.user);
	free(c->daemon.pid_file);
	free(c->daemon.control);
	free(c->metrics.listen);
	free(c->daemon.greeting);
	free(c->tls.cert);
	free(c->tls.key);
	free(c->tls.min_version);
	free(c->tls.ciphers);
	for (size_t i = 0; i < c->tls.ncertificates; i++) {
		free(c->tls.certificates[i].cert);
		free(c->tls.certificates[i].key);
	}
	free(c->tls.certificates);
	for (size_t i = 0; i < c->nlisten; i++) {
		free(c->listen[i].address);
		free(c->listen[i].default_domain);
	}
	free(c->listen);
	free(c->username.default_domain);
	for (int p = 0; p < PROTO_COUNT; p++)
		free(c->capability[p]);
	free(c->directory.ldap.uri);
	free(c->directory.ldap.base);
	free(c->directory.ldap.filter);
	free(c->directory.ldap.bind_dn);
	secret_free(&c->directory.ldap.bind_password);
	free(c->directory.ldap.bind_password_file);
	free(c->directory.ldap.sasl_mech);
	free(c->directory.ldap.ca_file);
	free(c->directory.ldap.attr_username);
	free(c->directory.ldap.attr_host);
	for (size_t i = 0; i < c->directory.ldap.nattr_hosts; i++)
		free(c->directory.ldap.attr_hosts[i]);
	free(c->directory.ldap.attr_hosts);
	host_map_free(&c->directory.host_map);
	free(c->directory.ldap.attr_port);
	free(c->directory.ldap.sync_filter);
	free(c->directory.ldap.sync_keys);
	free(c->directory.file_path);
	free(c->directory.regex_path);
	free(c->directory.http.url);
	free(c->directory.sql.hosts);
	free(c->directory.sql.database);
	free(c->directory.sql.user);
	secret_free(&c->directory.sql.password);
	free(c->directory.sql.password_file);
	free(c->directory.sql.query);
	free(c->directory.sql.ca_file);
	free(c->backend.ca_file);
	for (size_t i = 0; i < c->nbackends; i++) {
		struct backend_cfg *b = &c->backends[i];

		free(b->name);
		for (size_t k = 0; k < b->naddresses; k++)
			free(b->addresses[k]);
		free(b->addresses);
		free(b->ca_file);
	}
	free(c->backends);
	free(c->proxy.trusted_networks);
	free(c->master.master_user);
	secret_free(&c->master.master_password);
	free(c);
}
