/* Unit tests for configuration loading and validation (src/config.h). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <ldap.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "helpers.h"
#include "directory.h"
#include "directory/sql.h"
#include "tls.h"
#include "util.h"

#define NAME	"test.conf"

/* The documented contract: every key, with the documented values. */
static const char contract[] =
    "daemon    = { threads = 0; user = \"\"; pid_file = \"\"; log_level = \"info\"; log_format = \"text\"; drain = 30; };\n"
    "limits    = { connections = 0; per_ip = 0; line_length = 8192; auth_failures = 3; bad_commands = 10; };\n"
    "timeouts  = { login = 60; idle = 1800; connect = 10; lookup = 5; };\n"
    "tls       = { cert = \"\"; key = \"\"; min_version = \"TLSv1.2\"; ciphers = \"\"; };\n"
    "listen    = ( { protocol = \"imap\"; address = \"127.0.0.1:143\"; tls = \"none\"; }, { protocol = \"pop3\"; address = \"127.0.0.1:110\"; tls = \"starttls\"; } );\n"
    "username  = { lower_case = true; domain_delimiter = \"@\"; default_domain = \"\"; strip_domain = false; };\n"
    "capability = { imap = \"\"; pop3 = \"\"; };\n"
    "directory = { type = \"file\"; cache = { ttl = 60; negative_ttl = 10; entries = 100000; serve_stale = true; };\n"
    "  ldap  = { uri = \"ldap://127.0.0.1/\"; base = \"dc=example,dc=net\"; scope = \"sub\"; filter = \"(uid=%u)\"; bind_dn = \"\"; bind_password = \"\"; bind_password_file = \"\"; sasl_mech = \"\"; starttls = false; ca_file = \"\"; pool = 4; timeout = 5; attributes = { username = \"username\"; host = \"mailhost\"; port = \"port\"; }; };\n"
    "  file  = { path = \"config/popmap\"; }; };\n"
    "backend = { imap_port = 143; pop3_port = 110; tls = \"none\"; ca_file = \"\"; verify = true; };\n"
    "metrics = { listen = \"\"; };\n";

static struct config *
load_ok(const char *text)
{
	struct config *cfg = NULL;
	char err[512] = "";

	if (config_load_string(NAME, text, &cfg, err, sizeof(err)) != 0)
		ck_abort_msg("config rejected: %s", err);
	ck_assert_ptr_nonnull(cfg);
	return cfg;
}

static void
config_free_ok(const char *text)
{
	struct config *c = load_ok(text);

	config_free(&c);
}

/* Load must fail; returns the message (static). */
static const char *
load_bad(const char *text)
{
	static char err[512];
	struct config *cfg = NULL;

	memset(err, 0, sizeof(err));
	ck_assert_msg(config_load_string(NAME, text, &cfg, err, sizeof(err)) == -1,
	    "config accepted:\n%s", text);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_gt(strlen(err), 0);
	return err;
}

#define ASSERT_BAD(text, expected) do {					\
	const char *e_ = load_bad(text);				\
	ck_assert_str_eq(e_, (expected));				\
} while (0)

#define ASSERT_BAD_CONTAINS(text, needle) do {				\
	const char *e_ = load_bad(text);				\
	ck_assert_msg(strstr(e_, (needle)) != NULL,			\
	    "error \"%s\" lacks \"%s\"", e_, (needle));			\
} while (0)

/* A relative path as a config named NAME (in the working directory) has it. */
static const char *
in_cwd(const char *rel)
{
	static char out[4200];
	char cwd[4096];

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	snprintf(out, sizeof(out), "%s/%s", cwd, rel);
	return out;
}

static unsigned
sa_port(const struct listen_cfg *l)
{
	if (l->addr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)&l->addr)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)&l->addr)->sin6_port);
}

/* Valid configurations. */

START_TEST(test_empty_config_defaults)
{
	struct config *c = load_ok("");

	ck_assert_str_eq(c->path, NAME);
	ck_assert_uint_gt(c->daemon.threads, 0);
	ck_assert_str_eq(c->daemon.user, "");
	ck_assert_str_eq(c->daemon.pid_file, "");
	ck_assert_int_eq(c->daemon.log_level, LOG_LVL_INFO);
	ck_assert(!c->daemon.log_json);
	ck_assert_uint_eq(c->daemon.drain, 30);
	ck_assert_str_eq(c->daemon.greeting, "ready.");

	ck_assert_uint_eq(c->limits.connections, 0);
	ck_assert_uint_eq(c->limits.per_ip, 0);
	ck_assert_uint_eq(c->limits.line_length, 65536);
	ck_assert_uint_eq(c->limits.auth_failures, 3);
	ck_assert_uint_eq(c->limits.bad_commands, 10);
	ck_assert_uint_eq(c->limits.per_user, 0);
	ck_assert(c->limits.throttle);
	ck_assert_uint_eq(c->limits.throttle_entries, 100000);
	ck_assert_uint_eq(c->limits.throttle_max, 30);
	ck_assert_uint_eq(c->limits.throttle_window, 300);

	ck_assert(c->health.passive);
	ck_assert(c->health.active);
	ck_assert_uint_eq(c->health.failures, 3);
	ck_assert_uint_eq(c->health.down_time, 30);
	ck_assert_uint_eq(c->health.interval, 10);
	ck_assert_uint_eq(c->health.timeout, 5);
	ck_assert_uint_eq(c->health.entries, 1024);
	ck_assert_uint_eq(c->health.probes, 16);

	ck_assert_uint_eq(c->timeouts.login, 60);
	ck_assert_uint_eq(c->timeouts.idle, 1800);
	ck_assert_uint_eq(c->timeouts.connect, 10);
	ck_assert_uint_eq(c->timeouts.lookup, 5);

	ck_assert_str_eq(c->tls.cert, "");
	ck_assert_str_eq(c->tls.key, "");
	ck_assert_str_eq(c->tls.min_version, "TLSv1.2");
	ck_assert_str_eq(c->tls.ciphers, "");

	/* Default listeners: IMAP 143 and POP3 110, plaintext. */
	ck_assert_uint_eq(c->nlisten, 2);
	ck_assert_int_eq(c->listen[0].proto, PROTO_IMAP);
	ck_assert_int_eq(c->listen[0].tls, TLS_MODE_NONE);
	ck_assert_uint_eq(sa_port(&c->listen[0]), 143);
	ck_assert_int_eq(c->listen[1].proto, PROTO_POP3);
	ck_assert_int_eq(c->listen[1].tls, TLS_MODE_NONE);
	ck_assert_uint_eq(sa_port(&c->listen[1]), 110);

	ck_assert(c->username.lower_case);
	ck_assert_int_eq(c->username.delimiter, '@');
	ck_assert_str_eq(c->username.default_domain, "");
	ck_assert(!c->username.strip_domain);

	ck_assert_str_eq(c->capability[PROTO_IMAP], "");
	ck_assert_str_eq(c->capability[PROTO_POP3], "");

	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_LDAP);
	ck_assert_uint_eq(c->directory.cache.ttl, 60);
	ck_assert_uint_eq(c->directory.cache.negative_ttl, 10);
	ck_assert_uint_eq(c->directory.cache.entries, 100000);
	ck_assert(c->directory.cache.serve_stale);
	ck_assert_uint_eq(c->directory.cache.stale_max, 3600);
	ck_assert_str_eq(c->directory.ldap.uri, "ldap://127.0.0.1/");
	ck_assert_int_eq(c->directory.ldap.scope, LDAP_SCOPE_SUBTREE);
	ck_assert_int_eq(c->directory.ldap.filter[0], '(');
	ck_assert_str_eq(c->directory.ldap.bind_dn, "");
	ck_assert_str_eq(c->directory.ldap.bind_password, "");
	ck_assert_str_eq(c->directory.ldap.bind_password_file, "");
	ck_assert_str_eq(c->directory.ldap.sasl_mech, "");
	ck_assert(!c->directory.ldap.starttls);
	ck_assert_str_eq(c->directory.ldap.ca_file, "");
	ck_assert_uint_eq(c->directory.ldap.pool, 4);
	ck_assert_uint_eq(c->directory.ldap.timeout, 5);
	ck_assert_str_eq(c->directory.ldap.attr_username, "username");
	ck_assert_str_eq(c->directory.ldap.attr_host, "mailhost");
	ck_assert_str_eq(c->directory.ldap.attr_port, "port");
	/* The default map sits next to the configuration file. */
	ck_assert_str_eq(c->directory.file_path, in_cwd("popmap"));

	ck_assert_uint_eq(c->backend.port[PROTO_IMAP], 143);
	ck_assert_uint_eq(c->backend.port[PROTO_POP3], 110);
	ck_assert_int_eq(c->backend.tls, TLS_MODE_NONE);
	ck_assert_str_eq(c->backend.ca_file, "");
	ck_assert(c->backend.verify);
	config_free(&c);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_minimal_config)
{
	struct config *c = load_ok(
	    "# minimal\n"
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\"; } );\n"
	    "directory = { type = \"file\"; file = { path = \"/etc/postern/popmap\"; }; };\n");

	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_str_eq(c->listen[0].address, "127.0.0.1:1143");
	ck_assert_int_eq(c->listen[0].proto, PROTO_IMAP);
	ck_assert_int_eq(c->listen[0].tls, TLS_MODE_NONE);	/* default */
	ck_assert_int_eq(c->listen[0].addr.ss_family, AF_INET);
	ck_assert_uint_eq(c->listen[0].addrlen, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(sa_port(&c->listen[0]), 1143);
	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_FILE);
	ck_assert_str_eq(c->directory.file_path, "/etc/postern/popmap");
	ck_assert_uint_gt(c->daemon.threads, 0);
	config_free(&c);
}
END_TEST

START_TEST(test_contract_accepted)
{
	struct config *c = load_ok(contract);

	ck_assert_uint_gt(c->daemon.threads, 0);	/* 0 = one per CPU */
	ck_assert_int_eq(c->daemon.log_level, LOG_LVL_INFO);
	ck_assert(!c->daemon.log_json);
	ck_assert_uint_eq(c->limits.line_length, 8192);
	ck_assert_uint_eq(c->nlisten, 2);
	ck_assert_int_eq(c->listen[1].proto, PROTO_POP3);
	ck_assert_int_eq(c->listen[1].tls, TLS_MODE_STARTTLS);
	ck_assert_str_eq(c->listen[1].address, "127.0.0.1:110");
	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_FILE);
	ck_assert_str_eq(c->directory.ldap.base, "dc=example,dc=net");
	ck_assert_str_eq(c->directory.ldap.filter, "(uid=%u)");
	ck_assert_str_eq(c->directory.file_path, in_cwd("config/popmap"));
	config_free(&c);
}
END_TEST

START_TEST(test_every_key_applied)
{
	/* Every key with a non-default value: each must land in the struct. */
	struct config *c = load_ok(
	    "daemon = { threads = 3; user = \"postern\"; pid_file = \"/run/p.pid\";\n"
	    "  log_level = \"debug\"; log_format = \"json\"; drain = 7; };\n"
	    "limits = { connections = 1000; per_ip = 20; line_length = 4096;\n"
	    "  auth_failures = 5; bad_commands = 2; per_user = 4; throttle = false;\n"
	    "  throttle_entries = 5000; throttle_max = 60; throttle_window = 90; };\n"
	    "timeouts = { login = 30; idle = 600; connect = 3; lookup = 2; };\n"
	    "tls = { cert = \"/c.pem\"; key = \"/k.pem\"; min_version = \"TLSv1.3\";\n"
	    "  ciphers = \"HIGH\"; };\n"
	    "listen = ( { protocol = \"pop3\"; address = \"[::1]:1110\"; tls = \"starttls\"; },\n"
	    "  { protocol = \"imap\"; address = \"*:1143\"; tls = \"none\"; } );\n"
	    "username = { lower_case = false; domain_delimiter = \"%\";\n"
	    "  default_domain = \"example.org\"; strip_domain = true; };\n"
	    "capability = { imap = \"IMAP4rev1 ID\"; pop3 = \"USER\"; };\n"
	    "directory = { type = \"ldap\";\n"
	    "  cache = { ttl = 120; negative_ttl = 0; entries = 0; serve_stale = false;\n"
	    "    stale_max = 0; };\n"
	    "  ldap = { uri = \"ldap://a/ ldap://b/\"; base = \"o=x\"; scope = \"one\";\n"
	    "    filter = \"(mail=%u)\"; bind_dn = \"cn=p\"; bind_password = \"\";\n"
	    "    bind_password_file = \"/pw\"; sasl_mech = \"EXTERNAL\"; starttls = true;\n"
	    "    ca_file = \"/ca.pem\"; pool = 8; timeout = 9;\n"
	    "    attributes = { username = \"uid2\"; host = \"mh\"; port = \"pt\"; }; };\n"
	    "  file = { path = \"/m\"; }; };\n"
	    "backend = { imap_port = 1143; pop3_port = 1110; tls = \"none\";\n"
	    "  ca_file = \"/bca.pem\"; verify = false; };\n");

	ck_assert_uint_eq(c->daemon.threads, 3);
	ck_assert_str_eq(c->daemon.user, "postern");
	ck_assert_str_eq(c->daemon.pid_file, "/run/p.pid");
	ck_assert_int_eq(c->daemon.log_level, LOG_LVL_DEBUG);
	ck_assert(c->daemon.log_json);
	ck_assert_uint_eq(c->daemon.drain, 7);
	ck_assert_uint_eq(c->limits.connections, 1000);
	ck_assert_uint_eq(c->limits.per_ip, 20);
	ck_assert_uint_eq(c->limits.line_length, 4096);
	ck_assert_uint_eq(c->limits.auth_failures, 5);
	ck_assert_uint_eq(c->limits.bad_commands, 2);
	ck_assert_uint_eq(c->limits.per_user, 4);
	ck_assert(!c->limits.throttle);
	ck_assert_uint_eq(c->limits.throttle_entries, 5000);
	ck_assert_uint_eq(c->limits.throttle_max, 60);
	ck_assert_uint_eq(c->limits.throttle_window, 90);
	ck_assert_uint_eq(c->timeouts.login, 30);
	ck_assert_uint_eq(c->timeouts.idle, 600);
	ck_assert_uint_eq(c->timeouts.connect, 3);
	ck_assert_uint_eq(c->timeouts.lookup, 2);
	ck_assert_str_eq(c->tls.cert, "/c.pem");
	ck_assert_str_eq(c->tls.key, "/k.pem");
	ck_assert_str_eq(c->tls.min_version, "TLSv1.3");
	ck_assert_str_eq(c->tls.ciphers, "HIGH");
	ck_assert_uint_eq(c->nlisten, 2);
	ck_assert_int_eq(c->listen[0].proto, PROTO_POP3);
	ck_assert_int_eq(c->listen[0].tls, TLS_MODE_STARTTLS);
	ck_assert_int_eq(c->listen[0].addr.ss_family, AF_INET6);
	ck_assert_uint_eq(c->listen[0].addrlen, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(sa_port(&c->listen[0]), 1110);
	ck_assert_int_eq(c->listen[1].proto, PROTO_IMAP);
	ck_assert_uint_eq(sa_port(&c->listen[1]), 1143);
	ck_assert(!c->username.lower_case);
	ck_assert_int_eq(c->username.delimiter, '%');
	ck_assert_str_eq(c->username.default_domain, "example.org");
	ck_assert(c->username.strip_domain);
	ck_assert_str_eq(c->capability[PROTO_IMAP], "IMAP4rev1 ID");
	ck_assert_str_eq(c->capability[PROTO_POP3], "USER");
	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_LDAP);
	ck_assert_uint_eq(c->directory.cache.ttl, 120);
	ck_assert_uint_eq(c->directory.cache.negative_ttl, 0);
	ck_assert_uint_eq(c->directory.cache.entries, 0);
	ck_assert(!c->directory.cache.serve_stale);
	ck_assert_uint_eq(c->directory.cache.stale_max, 0);
	ck_assert_str_eq(c->directory.ldap.uri, "ldap://a/ ldap://b/");
	ck_assert_str_eq(c->directory.ldap.base, "o=x");
	ck_assert_int_eq(c->directory.ldap.scope, LDAP_SCOPE_ONELEVEL);
	ck_assert_str_eq(c->directory.ldap.filter, "(mail=%u)");
	ck_assert_str_eq(c->directory.ldap.bind_dn, "cn=p");
	ck_assert_str_eq(c->directory.ldap.bind_password_file, "/pw");
	ck_assert_str_eq(c->directory.ldap.sasl_mech, "EXTERNAL");
	ck_assert(c->directory.ldap.starttls);
	ck_assert_str_eq(c->directory.ldap.ca_file, "/ca.pem");
	ck_assert_uint_eq(c->directory.ldap.pool, 8);
	ck_assert_uint_eq(c->directory.ldap.timeout, 9);
	ck_assert_str_eq(c->directory.ldap.attr_username, "uid2");
	ck_assert_str_eq(c->directory.ldap.attr_host, "mh");
	ck_assert_str_eq(c->directory.ldap.attr_port, "pt");
	ck_assert_str_eq(c->directory.file_path, "/m");
	ck_assert_uint_eq(c->backend.port[PROTO_IMAP], 1143);
	ck_assert_uint_eq(c->backend.port[PROTO_POP3], 1110);
	ck_assert_str_eq(c->backend.ca_file, "/bca.pem");
	ck_assert(!c->backend.verify);
	config_free(&c);
}
END_TEST

START_TEST(test_enum_values)
{
	static const struct {
		const char	*name;
		enum log_level	 level;
	} levels[] = {
		{ "error", LOG_LVL_ERROR }, { "warning", LOG_LVL_WARNING },
		{ "info", LOG_LVL_INFO }, { "debug", LOG_LVL_DEBUG },
	};
	static const struct {
		const char	*name;
		int		 scope;
	} scopes[] = {
		{ "base", LDAP_SCOPE_BASE }, { "one", LDAP_SCOPE_ONELEVEL },
		{ "sub", LDAP_SCOPE_SUBTREE },
	};
	char text[256];
	struct config *c;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		snprintf(text, sizeof(text), "daemon = { log_level = \"%s\"; };",
		    levels[i].name);
		c = load_ok(text);
		ck_assert_int_eq(c->daemon.log_level, levels[i].level);
		config_free(&c);
	}
	for (size_t i = 0; i < sizeof(scopes) / sizeof(scopes[0]); i++) {
		snprintf(text, sizeof(text),
		    "directory = { ldap = { scope = \"%s\"; }; };", scopes[i].name);
		c = load_ok(text);
		ck_assert_int_eq(c->directory.ldap.scope, scopes[i].scope);
		config_free(&c);
	}
}
END_TEST

START_TEST(test_range_edges_accepted)
{
	struct config *c = load_ok(
	    "daemon = { threads = 256; drain = 0; };\n"
	    "limits = { line_length = 512; auth_failures = 1; bad_commands = 1000; };\n"
	    "timeouts = { login = 1; idle = 604800; };\n"
	    "backend = { imap_port = 1; pop3_port = 65535; };\n");

	ck_assert_uint_eq(c->daemon.threads, 256);
	ck_assert_uint_eq(c->limits.line_length, 512);
	ck_assert_uint_eq(c->backend.port[PROTO_IMAP], 1);
	ck_assert_uint_eq(c->backend.port[PROTO_POP3], 65535);
	config_free(&c);

	c = load_ok("limits = { line_length = 1048576; };");
	ck_assert_uint_eq(c->limits.line_length, 1048576);
	config_free(&c);
}
END_TEST

START_TEST(test_config_free_null)
{
	struct config *c = NULL;

	config_free(&c);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_names)
{
	ck_assert_str_eq(proto_name(PROTO_IMAP), "imap");
	ck_assert_str_eq(proto_name(PROTO_POP3), "pop3");
	ck_assert_str_eq(tls_mode_name(TLS_MODE_NONE), "none");
	ck_assert_str_eq(tls_mode_name(TLS_MODE_STARTTLS), "starttls");
	ck_assert_str_eq(tls_mode_name(TLS_MODE_REQUIRED), "required");
	ck_assert_str_eq(tls_mode_name(TLS_MODE_IMPLICIT), "implicit");
}
END_TEST

START_TEST(test_load_from_file)
{
	char path[TEST_PATH_MAX];
	char err[512];
	struct config *c = NULL;
	FILE *fp;

	test_file_write(path, "check_config", "daemon = { threads = 2; };\n");
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), 0);
	ck_assert_str_eq(c->path, path);
	ck_assert_uint_eq(c->daemon.threads, 2);
	config_free(&c);

	/* An error names the real file and line. */
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	fputs("daemon = {\n  threads = 2;\n  nope = 1;\n};\n", fp);
	fclose(fp);
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), -1);
	ck_assert_ptr_null(c);
	{
		char want[600];

		snprintf(want, sizeof(want), "%s:3: daemon.nope: unknown key", path);
		ck_assert_str_eq(err, want);
	}
	test_file_remove(path);

	/* A missing file. */
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), -1);
	ck_assert_ptr_null(c);
	ck_assert_msg(strncmp(err, path, strlen(path)) == 0 &&
	    strncmp(err + strlen(path), ":0: ", 4) == 0, "%s", err);
}
END_TEST

/* Rejected configurations. */

START_TEST(test_unknown_top_level_key)
{
	ASSERT_BAD("daemon = { threads = 1; };\n"
	    "limits = { };\n"
	    "bogus = 1;\n",
	    "test.conf:3: bogus: unknown key");
	ASSERT_BAD("\n\n\n\n\nlisten_address = \"x\";\n",
	    "test.conf:6: listen_address: unknown key");
}
END_TEST

START_TEST(test_unknown_nested_key)
{
	ASSERT_BAD("daemon = {\n"
	    "  threads = 1;\n"
	    "  nope = 2;\n"
	    "};\n",
	    "test.conf:3: daemon.nope: unknown key");
	ASSERT_BAD("limits = { line_lenght = 1000; };",
	    "test.conf:1: limits.line_lenght: unknown key");
	ASSERT_BAD("timeouts = { logn = 1; };",
	    "test.conf:1: timeouts.logn: unknown key");
	ASSERT_BAD("tls = { certificate = \"\"; };",
	    "test.conf:1: tls.certificate: unknown key");
	ASSERT_BAD("username = { lowercase = true; };",
	    "test.conf:1: username.lowercase: unknown key");
	ASSERT_BAD("capability = { smtp = \"\"; };",
	    "test.conf:1: capability.smtp: unknown key");
	ASSERT_BAD("directory = { typ = \"file\"; };",
	    "test.conf:1: directory.typ: unknown key");
	ASSERT_BAD("directory = {\n cache = {\n ttl = 1;\n size = 2; }; };",
	    "test.conf:4: directory.cache.size: unknown key");
	ASSERT_BAD("directory = { ldap = { url = \"ldap://x/\"; }; };",
	    "test.conf:1: directory.ldap.url: unknown key");
	ASSERT_BAD("directory = { ldap = { attributes = { mail = \"m\"; }; }; };",
	    "test.conf:1: directory.ldap.attributes.mail: unknown key");
	ASSERT_BAD("directory = { file = { name = \"x\"; }; };",
	    "test.conf:1: directory.file.name: unknown key");
	ASSERT_BAD("backend = { port = 143; };",
	    "test.conf:1: backend.port: unknown key");
	ASSERT_BAD("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:143\"; ssl = \"none\"; } );",
	    "test.conf:1: listen[0].ssl: unknown key");
}
END_TEST

START_TEST(test_wrong_types)
{
	ASSERT_BAD("daemon = { threads = \"4\"; };",
	    "test.conf:1: daemon.threads: must be an integer");
	ASSERT_BAD("daemon = { threads = 4.0; };",
	    "test.conf:1: daemon.threads: must be an integer");
	ASSERT_BAD("daemon = { threads = true; };",
	    "test.conf:1: daemon.threads: must be an integer");
	ASSERT_BAD("limits = {\n line_length = \"8k\"; };",
	    "test.conf:2: limits.line_length: must be an integer");
	ASSERT_BAD("daemon = { user = 5; };",
	    "test.conf:1: daemon.user: must be a string");
	ASSERT_BAD("daemon = { log_level = 3; };",
	    "test.conf:1: daemon.log_level: must be a string");
	ASSERT_BAD("tls = { cert = [\"a\"]; };",
	    "test.conf:1: tls.cert: must be a string");
	ASSERT_BAD("username = { lower_case = 1; };",
	    "test.conf:1: username.lower_case: must be true or false");
	ASSERT_BAD("username = { strip_domain = \"yes\"; };",
	    "test.conf:1: username.strip_domain: must be true or false");
	ASSERT_BAD("directory = { cache = { serve_stale = 0; }; };",
	    "test.conf:1: directory.cache.serve_stale: must be true or false");
	ASSERT_BAD("directory = { ldap = { starttls = \"no\"; }; };",
	    "test.conf:1: directory.ldap.starttls: must be true or false");
	ASSERT_BAD("backend = { verify = \"true\"; };",
	    "test.conf:1: backend.verify: must be true or false");
	ASSERT_BAD("backend = { imap_port = \"143\"; };",
	    "test.conf:1: backend.imap_port: must be an integer");
	ASSERT_BAD("listen = ( { protocol = 1; address = \"127.0.0.1:143\"; } );",
	    "test.conf:1: listen[0].protocol: must be a string");
}
END_TEST

START_TEST(test_group_expected)
{
	ASSERT_BAD("daemon = 5;", "test.conf:1: daemon: must be a group { ... }");
	ASSERT_BAD("\nlimits = ( 1 );",
	    "test.conf:2: limits: must be a group { ... }");
	ASSERT_BAD_CONTAINS("listen = { protocol = \"imap\"; };", "listen: must be a list");
	ASSERT_BAD_CONTAINS("listen = ( \"127.0.0.1:143\" );", "listen[0]: must be a group");
}
END_TEST

START_TEST(test_nested_group_expected_full_key)
{
	/* Nested keys are named in full, like every other error. */
	ASSERT_BAD("directory = { cache = 5; };",
	    "test.conf:1: directory.cache: must be a group { ... }");
	ASSERT_BAD("directory = { ldap = \"ldap://x/\"; };",
	    "test.conf:1: directory.ldap: must be a group { ... }");
	ASSERT_BAD("directory = { file = \"/m\"; };",
	    "test.conf:1: directory.file: must be a group { ... }");
	ASSERT_BAD("directory = { ldap = { attributes = 1; }; };",
	    "test.conf:1: directory.ldap.attributes: must be a group { ... }");
}
END_TEST

START_TEST(test_ldap_attribute_full_key)
{
	ASSERT_BAD("directory = { ldap = { attributes = { host = 5; }; }; };",
	    "test.conf:1: directory.ldap.attributes.host: must be a string or a list of strings");
}
END_TEST

START_TEST(test_out_of_range)
{
	ASSERT_BAD("daemon = { threads = 1000; };",
	    "test.conf:1: daemon.threads: must be between 0 and 256");
	ASSERT_BAD("daemon = { threads = -1; };",
	    "test.conf:1: daemon.threads: must be between 0 and 256");
	/* 64-bit values must not wrap into range. */
	ASSERT_BAD("daemon = { threads = 4294967297L; };",
	    "test.conf:1: daemon.threads: must be between 0 and 256");
	ASSERT_BAD("daemon = { drain = 86401; };",
	    "test.conf:1: daemon.drain: must be between 0 and 86400");
	ASSERT_BAD("limits = { line_length = 100; };",
	    "test.conf:1: limits.line_length: must be between 512 and 1048576");
	ASSERT_BAD("limits = { line_length = 1048577; };",
	    "test.conf:1: limits.line_length: must be between 512 and 1048576");
	ASSERT_BAD("limits = { auth_failures = 0; };",
	    "test.conf:1: limits.auth_failures: must be between 1 and 100");
	ASSERT_BAD("limits = { bad_commands = 0; };",
	    "test.conf:1: limits.bad_commands: must be between 1 and 1000");
	ASSERT_BAD("limits = { per_user = -1; };",
	    "test.conf:1: limits.per_user: must be between 0 and 10000000");
	ASSERT_BAD("limits = { throttle = 1; };",
	    "test.conf:1: limits.throttle: must be true or false");
	ASSERT_BAD("limits = { throttle = \"yes\"; };",
	    "test.conf:1: limits.throttle: must be true or false");
	ASSERT_BAD("limits = { throttle_entries = 15; };",
	    "test.conf:1: limits.throttle_entries: must be between 16 and 10000000");
	ASSERT_BAD("limits = { throttle_max = 0; };",
	    "test.conf:1: limits.throttle_max: must be between 1 and 3600");
	ASSERT_BAD("limits = { throttle_max = 3601; };",
	    "test.conf:1: limits.throttle_max: must be between 1 and 3600");
	ASSERT_BAD("limits = { throttle_window = 0; };",
	    "test.conf:1: limits.throttle_window: must be between 1 and 86400");
	ASSERT_BAD("limits = { throttle_windwo = 10; };",
	    "test.conf:1: limits.throttle_windwo: unknown key");
	ASSERT_BAD("limits = { connections = -5; };",
	    "test.conf:1: limits.connections: must be between 0 and 10000000");
	ASSERT_BAD("timeouts = { login = 0; };",
	    "test.conf:1: timeouts.login: must be between 1 and 86400");
	ASSERT_BAD("timeouts = { idle = 0; };",
	    "test.conf:1: timeouts.idle: must be between 1 and 604800");
	ASSERT_BAD("timeouts = { connect = 3601; };",
	    "test.conf:1: timeouts.connect: must be between 1 and 3600");
	ASSERT_BAD("timeouts = { lookup = 0; };",
	    "test.conf:1: timeouts.lookup: must be between 1 and 3600");
	ASSERT_BAD("directory = { ldap = { pool = 0; }; };",
	    "test.conf:1: directory.ldap.pool: must be between 1 and 64");
	ASSERT_BAD("directory = { ldap = { timeout = 301; }; };",
	    "test.conf:1: directory.ldap.timeout: must be between 1 and 300");
	ASSERT_BAD("directory = { cache = { negative_ttl = 86401; }; };",
	    "test.conf:1: directory.cache.negative_ttl: must be between 0 and 86400");
	ASSERT_BAD("directory = { cache = { stale_max = 604801; }; };",
	    "test.conf:1: directory.cache.stale_max: must be between 0 and 604800");
	ASSERT_BAD("backend = { imap_port = 0; };",
	    "test.conf:1: backend.imap_port: must be between 1 and 65535");
	ASSERT_BAD("backend = { pop3_port = 70000; };",
	    "test.conf:1: backend.pop3_port: must be between 1 and 65535");
}
END_TEST

START_TEST(test_directory_chain)
{
	struct config *c = load_ok("directory = { type = [ \"file\", \"regex\", "
	    "\"ldap\" ]; regex = { path = \"/etc/postern/popmap.re\"; }; };");

	ck_assert_uint_eq(c->directory.ntypes, 3);
	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_FILE);
	ck_assert_int_eq(c->directory.type[1], DIR_TYPE_REGEX);
	ck_assert_int_eq(c->directory.type[2], DIR_TYPE_LDAP);
	ck_assert_str_eq(c->directory.regex_path, "/etc/postern/popmap.re");
	ck_assert(config_dir_uses(c, DIR_TYPE_REGEX));
	config_free(&c);

	/* A string is a chain of one; so is a list of one. */
	c = load_ok("directory = { type = ( \"file\" ); };");
	ck_assert_uint_eq(c->directory.ntypes, 1);
	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_FILE);
	ck_assert(!config_dir_uses(c, DIR_TYPE_LDAP));
	config_free(&c);
	c = load_ok("directory = { type = \"regex\"; regex = { path = \"m\"; }; };");
	ck_assert_uint_eq(c->directory.ntypes, 1);
	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_REGEX);
	config_free(&c);
	/* The default: LDAP alone. */
	c = load_ok("");
	ck_assert_uint_eq(c->directory.ntypes, 1);
	ck_assert_int_eq(c->directory.type[0], DIR_TYPE_LDAP);
	config_free(&c);
}
END_TEST

START_TEST(test_directory_chain_bad)
{
	ASSERT_BAD("directory = { type = [ ]; };",
	    "test.conf:1: directory.type: names no back-end");
	ASSERT_BAD("directory = { type = [ \"file\", \"file\" ]; };",
	    "test.conf:1: directory.type: \"file\" listed twice");
	ASSERT_BAD_CONTAINS("directory = { type = [ \"file\", \"nis\" ]; };",
	    "test.conf:1: directory.type: unknown value \"nis\" (one of: ");
	ASSERT_BAD("directory = { type = ( \"file\", 3 ); };",
	    "test.conf:1: directory.type: must be a string or a list of strings");
	ASSERT_BAD("directory = { type = 3; };",
	    "test.conf:1: directory.type: must be a string or a list of strings");
	ASSERT_BAD("directory = { type = { a = 1; }; };",
	    "test.conf:1: directory.type: must be a string or a list of strings");
	/* Every back-end at most once: more than DIR_CHAIN_MAX is a repeat. */
	ck_assert_int_le(DIR_TYPE_COUNT, DIR_CHAIN_MAX);
	ASSERT_BAD("directory = { type = [ \"file\", \"ldap\", \"regex\", "
	    "\"file\", \"file\", \"file\", \"file\", \"file\", \"file\" ]; };",
	    "test.conf:1: directory.type: more than 8 back-ends");
	ASSERT_BAD("directory = { type = [ \"file\", \"regex\" ]; };",
	    "test.conf:1: directory.regex.path: must name the regex map file");
	ASSERT_BAD("directory = {\n type = \"regex\";\n regex = { path = \"\"; };\n};",
	    "test.conf:3: directory.regex.path: must name the regex map file");
	ASSERT_BAD("directory = { regex = { path = \"m\"; file = \"x\"; }; };",
	    "test.conf:1: directory.regex.file: unknown key");
	ASSERT_BAD("directory = { regex = { path = 1; }; };",
	    "test.conf:1: directory.regex.path: must be a string");
	ASSERT_BAD("directory = { regex = \"m\"; };",
	    "test.conf:1: directory.regex: must be a group { ... }");
	ASSERT_BAD("directory = { type = [ \"file\" ]; };\n"
	    "auth = { verify = \"ldap-bind\"; };",
	    "test.conf:2: auth.verify: \"ldap-bind\" needs \"ldap\" in directory.type");
	config_free_ok("directory = { type = [ \"file\", \"ldap\" ]; };\n"
	    "auth = { verify = \"ldap-bind\"; };");
}
END_TEST

START_TEST(test_directory_http)
{
	struct config *c = load_ok("directory = { type = [ \"file\", \"http\" ];\n"
	    " http = { url = \"http://127.0.0.1:9000/auth\"; timeout = 3; queue = 10;"
	    " pass_password = true; }; };");

	ck_assert_int_eq(c->directory.type[1], DIR_TYPE_HTTP);
	ck_assert_str_eq(c->directory.http.url, "http://127.0.0.1:9000/auth");
	ck_assert_uint_eq(c->directory.http.timeout, 3);
	ck_assert_uint_eq(c->directory.http.queue, 10);
	ck_assert(c->directory.http.pass_password);
	config_free(&c);
	c = load_ok("");
	ck_assert_uint_eq(c->directory.http.timeout, 5);
	ck_assert_uint_eq(c->directory.http.queue, 4096);
	ck_assert(!c->directory.http.pass_password);
	config_free(&c);

	ASSERT_BAD("directory = { type = \"http\"; };",
	    "test.conf:1: directory.http.url: must name the auth service");
	ASSERT_BAD("directory = { http = { url = \"ftp://x/\"; }; };",
	    "test.conf:1: directory.http.url: must be an http:// or https:// URL");
	ASSERT_BAD("directory = { http = { url = \"http://x/\"; timeout = 0; }; };",
	    "test.conf:1: directory.http.timeout: must be between 1 and 300");
	ASSERT_BAD("directory = { http = { url = \"http://x/\"; queue = 0; }; };",
	    "test.conf:1: directory.http.queue: must be between 1 and 1000000");
	ASSERT_BAD("directory = { http = { uri = \"http://x/\"; }; };",
	    "test.conf:1: directory.http.uri: unknown key");
}
END_TEST

START_TEST(test_directory_sql)
{
	struct config *c = load_ok("directory = { type = [ \"file\", \"sql\" ];\n"
	    " sql = { driver = \"mysql\"; hosts = \"db1:3307 db2\"; database = \"mail\";"
	    " user = \"postern\"; password_file = \"/etc/postern/sql.pw\";"
	    " query = \"SELECT storage_ip, NULL, 143 FROM mailboxes WHERE address = $1\";"
	    " pool = 2; queue = 10; timeout = 3; failback = 0; }; };");

	ck_assert_int_eq(c->directory.type[1], DIR_TYPE_SQL);
	ck_assert_int_eq(c->directory.sql.driver, SQL_DRIVER_MYSQL);
	ck_assert_str_eq(c->directory.sql.hosts, "db1:3307 db2");
	ck_assert_str_eq(c->directory.sql.database, "mail");
	ck_assert_str_eq(c->directory.sql.user, "postern");
	ck_assert_str_eq(c->directory.sql.password_file, "/etc/postern/sql.pw");
	ck_assert_uint_eq(c->directory.sql.pool, 2);
	ck_assert_uint_eq(c->directory.sql.queue, 10);
	ck_assert_uint_eq(c->directory.sql.timeout, 3);
	ck_assert_uint_eq(c->directory.sql.failback, 0);
	config_free(&c);
	c = load_ok("");
	ck_assert_int_eq(c->directory.sql.driver, SQL_DRIVER_POSTGRESQL);
	ck_assert_uint_eq(c->directory.sql.pool, 4);
	ck_assert_uint_eq(c->directory.sql.queue, 4096);
	ck_assert_uint_eq(c->directory.sql.timeout, 5);
	ck_assert_uint_eq(c->directory.sql.failback, 60);
	ck_assert_int_eq(c->directory.sql.tls, SQL_TLS_PREFER);
	ck_assert_str_eq(c->directory.sql.ca_file, "");
	config_free(&c);
	c = load_ok("directory = { type = \"sql\"; sql = { hosts = \"db\";"
	    " query = \"SELECT h FROM t WHERE a = $1\"; tls = \"verify\";"
	    " ca_file = \"/etc/postern/db-ca.pem\"; }; };");
	ck_assert_int_eq(c->directory.sql.tls, SQL_TLS_VERIFY);
	ck_assert_str_eq(c->directory.sql.ca_file, "/etc/postern/db-ca.pem");
	config_free(&c);
	{
		static const struct { const char *name; enum sql_tls tls; } t[] = {
			{ "none", SQL_TLS_NONE }, { "prefer", SQL_TLS_PREFER },
			{ "require", SQL_TLS_REQUIRE },
		};
		char text[256];

		for (size_t i = 0; i < nitems(t); i++) {
			snprintf(text, sizeof(text), "directory = { type = \"sql\";"
			    " sql = { driver = \"mysql\"; hosts = \"db\"; query ="
			    " \"SELECT h FROM t WHERE a = $1\"; tls = \"%s\"; }; };",
			    t[i].name);
			c = load_ok(text);
			ck_assert_int_eq(c->directory.sql.tls, t[i].tls);
			ck_assert_str_eq(sql_tls_name(t[i].tls), t[i].name);
			config_free(&c);
		}
	}

#define SQL_Q	" query = \"SELECT h FROM t WHERE a = $1\";"
	ASSERT_BAD("directory = { type = \"sql\"; };",
	    "test.conf:1: directory.sql: directory.type names \"sql\": set "
	    "directory.sql { hosts; query; ... }");
	ASSERT_BAD("directory = { type = \"sql\"; sql = {" SQL_Q " }; };",
	    "test.conf:1: directory.sql.hosts: names no host");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"db:0\";"
	    SQL_Q " }; };", "test.conf:1: directory.sql.hosts: port must be 1..65535");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"a b c d e f g h i\";"
	    SQL_Q " }; };", "test.conf:1: directory.sql.hosts: too many hosts");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"db\"; }; };",
	    "test.conf:1: directory.sql.query: does not use $1 (the login)");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"db\";"
	    " query = \"SELECT h FROM t WHERE a = $1 AND b = $2\"; }; };",
	    "test.conf:1: directory.sql.query: only $1 (the login) is a parameter");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { driver = \"mysql\"; hosts = \"db\";"
	    " query = \"SELECT h FROM t WHERE a = ?\"; }; };",
	    "test.conf:1: directory.sql.query: a ? outside quotes (write the login as $1)");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"db\"; password = \"x\";"
	    " password_file = \"/p\";" SQL_Q " }; };",
	    "test.conf:1: directory.sql: set password or password_file, not both");
	ASSERT_BAD("directory = { sql = { driver = \"oracle\"; }; };",
	    "test.conf:1: directory.sql.driver: unknown value \"oracle\" (one of: "
	    "\"postgresql\", \"mysql\")");
	ASSERT_BAD("directory = { sql = { pool = 0; }; };",
	    "test.conf:1: directory.sql.pool: must be between 1 and 64");
	ASSERT_BAD("directory = { sql = { queue = 0; }; };",
	    "test.conf:1: directory.sql.queue: must be between 1 and 1000000");
	ASSERT_BAD("directory = { sql = { timeout = 301; }; };",
	    "test.conf:1: directory.sql.timeout: must be between 1 and 300");
	ASSERT_BAD("directory = { sql = { failback = 86401; }; };",
	    "test.conf:1: directory.sql.failback: must be between 0 and 86400");
	{
		/* SQL_QUERY_MAX, NUL included, as translated. */
		size_t n = SQL_QUERY_MAX + 256;
		char *text = xmalloc(n), *q = xmalloc(SQL_QUERY_MAX + 1);

		memset(q, ' ', SQL_QUERY_MAX);
		memcpy(q, "SELECT h FROM t WHERE a = $1", 28);
		q[SQL_QUERY_MAX - 1] = '\0';		/* 4095 bytes: fits */
		snprintf(text, n, "directory = { type = \"sql\"; sql = { hosts = "
		    "\"db\"; query = \"%s\"; }; };", q);
		config_free_ok(text);
		q[SQL_QUERY_MAX - 1] = ' ';
		q[SQL_QUERY_MAX] = '\0';		/* 4096 bytes: does not */
		snprintf(text, n, "directory = { type = \"sql\"; sql = { hosts = "
		    "\"db\"; query = \"%s\"; }; };", q);
		ASSERT_BAD(text, "test.conf:1: directory.sql.query: too long");
		free(q);
		free(text);
	}
	ASSERT_BAD("directory = { sql = { host = \"db\"; }; };",
	    "test.conf:1: directory.sql.host: unknown key");
	ASSERT_BAD("directory = { sql = { tls = \"on\"; }; };",
	    "test.conf:1: directory.sql.tls: unknown value \"on\" (one of: "
	    "\"none\", \"prefer\", \"require\", \"verify\")");
	ASSERT_BAD("directory = { sql = { tls = true; }; };",
	    "test.conf:1: directory.sql.tls: must be a string");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"db\";"
	    SQL_Q " tls = \"verify\"; }; };",
	    "test.conf:1: directory.sql.ca_file: tls = \"verify\" needs the CA "
	    "that issued the database's certificate");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"db\";"
	    SQL_Q " tls = \"require\"; ca_file = \"/ca.pem\"; }; };",
	    "test.conf:1: directory.sql.ca_file: is used only with tls = "
	    "\"verify\" (tls is \"require\")");
	ASSERT_BAD("directory = { type = \"sql\"; sql = { hosts = \"db\";"
	    SQL_Q " ca_file = \"/ca.pem\"; }; };",
	    "test.conf:1: directory.sql.ca_file: is used only with tls = "
	    "\"verify\" (tls is \"prefer\")");
#undef SQL_Q
}
END_TEST

START_TEST(test_bad_enum)
{
	ASSERT_BAD("daemon = { log_level = \"verbose\"; };",
	    "test.conf:1: daemon.log_level: unknown value \"verbose\" (one of: "
	    "\"error\", \"warning\", \"info\", \"debug\")");
	ASSERT_BAD_CONTAINS("daemon = { log_format = \"xml\"; };",
	    "test.conf:1: daemon.log_format: unknown value \"xml\" (one of: ");
	ASSERT_BAD_CONTAINS("daemon = { log_level = \"INFO\"; };",
	    "test.conf:1: daemon.log_level: unknown value \"INFO\" (one of: ");
	ASSERT_BAD_CONTAINS("directory = { type = \"nis\"; };",
	    "test.conf:1: directory.type: unknown value \"nis\" (one of: ");
	ASSERT_BAD_CONTAINS("directory = { ldap = { scope = \"subtree\"; }; };",
	    "test.conf:1: directory.ldap.scope: unknown value \"subtree\" (one of: ");
	ASSERT_BAD_CONTAINS("backend = { tls = \"ssl\"; };",
	    "test.conf:1: backend.tls: unknown value \"ssl\" (one of: ");
	ASSERT_BAD_CONTAINS("listen = ( { protocol = \"smtp\"; address = \"127.0.0.1:25\"; } );",
	    "test.conf:1: listen[0].protocol: unknown value \"smtp\" (one of: ");
	ASSERT_BAD_CONTAINS("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:143\"; tls = \"yes\"; } );",
	    "test.conf:1: listen[0].tls: unknown value \"yes\" (one of: ");
}
END_TEST

START_TEST(test_tls_min_version)
{
	ASSERT_BAD_CONTAINS("tls = { min_version = \"TLSv1.1\"; };",
	    "test.conf:1: tls.min_version: ");
	ASSERT_BAD_CONTAINS("tls = { min_version = \"\"; };", "tls.min_version");
}
END_TEST

START_TEST(test_listen_address_without_port)
{
	ASSERT_BAD_CONTAINS(
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1\"; } );",
	    "test.conf:1: listen[0]: address \"127.0.0.1\": needs a port");
	ASSERT_BAD_CONTAINS(
	    "listen = ( { protocol = \"imap\"; address = \"[::1]\"; } );",
	    "listen[0]: address \"[::1]\"");
	ASSERT_BAD_CONTAINS(
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1:\"; } );",
	    "listen[0]: address \"127.0.0.1:\"");
}
END_TEST

START_TEST(test_listen_bad_addresses)
{
	static const char *const bad[] = {
		"localhost:143",	/* numeric only */
		"127.0.0.1:0",
		"127.0.0.1:65536",
		"127.0.0.1:imap",
		"::1:143",		/* IPv6 needs brackets */
		"[::1:143",
		"[::1]143",
		":143",
		"",
		"300.1.1.1:143",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256], want[128];

		snprintf(text, sizeof(text),
		    "listen = (\n { protocol = \"imap\";\n address = \"%s\"; } );",
		    bad[i]);
		snprintf(want, sizeof(want), "test.conf:3: listen[0]: address \"%s\": ",
		    bad[i]);
		ASSERT_BAD_CONTAINS(text, want);
	}
}
END_TEST

START_TEST(test_listen_duplicate)
{
	ASSERT_BAD("listen = (\n"
	    " { protocol = \"imap\"; address = \"127.0.0.1:143\"; },\n"
	    " { protocol = \"pop3\"; address = \"127.0.0.1:110\"; },\n"
	    " { protocol = \"pop3\"; address = \"127.0.0.1:143\"; }\n"
	    ");\n",
	    "test.conf:4: listen[2]: address 127.0.0.1:143 is already used by listen[0]");
	/* The same socket address written differently is a duplicate too. */
	ASSERT_BAD_CONTAINS("listen = (\n"
	    " { protocol = \"imap\"; address = \"[::1]:143\"; },\n"
	    " { protocol = \"imap\"; address = \"[0:0::1]:143\"; }\n"
	    ");\n",
	    "already used by listen[0]");
	/* Same port, different address: fine. */
	struct config *c = load_ok("listen = (\n"
	    " { protocol = \"imap\"; address = \"127.0.0.1:143\"; },\n"
	    " { protocol = \"imap\"; address = \"127.0.0.2:143\"; }\n"
	    ");\n");
	ck_assert_uint_eq(c->nlisten, 2);
	config_free(&c);
}
END_TEST

START_TEST(test_listen_empty_and_incomplete)
{
	ASSERT_BAD("listen = ( );", "test.conf:1: listen: needs at least one listener");
	ASSERT_BAD("listen = [ ];", "test.conf:1: listen: needs at least one listener");
	ASSERT_BAD_CONTAINS("listen = ( { address = \"127.0.0.1:143\"; } );",
	    "test.conf:1: listen[0]: protocol is required");
	ASSERT_BAD_CONTAINS("listen = ( { protocol = \"imap\"; } );",
	    "test.conf:1: listen[0]: address is required");
}
END_TEST

/* TLS modes: accepted where they make sense, refused where they do not. */

START_TEST(test_listen_tls_implicit_accepted)
{
	struct config *c = load_ok("listen = ( { protocol = \"imap\"; "
	    "address = \"127.0.0.1:993\"; tls = \"implicit\"; } );");

	ck_assert_int_eq(c->listen[0].tls, TLS_MODE_IMPLICIT);
	config_free(&c);
}
END_TEST

START_TEST(test_listen_tls_required_accepted)
{
	struct config *c = load_ok("listen = ( { protocol = \"pop3\"; "
	    "address = \"127.0.0.1:110\"; tls = \"required\"; } );");

	ck_assert_int_eq(c->listen[0].tls, TLS_MODE_REQUIRED);
	config_free(&c);
}
END_TEST

START_TEST(test_backend_tls_starttls_accepted)
{
	struct config *c = load_ok("backend = { tls = \"starttls\"; };");

	ck_assert_int_eq(c->backend.tls, TLS_MODE_STARTTLS);
	config_free(&c);
}
END_TEST

START_TEST(test_backend_tls_required_refused)
{
	ASSERT_BAD("backend = {\n tls = \"required\"; };",
	    "test.conf:2: backend.tls: must be \"none\", \"starttls\" or \"implicit\"");
}
END_TEST

START_TEST(test_listen_starttls_accepted)
{
	struct config *c = load_ok("listen = ( { protocol = \"imap\"; "
	    "address = \"127.0.0.1:143\"; tls = \"starttls\"; } );");

	ck_assert_int_eq(c->listen[0].tls, TLS_MODE_STARTTLS);
	config_free(&c);
}
END_TEST

START_TEST(test_username_rules)
{
	static const char *const bad_delims[] = { "@@", "", " ", "\t", "\xc3\xa4", "\x7f" };

	for (size_t i = 0; i < sizeof(bad_delims) / sizeof(bad_delims[0]); i++) {
		char text[128];

		snprintf(text, sizeof(text),
		    "username = {\n domain_delimiter = \"%s\"; };", bad_delims[i]);
		ASSERT_BAD(text, "test.conf:2: username.domain_delimiter: "
		    "must be one printable ASCII character");
	}
	ASSERT_BAD_CONTAINS("username = { default_domain = \"a@b\"; };",
	    "test.conf:1: username.default_domain: ");
	ASSERT_BAD_CONTAINS("username = { default_domain = \"a b\"; };",
	    "username.default_domain");
	ASSERT_BAD_CONTAINS("username = { domain_delimiter = \"%\"; default_domain = \"a%b\"; };",
	    "username.default_domain");

	/* '@' in the default domain is fine when it is not the delimiter. */
	struct config *c = load_ok("username = { domain_delimiter = \"%\"; "
	    "default_domain = \"a@b\"; };");
	ck_assert_int_eq(c->username.delimiter, '%');
	config_free(&c);
}
END_TEST

START_TEST(test_capability_line_break)
{
	ASSERT_BAD_CONTAINS("capability = { imap = \"IMAP4rev1\\r\\nX\"; };",
	    "must not contain line breaks");
	ASSERT_BAD_CONTAINS("capability = { pop3 = \"USER\\nX\"; };",
	    "must not contain line breaks");
	ASSERT_BAD_CONTAINS("capability = { pop3 = \"USER\\rX\"; };", "capability");
}
END_TEST

START_TEST(test_sieve_keys)
{
	struct config *c = load_ok("");

	ck_assert_str_eq(proto_name(PROTO_SIEVE), "sieve");
	ck_assert_uint_eq(c->backend.port[PROTO_SIEVE], 4190);
	ck_assert_str_eq(c->capability[PROTO_SIEVE], "");
	config_free(&c);
	c = load_ok("listen = ( { protocol = \"sieve\"; address = \"127.0.0.1:4190\"; "
	    "tls = \"starttls\"; } );\n"
	    "capability = { sieve = \"fileinto vacation\"; };\n"
	    "backend = { sieve_port = 2000; };\n"
	    "backends = ( { name = \"a\"; addresses = \"10.0.0.1\"; sieve_port = 3000; },\n"
	    "  { name = \"b\"; addresses = \"10.0.0.2\"; } );\n");
	ck_assert_uint_eq(c->nlisten, 1);
	ck_assert_int_eq(c->listen[0].proto, PROTO_SIEVE);
	ck_assert_str_eq(c->capability[PROTO_SIEVE], "fileinto vacation");
	ck_assert_uint_eq(c->backend.port[PROTO_SIEVE], 2000);
	ck_assert_uint_eq(c->backends[0].port[PROTO_SIEVE], 3000);
	ck_assert_uint_eq(c->backends[1].port[PROTO_SIEVE], 0);
	config_free(&c);
	ASSERT_BAD("capability = { sieve = \"fileinto \\\"x\\\"\"; };",
	    "test.conf:1: capability.sieve: must not contain quotes or backslashes");
	ASSERT_BAD_CONTAINS("capability = { sieve = \"a\\nb\"; };",
	    "must not contain line breaks");
	ASSERT_BAD("backend = { sieve_port = 0; };",
	    "test.conf:1: backend.sieve_port: must be between 1 and 65535");
	ASSERT_BAD("backends = ( { name = \"a\"; addresses = \"x\"; sieve_port = 70000; } );",
	    "test.conf:1: backends[0].sieve_port: must be between 0 and 65535");
	ASSERT_BAD("listen = ( { protocol = \"smtp\"; address = \"127.0.0.1:25\"; } );",
	    "test.conf:1: listen[0].protocol: unknown value \"smtp\" "
	    "(one of: \"imap\", \"pop3\", \"sieve\")");
}
END_TEST

START_TEST(test_greeting_applied)
{
	struct config *c = load_ok("daemon = { greeting = \"Mail service at your door\"; };");

	ck_assert_str_eq(c->daemon.greeting, "Mail service at your door");
	config_free(&c);
	/* The default names neither the product nor a version. */
	c = load_ok("");
	ck_assert_ptr_null(strstr(c->daemon.greeting, "postern"));
	ck_assert_ptr_null(strstr(c->daemon.greeting, PACKAGE_VERSION));
	config_free(&c);
}
END_TEST

START_TEST(test_greeting_rules)
{
	ASSERT_BAD("daemon = { greeting = \"ready\\r\\n* OK\"; };",
	    "test.conf:1: daemon.greeting: must not contain control characters");
	ASSERT_BAD_CONTAINS("daemon = { greeting = \"a\\nb\"; };",
	    "must not contain control characters");
	ASSERT_BAD_CONTAINS("daemon = { greeting = \"a\\tb\"; };",
	    "must not contain control characters");
	ASSERT_BAD_CONTAINS("daemon = { greeting = \"a\\x7fb\"; };",
	    "must not contain control characters");
	ASSERT_BAD_CONTAINS("daemon = { greeting = \"\"; };",
	    "daemon.greeting: must be 1 to 200 bytes long");
	ASSERT_BAD_CONTAINS("daemon = { greeting = 1; };",
	    "daemon.greeting: must be a string");
}
END_TEST

START_TEST(test_ldap_rules)
{
	ASSERT_BAD_CONTAINS("directory = { ldap = { uri = \"\"; }; };",
	    "test.conf:1: directory.ldap.uri: ");
	ASSERT_BAD_CONTAINS("directory = { ldap = { filter = \"uid=%u\"; }; };",
	    "test.conf:1: directory.ldap.filter: ");
	ASSERT_BAD_CONTAINS("directory = { ldap = { bind_password = \"x\"; "
	    "bind_password_file = \"/f\"; }; };",
	    "not both");
	/* Checked as the server would parse them, after a test expansion. */
	ASSERT_BAD_CONTAINS("directory = { ldap = { filter = \"(uid=%u\"; }; };",
	    "test.conf:1: directory.ldap.filter: not an RFC 4515 filter: missing ')'");
	ASSERT_BAD_CONTAINS("directory = { ldap = { filter = \"(uid=%x)\"; }; };",
	    "test.conf:1: directory.ldap.filter: unknown %-sequence");
	ASSERT_BAD_CONTAINS("directory = { ldap = { filter = \"(&(uid=%u)(mail=*)))\"; }; };",
	    "text after the filter's closing ')'");
	ASSERT_BAD_CONTAINS("directory = { ldap = { filter = \"(uid=a(b)\"; }; };",
	    "'(' in a value");
	ASSERT_BAD_CONTAINS("directory = { ldap = { base = \"dc=example,,dc=net\"; }; };",
	    "test.conf:1: directory.ldap.base: \"dc=example,,dc=net\" is not a valid DN");
	ASSERT_BAD_CONTAINS("directory = { ldap = { base = \"ou=%z,dc=net\"; }; };",
	    "directory.ldap.base: unknown %-sequence");
	ASSERT_BAD_CONTAINS("directory = { ldap = { bind_dn = \"cn=x,,\"; }; };",
	    "directory.ldap.bind_dn: ");
	ASSERT_BAD_CONTAINS("directory = { ldap = { attributes = { host = \"mail host\"; }; }; };",
	    "test.conf:1: directory.ldap.attributes.host: \"mail host\" is not an attribute name");
	/* Host attributes in order, and the host map. */
	ASSERT_BAD_CONTAINS("directory = { ldap = { attributes = { host = [ ]; }; }; };",
	    "test.conf:1: directory.ldap.attributes.host: must list 1 to 8");
	ASSERT_BAD_CONTAINS("directory = { ldap = { attributes = { host = "
	    "[ \"mailHost\", \"home MDB\" ]; }; }; };",
	    "directory.ldap.attributes.host: \"home MDB\" is not an attribute name");
	ASSERT_BAD_CONTAINS("directory = { host_map = ( { value = \"a\"; regex = \"b\"; "
	    "host = \"h\"; } ); };", "directory.host_map[0]: set value or regex");
	ASSERT_BAD_CONTAINS("directory = { host_map = ( { regex = \"(\"; host = \"h\"; } ); };",
	    "directory.host_map[0]: not a POSIX extended regular expression");
	ASSERT_BAD_CONTAINS("directory = { host_map = ( { regex = \"^(a)$\"; "
	    "host = \"\\\\2\"; } ); };",
	    "directory.host_map[0]: host refers to a group");
	ASSERT_BAD_CONTAINS("directory = { host_map = ( { value = \"a\"; } ); };",
	    "directory.host_map[0]: a rule needs");
	ASSERT_BAD_CONTAINS("directory = { host_map = { value = \"a\"; }; };",
	    "directory.host_map: must be a list");
	{
		struct config *c = load_ok("directory = { ldap = { attributes = { host = "
		    "[ \"mailHost\", \"msExchHomeServerName\", \"mailServer\" ]; }; };\n"
		    "host_map = ( { value = \"/o=A/cn=EXCH01\"; host = \"exch01\"; },\n"
		    "  { regex = \"^CN=([^/]+)/O=Acme$\"; host = \"\\\\1.domino\"; } ); };");

		ck_assert_uint_eq(c->directory.ldap.nattr_hosts, 3);
		ck_assert_str_eq(c->directory.ldap.attr_host, "mailHost");
		ck_assert_str_eq(c->directory.ldap.attr_hosts[2], "mailServer");
		ck_assert_ptr_null(c->directory.ldap.attr_hosts[3]);
		ck_assert_uint_eq(c->directory.host_map.n, 2);
		config_free(&c);
	}
	/* The replica's filter and keys. */
	ASSERT_BAD_CONTAINS("directory = { ldap = { sync_filter = \"(uid=%u)\"; }; };",
	    "test.conf:1: directory.ldap.sync_filter: takes no %-sequences");
	ASSERT_BAD_CONTAINS("directory = { ldap = { sync_filter = \"(uid=a\"; }; };",
	    "test.conf:1: directory.ldap.sync_filter: not an RFC 4515 filter");
	ASSERT_BAD_CONTAINS("directory = { ldap = { sync_keys = \" \"; }; };",
	    "test.conf:1: directory.ldap.sync_keys: must name at least one");
	ASSERT_BAD_CONTAINS("directory = { ldap = { sync_keys = \"uid,mail\"; }; };",
	    "directory.ldap.sync_keys: \"uid,mail\" is not a list of attribute names");
	ASSERT_BAD_CONTAINS("directory = { on_move = \"evict\"; };",
	    "test.conf:1: directory.on_move: ");
	ASSERT_BAD_CONTAINS("daemon = { control = \"/run/postern/"
	    "0123456789012345678901234567890123456789012345678901234567890123"
	    "456789012345678901234567890123456789\"; };",
	    "test.conf:1: daemon.control: must be a path of fewer than 108 bytes");
	config_free_ok("daemon = { control = \"/run/postern/control\"; };\n"
	    "directory = { on_move = \"kick\"; ldap = { sync = true; "
	    "sync_keys = \"uid  mail\"; }; };");
	/* A template that expands to valid text is fine, %d in a DN too. */
	config_free_ok("directory = { ldap = { base = \"ou=%d,dc=example,dc=net\"; "
	    "filter = \"(&(|(uid=%u)(mail=%l@%d))(!(x=*))(cn=a*b*c)(o:dn:2.5.13.5:=v))\"; }; };");
}
END_TEST

/* Every path-valued key, relative: each resolves from the file's directory. */
static const char relative_paths[] =
    "daemon = { pid_file = \"run/p.pid\"; control = \"ctl\"; };\n"
    "tls = { cert = \"c.pem\"; key = \"../k.pem\";\n"
    "  certificates = ( { cert = \"sni/c.pem\"; key = \"/abs/k.pem\"; } ); };\n"
    "directory = { type = \"file\"; file = { path = \"map\"; };\n"
    "  ldap = { bind_password_file = \"pw\"; ca_file = \"ca.pem\"; }; };\n"
    "backend = { ca_file = \"bca.pem\"; };\n"
    "backends = ( { name = \"s\"; addresses = \"10.0.0.1\"; ca_file = \"s.pem\"; } );\n";

START_TEST(test_relative_paths_resolved)
{
	struct config *c = NULL;
	char err[512] = "";

	ck_assert_msg(config_load_string("/etc/postern/postern.conf",
	    relative_paths, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c->daemon.pid_file, "/etc/postern/run/p.pid");
	ck_assert_str_eq(c->daemon.control, "/etc/postern/ctl");
	ck_assert_str_eq(c->tls.cert, "/etc/postern/c.pem");
	ck_assert_str_eq(c->tls.key, "/etc/postern/../k.pem");
	ck_assert_str_eq(c->tls.certificates[0].cert, "/etc/postern/sni/c.pem");
	ck_assert_str_eq(c->tls.certificates[0].key, "/abs/k.pem");
	ck_assert_str_eq(c->directory.file_path, "/etc/postern/map");
	ck_assert_str_eq(c->directory.ldap.bind_password_file, "/etc/postern/pw");
	ck_assert_str_eq(c->directory.ldap.ca_file, "/etc/postern/ca.pem");
	ck_assert_str_eq(c->backend.ca_file, "/etc/postern/bca.pem");
	ck_assert_str_eq(c->backends[0].ca_file, "/etc/postern/s.pem");
	config_free(&c);

	/* A file named relative to the working directory: still absolute. */
	ck_assert_msg(config_load_string("etc/postern.conf", relative_paths, &c,
	    err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c->tls.cert, in_cwd("etc/c.pem"));
	ck_assert_str_eq(c->tls.certificates[0].key, "/abs/k.pem");
	config_free(&c);

	/* A file at the root; "" stays "none". */
	ck_assert_msg(config_load_string("/p.conf", "tls = { cert = \"c.pem\"; };",
	    &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(c->tls.cert, "/c.pem");
	ck_assert_str_eq(c->tls.key, "");
	ck_assert_str_eq(c->daemon.pid_file, "");
	ck_assert_str_eq(c->directory.file_path, "/popmap");
	config_free(&c);
}
END_TEST

START_TEST(test_absolute_paths_unchanged)
{
	struct config *c = NULL;
	char err[512] = "";

	ck_assert_msg(config_load_string("/etc/postern/postern.conf",
	    "daemon = { pid_file = \"/run/p.pid\"; control = \"/run/ctl\"; };\n"
	    "tls = { cert = \"/c.pem\"; key = \"/k.pem\"; };\n"
	    "directory = { file = { path = \"/m\"; };\n"
	    "  ldap = { ca_file = \"/ca.pem\"; bind_password_file = \"/pw\"; }; };\n"
	    "backend = { ca_file = \"/bca.pem\"; };\n", &c, err, sizeof(err)) == 0,
	    "%s", err);
	ck_assert_str_eq(c->daemon.pid_file, "/run/p.pid");
	ck_assert_str_eq(c->daemon.control, "/run/ctl");
	ck_assert_str_eq(c->tls.cert, "/c.pem");
	ck_assert_str_eq(c->tls.key, "/k.pem");
	ck_assert_str_eq(c->directory.file_path, "/m");
	ck_assert_str_eq(c->directory.ldap.ca_file, "/ca.pem");
	ck_assert_str_eq(c->directory.ldap.bind_password_file, "/pw");
	ck_assert_str_eq(c->backend.ca_file, "/bca.pem");
	config_free(&c);
}
END_TEST

/* A config file in a fresh directory; returns its path (static). */
static const char *
write_conf_dir(char *dir, const char *text)
{
	static char path[256];
	FILE *fp;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/postern.conf", dir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	return path;
}

START_TEST(test_file_errors_name_key_and_config)
{
	char dir[] = "/tmp/check_config_XXXXXX", err[1024], want[1024];
	struct config *c = NULL;
	struct tls_ctxs tls;
	const char *path;

	/* Read while loading: FILE:LINE, the key, the resolved file. */
	path = write_conf_dir(dir, "backend = {\n  master_password_file = \"pw\";\n};\n");
	ck_assert_int_eq(config_load(path, &c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: backend.master_password_file: %s/pw: "
	    "No such file or directory", path, dir);
	ck_assert_str_eq(err, want);

	/* Read by the TLS code: the key and the configuration file. */
	{
		FILE *fp = fopen(path, "w");

		ck_assert_ptr_nonnull(fp);
		fputs("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1\";"
		    " tls = \"starttls\"; } );\n"
		    "tls = { cert = \"cert.pem\"; key = \"key.pem\"; };\n"
		    "directory = { type = \"file\"; };\n", fp);
		fclose(fp);
	}
	ck_assert_msg(config_load(path, &c, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(tls_ctxs_new(c, &tls, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: tls.cert: %s/cert.pem: "
	    "No such file or directory", path, dir);
	ck_assert_str_eq(err, want);

	/* Read by the file directory: the key, then the map's own words. */
	ck_assert_int_eq(directory_check(c, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s: directory.file.path: %s/popmap:0: "
	    "No such file or directory", path, dir);
	ck_assert_str_eq(err, want);
	config_free(&c);
	unlink(path);
	rmdir(dir);
}
END_TEST

/*
 * config/postern.conf says its values are the defaults unless its comment
 * says "not the default": hold it to that, field by field.
 */
START_TEST(test_example_config_states_the_defaults)
{
	const char *top = getenv("top_srcdir");
	struct config *ex = NULL, *d = load_ok("");
	char path[4096], err[512] = "";

	snprintf(path, sizeof(path), "%s/config/postern.conf", top != NULL ? top : "..");
	ck_assert_msg(config_load(path, &ex, err, sizeof(err)) == 0, "%s", err);
	/* The three it marks "not the default". */
	ck_assert_uint_eq(ex->directory.ntypes, 1);
	ck_assert_int_eq(ex->directory.type[0], DIR_TYPE_FILE);
	ck_assert_uint_eq(d->directory.ntypes, 1);
	ck_assert_int_eq(d->directory.type[0], DIR_TYPE_LDAP);
	ck_assert_str_eq(ex->daemon.control, "/run/postern/control");
	ck_assert_str_eq(d->daemon.control, "");
	ck_assert_str_eq(d->directory.ldap.base, "");
	/* "popmap" by the file, as the default is by its own file. */
	ck_assert_str_eq(strrchr(ex->directory.file_path, '/'), "/popmap");
	ck_assert_str_eq(strrchr(d->directory.file_path, '/'), "/popmap");
#define SAME_U(f)	ck_assert_msg(ex->f == d->f, #f ": %llu in the example, " \
	"%llu by default", (unsigned long long)ex->f, (unsigned long long)d->f)
#define SAME_S(f)	ck_assert_msg(strcmp(ex->f, d->f) == 0, #f ": \"%s\" in " \
	"the example, \"%s\" by default", ex->f, d->f)
	SAME_U(daemon.threads);
	SAME_S(daemon.user);
	SAME_S(daemon.pid_file);
	SAME_U(daemon.log_level);
	SAME_U(daemon.log_json);
	SAME_U(daemon.drain);
	SAME_S(daemon.greeting);
	SAME_U(limits.connections);
	SAME_U(limits.per_ip);
	SAME_U(limits.per_user);
	SAME_U(limits.line_length);
	SAME_U(limits.auth_failures);
	SAME_U(limits.bad_commands);
	SAME_U(limits.throttle);
	SAME_U(limits.throttle_entries);
	SAME_U(limits.throttle_max);
	SAME_U(limits.throttle_window);
	SAME_U(timeouts.login);
	SAME_U(timeouts.idle);
	SAME_U(timeouts.connect);
	SAME_U(timeouts.backend);
	SAME_U(timeouts.lookup);
	SAME_U(timeouts.proxy_header);
	SAME_S(tls.cert);
	SAME_S(tls.key);
	SAME_S(tls.min_version);
	SAME_S(tls.ciphers);
	SAME_U(tls.ncertificates);
	SAME_U(nlisten);
	for (size_t i = 0; i < d->nlisten; i++) {
		SAME_S(listen[i].address);
		SAME_U(listen[i].proto);
		SAME_U(listen[i].tls);
		SAME_U(listen[i].proxy_protocol);
		SAME_U(listen[i].domain_from);
		ck_assert_ptr_null(ex->listen[i].default_domain);
		ck_assert_ptr_null(d->listen[i].default_domain);
	}
	SAME_U(username.lower_case);
	SAME_U(username.delimiter);
	SAME_S(username.default_domain);
	SAME_U(username.strip_domain);
	SAME_S(capability[PROTO_IMAP]);
	SAME_S(capability[PROTO_POP3]);
	SAME_U(directory.on_move);
	for (int p = 0; p < PROTO_COUNT; p++)
		SAME_U(directory.port_for[p]);
	SAME_U(directory.cache.ttl);
	SAME_U(directory.cache.negative_ttl);
	SAME_U(directory.cache.entries);
	SAME_U(directory.cache.negative_entries);
	SAME_U(directory.cache.serve_stale);
	SAME_U(directory.cache.stale_max);
	SAME_S(directory.ldap.uri);
	SAME_U(directory.ldap.scope);
	SAME_S(directory.ldap.filter);
	SAME_S(directory.ldap.bind_dn);
	SAME_S(directory.ldap.bind_password);
	SAME_S(directory.ldap.bind_password_file);
	SAME_S(directory.ldap.sasl_mech);
	SAME_U(directory.ldap.starttls);
	SAME_S(directory.ldap.ca_file);
	SAME_U(directory.ldap.pool);
	SAME_U(directory.ldap.auth_pool);
	SAME_U(directory.ldap.queue);
	SAME_U(directory.ldap.timeout);
	SAME_U(directory.ldap.failback);
	SAME_S(directory.ldap.attr_username);
	SAME_U(directory.ldap.nattr_hosts);
	SAME_S(directory.ldap.attr_host);
	SAME_S(directory.ldap.attr_port);
	SAME_U(directory.ldap.sync);
	SAME_S(directory.ldap.sync_filter);
	SAME_S(directory.ldap.sync_keys);
	SAME_S(directory.regex_path);
	SAME_S(directory.http.url);
	SAME_U(directory.http.timeout);
	SAME_U(directory.http.queue);
	SAME_U(directory.http.pass_password);
	SAME_U(directory.sql.failback);
	SAME_U(directory.sql.tls);
	SAME_S(directory.sql.ca_file);
	SAME_U(health.passive);
	SAME_U(health.active);
	SAME_U(health.failures);
	SAME_U(health.down_time);
	SAME_U(health.interval);
	SAME_U(health.timeout);
	SAME_U(health.entries);
	SAME_U(health.probes);
	SAME_U(backend.port[PROTO_SIEVE]);
	SAME_S(capability[PROTO_SIEVE]);
	SAME_U(backend.port[PROTO_IMAP]);
	SAME_U(backend.port[PROTO_POP3]);
	SAME_U(backend.tls);
	SAME_S(backend.ca_file);
	SAME_U(backend.verify);
	SAME_U(master.login);
	SAME_S(master.master_user);
	SAME_S(master.master_password);
	SAME_U(nbackends);
	SAME_U(auth.verify);
	SAME_U(auth.failure_delay);
	SAME_U(proxy.ntrusted_networks);
	SAME_S(metrics.listen);
#undef SAME_U
#undef SAME_S
	config_free(&ex);
	config_free(&d);
}
END_TEST

START_TEST(test_port_protocols)
{
	struct config *c = load_ok("");

	for (int p = 0; p < PROTO_COUNT; p++)
		ck_assert(c->directory.port_for[p]);
	config_free(&c);
	c = load_ok("directory = { port_protocols = \"imap\"; };");
	ck_assert(c->directory.port_for[PROTO_IMAP]);
	ck_assert(!c->directory.port_for[PROTO_POP3]);
	ck_assert(!c->directory.port_for[PROTO_SIEVE]);
	config_free(&c);
	c = load_ok("directory = { port_protocols = [ \"pop3\", \"sieve\" ]; };");
	ck_assert(!c->directory.port_for[PROTO_IMAP]);
	ck_assert(c->directory.port_for[PROTO_POP3]);
	ck_assert(c->directory.port_for[PROTO_SIEVE]);
	config_free(&c);
	c = load_ok("directory = { port_protocols = []; };");
	for (int p = 0; p < PROTO_COUNT; p++)
		ck_assert(!c->directory.port_for[p]);
	config_free(&c);
	ASSERT_BAD("directory = { port_protocols = [ \"smtp\" ]; };",
	    "test.conf:1: directory.port_protocols: unknown value \"smtp\" "
	    "(one of: \"imap\", \"pop3\", \"sieve\")");
	ASSERT_BAD("directory = { port_protocols = 143; };",
	    "test.conf:1: directory.port_protocols: must be a string or a list "
	    "of strings");
}
END_TEST

START_TEST(test_metrics_listen)
{
	struct config *c = load_ok("");

	ck_assert_str_eq(c->metrics.listen, "");
	config_free(&c);
	c = load_ok("metrics = { listen = \"127.0.0.1:9143\"; };");
	ck_assert_str_eq(c->metrics.listen, "127.0.0.1:9143");
	ck_assert_uint_eq(c->metrics.addr.ss_family, AF_INET);
	config_free(&c);
	c = load_ok("metrics = { listen = \"[::1]:9143\"; };");
	ck_assert_uint_eq(c->metrics.addr.ss_family, AF_INET6);
	config_free(&c);
	config_free_ok("metrics = { listen = \"\"; };");
	ASSERT_BAD("metrics = { listen = \"127.0.0.1\"; };",
	    "test.conf:1: metrics.listen: \"127.0.0.1\": needs a port (address:port)");
	ASSERT_BAD("metrics = { listen = \"localhost:9143\"; };",
	    "test.conf:1: metrics.listen: \"localhost:9143\": not a numeric IPv4 "
	    "or [IPv6] address");
	ASSERT_BAD("metrics = { listen = 9143; };",
	    "test.conf:1: metrics.listen: must be a string");
	ASSERT_BAD_CONTAINS("metrics = { port = 9143; };",
	    "test.conf:1: metrics.port: ");
	ASSERT_BAD("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:143\"; } );\n"
	    "metrics = { listen = \"127.0.0.1:143\"; };",
	    "test.conf:2: metrics.listen: \"127.0.0.1:143\" is already used by "
	    "listen[0]");
}
END_TEST

START_TEST(test_file_path_required)
{
	ASSERT_BAD_CONTAINS("directory = { type = \"file\"; file = { path = \"\"; }; };",
	    "test.conf:1: directory.file.path: ");
}
END_TEST

START_TEST(test_syntax_error)
{
	const char *e = load_bad("daemon = {\n  threads = 1;\n  user = ;\n};\n");

	ck_assert_msg(strncmp(e, "test.conf:3: ", 13) == 0, "got \"%s\"", e);
	ck_assert_uint_gt(strlen(e), 13);

	e = load_bad("daemon = { threads = = 1; };");
	ck_assert_msg(strncmp(e, "test.conf:1: ", 13) == 0, "got \"%s\"", e);

	e = load_bad("\n\n\n\nx = ;\n");
	ck_assert_msg(strncmp(e, "test.conf:5: ", 13) == 0, "got \"%s\"", e);
}
END_TEST

START_TEST(test_error_truncated)
{
	/* A small buffer gets a truncated, still NUL-terminated message. */
	struct config *c = NULL;
	char err[16];

	memset(err, 'x', sizeof(err));
	ck_assert_int_eq(config_load_string(NAME, "bogus = 1;", &c, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "test.conf:1: bo");
}
END_TEST

START_TEST(test_listen_domain_keys)
{
	struct config *c = load_ok(
	    "username = { default_domain = \"global.example\"; };\n"
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\"; "
	    "default_domain = \"Site-A.Example.\"; },\n"
	    "  { protocol = \"imap\"; address = \"127.0.0.1:1993\"; tls = \"implicit\"; "
	    "domain_from = \"sni\"; },\n"
	    "  { protocol = \"pop3\"; address = \"0.0.0.0:1110\"; default_domain = \"\"; "
	    "domain_from = \"local_name\"; },\n"
	    "  { protocol = \"pop3\"; address = \"127.0.0.1:1111\"; domain_from = \"none\"; } );\n");

	/* Checked and kept lower case, without the final dot. */
	ck_assert_str_eq(c->listen[0].default_domain, "site-a.example");
	ck_assert_int_eq(c->listen[0].domain_from, DOMAIN_FROM_NONE);
	/* Unset: username.default_domain applies. */
	ck_assert_ptr_null(c->listen[1].default_domain);
	ck_assert_int_eq(c->listen[1].domain_from, DOMAIN_FROM_SNI);
	/* "": no domain on this listener, whatever username says. */
	ck_assert_str_eq(c->listen[2].default_domain, "");
	ck_assert_int_eq(c->listen[2].domain_from, DOMAIN_FROM_LOCAL_NAME);
	ck_assert_int_eq(c->listen[3].domain_from, DOMAIN_FROM_NONE);
	ck_assert_str_eq(domain_from_name(DOMAIN_FROM_LOCAL_NAME), "local_name");
	config_free(&c);

	ASSERT_BAD("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\";\n"
	    "  default_domain = \"a@b.example\"; } );",
	    NAME ":2: listen[0].default_domain: \"a@b.example\": not a host name "
	    "(letters, digits, '-' and '.' only)");
	ASSERT_BAD("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\";\n"
	    "  default_domain = \"localhost\"; } );",
	    NAME ":2: listen[0].default_domain: \"localhost\": a single label is "
	    "no domain");
	ASSERT_BAD_CONTAINS("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\";\n"
	    "  default_domain = \"ex ample.org\"; } );",
	    "listen[0].default_domain");
	ASSERT_BAD_CONTAINS("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\";\n"
	    "  default_domain = \"x.example.\\r\\n\"; } );",
	    "listen[0].default_domain");
	ASSERT_BAD("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\";\n"
	    "  default_domain = 1; } );",
	    NAME ":2: listen[0].default_domain: must be a string");
	ASSERT_BAD("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\";\n"
	    "  domain_from = \"reverse\"; } );",
	    NAME ":2: listen[0].domain_from: unknown value \"reverse\" (one of: "
	    "\"none\", \"sni\", \"local_name\")");
	/* Without TLS there is no server name. */
	ASSERT_BAD("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\";\n"
	    "  domain_from = \"sni\"; } );",
	    NAME ":2: listen[0]: domain_from \"sni\" needs tls (\"starttls\", "
	    "\"required\" or \"implicit\")");
}
END_TEST

START_TEST(test_proxy_protocol_keys)
{
	struct config *c = load_ok(
	    "listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\"; proxy_protocol = true; },\n"
	    "  { protocol = \"pop3\"; address = \"127.0.0.1:1110\"; } );\n"
	    "proxy = { trusted_networks = [ \"127.0.0.0/8\", \"::1\", \"2001:db8::/32\", \"0.0.0.0/0\" ]; };\n"
	    "timeouts = { proxy_header = 2; };\n"
	    "backends = ( { name = \"a\"; addresses = \"10.0.0.1\"; proxy_protocol = \"v2\"; xclient = true; },\n"
	    "  { name = \"b\"; addresses = \"10.0.0.2\"; proxy_protocol = \"v1\"; },\n"
	    "  { name = \"c\"; addresses = \"10.0.0.3\"; } );\n");
	struct sockaddr_in in = { .sin_family = AF_INET };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	ck_assert(c->listen[0].proxy_protocol);
	ck_assert(!c->listen[1].proxy_protocol);
	ck_assert_uint_eq(c->timeouts.proxy_header, 2);
	ck_assert_uint_eq(c->proxy.ntrusted_networks, 4);
	ck_assert_uint_eq(c->proxy.trusted_networks[1].prefix, 128);
	ck_assert_int_eq(c->backends[0].proxy_protocol, BACKEND_PROXY_V2);
	ck_assert(c->backends[0].xclient);
	ck_assert_int_eq(c->backends[1].proxy_protocol, BACKEND_PROXY_V1);
	ck_assert(!c->backends[1].xclient);
	ck_assert_int_eq(c->backends[2].proxy_protocol, BACKEND_PROXY_NONE);
	/* Matching: only the first three blocks, then all of IPv4. */
	inet_pton(AF_INET6, "2001:db8:ffff::1", &in6.sin6_addr);
	ck_assert(cidr_match(c->proxy.trusted_networks, 3, (struct sockaddr *)&in6));
	inet_pton(AF_INET6, "2001:db9::1", &in6.sin6_addr);
	ck_assert(!cidr_match(c->proxy.trusted_networks, 3, (struct sockaddr *)&in6));
	inet_pton(AF_INET6, "::ffff:127.1.2.3", &in6.sin6_addr);
	ck_assert(cidr_match(c->proxy.trusted_networks, 3, (struct sockaddr *)&in6));
	inet_pton(AF_INET, "127.255.0.1", &in.sin_addr);
	ck_assert(cidr_match(c->proxy.trusted_networks, 1, (struct sockaddr *)&in));
	inet_pton(AF_INET, "128.0.0.1", &in.sin_addr);
	ck_assert(!cidr_match(c->proxy.trusted_networks, 3, (struct sockaddr *)&in));
	ck_assert(cidr_match(c->proxy.trusted_networks, 4, (struct sockaddr *)&in));
	ck_assert(!cidr_match(c->proxy.trusted_networks, 0, (struct sockaddr *)&in));
	config_free(&c);
	/* Defaults: no PROXY anywhere. */
	c = load_ok("");
	ck_assert(!c->listen[0].proxy_protocol);
	ck_assert_uint_eq(c->proxy.ntrusted_networks, 0);
	ck_assert_uint_eq(c->timeouts.proxy_header, 5);
	config_free(&c);
}
END_TEST

START_TEST(test_proxy_protocol_bad)
{
	static const char *const nets[] = { "10.0.0.1/8", "10.0.0.0/33",
	    "::1/129", "10.0.0.0/", "10.0.0.0/-1", "localhost", "10.0.0.0/8x",
	    "" };

	ASSERT_BAD_CONTAINS("listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\"; proxy_protocol = true; } );\n",
	    "proxy.trusted_networks: listen 127.0.0.1:1143 has proxy_protocol = true");
	ASSERT_BAD_CONTAINS("proxy = { trusted = [ \"10.0.0.0/8\" ]; };\n",
	    "test.conf:1: proxy.trusted: unknown key");
	ASSERT_BAD_CONTAINS("proxy = { trusted_networks = \"10.0.0.0/8\"; };\n",
	    "proxy.trusted_networks: must be a list");
	ASSERT_BAD_CONTAINS("backends = ( { name = \"a\"; addresses = \"x\"; proxy_protocol = \"v3\"; } );\n",
	    "backends[0].proxy_protocol: unknown value \"v3\"");
	ASSERT_BAD_CONTAINS("backends = ( { name = \"a\"; addresses = \"x\"; xclient = \"yes\"; } );\n",
	    "backends[0].xclient: must be true or false");
	ASSERT_BAD_CONTAINS("timeouts = { proxy_header = 0; };\n",
	    "timeouts.proxy_header: must be between 1 and 60");
	for (size_t i = 0; i < sizeof(nets) / sizeof(nets[0]); i++) {
		char text[256];

		snprintf(text, sizeof(text),
		    "proxy = { trusted_networks = [ \"%s\" ]; };\n", nets[i]);
		ASSERT_BAD_CONTAINS(text, "proxy.trusted_networks: \"");
	}
}
END_TEST

START_TEST(test_health_keys)
{
	struct config *c = load_ok(
	    "health = { passive = false; active = false; failures = 1; down_time = 2;\n"
	    "  interval = 3; timeout = 3; entries = 4; probes = 5; };\n");

	ck_assert(!c->health.passive);
	ck_assert(!c->health.active);
	ck_assert_uint_eq(c->health.failures, 1);
	ck_assert_uint_eq(c->health.down_time, 2);
	ck_assert_uint_eq(c->health.interval, 3);
	ck_assert_uint_eq(c->health.timeout, 3);
	ck_assert_uint_eq(c->health.entries, 4);
	ck_assert_uint_eq(c->health.probes, 5);
	config_free(&c);

	ASSERT_BAD("health = 3;\n", NAME ":1: health: must be a group { ... }");
	ASSERT_BAD("health = {\n  failure = 3; };\n",
	    NAME ":2: health.failure: unknown key");
	ASSERT_BAD("health = { failures = 0; };\n",
	    NAME ":1: health.failures: must be between 1 and 100");
	ASSERT_BAD("health = { failures = 101; };\n",
	    NAME ":1: health.failures: must be between 1 and 100");
	ASSERT_BAD("health = { down_time = 0; };\n",
	    NAME ":1: health.down_time: must be between 1 and 86400");
	ASSERT_BAD("health = { interval = 86401; };\n",
	    NAME ":1: health.interval: must be between 1 and 86400");
	ASSERT_BAD("health = { timeout = 0; };\n",
	    NAME ":1: health.timeout: must be between 1 and 3600");
	ASSERT_BAD("health = { entries = 0; };\n",
	    NAME ":1: health.entries: must be between 1 and 1000000");
	ASSERT_BAD("health = { probes = 1025; };\n",
	    NAME ":1: health.probes: must be between 1 and 1024");
	ASSERT_BAD("health = { active = \"yes\"; };\n",
	    NAME ":1: health.active: must be true or false");
	ASSERT_BAD("health = { passive = 1; };\n",
	    NAME ":1: health.passive: must be true or false");
	ASSERT_BAD("health = {\n  interval = 5;\n  timeout = 6; };\n",
	    NAME ":3: health.timeout: must not be longer than health.interval (5)");
	ASSERT_BAD("health = {\n  interval = 2; };\n",
	    NAME ":2: health.timeout: must not be longer than health.interval (2)");
}
END_TEST

static Suite *
config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc;

	tc = tcase_create("valid");
	tcase_add_test(tc, test_empty_config_defaults);
	tcase_add_test(tc, test_metrics_listen);
	tcase_add_test(tc, test_port_protocols);
	tcase_add_test(tc, test_minimal_config);
	tcase_add_test(tc, test_contract_accepted);
	tcase_add_test(tc, test_every_key_applied);
	tcase_add_test(tc, test_enum_values);
	tcase_add_test(tc, test_range_edges_accepted);
	tcase_add_test(tc, test_listen_starttls_accepted);
	tcase_add_test(tc, test_config_free_null);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_load_from_file);
	tcase_add_test(tc, test_proxy_protocol_keys);
	tcase_add_test(tc, test_listen_domain_keys);
	tcase_add_test(tc, test_greeting_applied);
	tcase_add_test(tc, test_relative_paths_resolved);
	tcase_add_test(tc, test_absolute_paths_unchanged);
	tcase_add_test(tc, test_file_errors_name_key_and_config);
	tcase_add_test(tc, test_example_config_states_the_defaults);
	suite_add_tcase(s, tc);

	tc = tcase_create("invalid");
	tcase_add_test(tc, test_unknown_top_level_key);
	tcase_add_test(tc, test_unknown_nested_key);
	tcase_add_test(tc, test_wrong_types);
	tcase_add_test(tc, test_group_expected);
	tcase_add_test(tc, test_nested_group_expected_full_key);
	tcase_add_test(tc, test_ldap_attribute_full_key);
	tcase_add_test(tc, test_out_of_range);
	tcase_add_test(tc, test_bad_enum);
	tcase_add_test(tc, test_directory_chain);
	tcase_add_test(tc, test_directory_chain_bad);
	tcase_add_test(tc, test_directory_http);
	tcase_add_test(tc, test_directory_sql);
	tcase_add_test(tc, test_tls_min_version);
	tcase_add_test(tc, test_listen_address_without_port);
	tcase_add_test(tc, test_listen_bad_addresses);
	tcase_add_test(tc, test_proxy_protocol_bad);
	tcase_add_test(tc, test_listen_duplicate);
	tcase_add_test(tc, test_listen_empty_and_incomplete);
	tcase_add_test(tc, test_username_rules);
	tcase_add_test(tc, test_capability_line_break);
	tcase_add_test(tc, test_sieve_keys);
	tcase_add_test(tc, test_greeting_rules);
	tcase_add_test(tc, test_ldap_rules);
	tcase_add_test(tc, test_health_keys);
	tcase_add_test(tc, test_file_path_required);
	tcase_add_test(tc, test_syntax_error);
	tcase_add_test(tc, test_error_truncated);
	suite_add_tcase(s, tc);

	tc = tcase_create("not_supported_yet");
	tcase_add_test(tc, test_listen_tls_implicit_accepted);
	tcase_add_test(tc, test_listen_tls_required_accepted);
	tcase_add_test(tc, test_backend_tls_starttls_accepted);
	tcase_add_test(tc, test_backend_tls_required_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
