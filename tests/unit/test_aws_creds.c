/* The AWS credential chain against loopback stand-ins (tests/lib/aws_standins.py):
 * env, profile files, credential_process, web identity (STS), ECS, IMDSv2,
 * precedence, expiry refresh, invalidate and the CREDENTIALS_MISSING message. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "net/net.h"
#include "store/aws_creds.h"
#include "test.h"

extern char **environ;

static char tmp[256], home[300], script[1024], ctl_path[400];
static int port;
static pid_t server = -1;
static struct lfsfs_net *net;

static const char *const aws_vars[] = {
	"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
	"AWS_CREDENTIAL_EXPIRATION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
	"AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_REGION", "AWS_DEFAULT_REGION",
	"AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
	"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_STS", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN",
	"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "LFSFS_ECS_ENDPOINT",
	"AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT",
	"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", NULL,
};

static void put_file(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put_file(const char *path, const char *fmt, ...)
{
	char tpath[1100];
	va_list ap;
	FILE *f;

	snprintf(tpath, sizeof(tpath), "%s.tmp", path);
	f = fopen(tpath, "w");
	if (!f) {
		perror(tpath);
		exit(1);
	}
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fclose(f);
	rename(tpath, path);
}

static void path_in(char *out, size_t cap, const char *rel)
{
	snprintf(out, cap, "%s/%s", tmp, rel);
}

/* A clean slate: no AWS variables, HOME in the scratch dir, IMDS off. */
static void reset_env(void)
{
	char aws[400];

	for (int i = 0; aws_vars[i]; i++)
		unsetenv(aws_vars[i]);
	setenv("HOME", home, 1);
	setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
	snprintf(aws, sizeof(aws), "%s/.aws/credentials", home);
	unlink(aws);
	snprintf(aws, sizeof(aws), "%s/.aws/config", home);
	unlink(aws);
	put_file(ctl_path, "{}\n");
}

static void control(const char *json)
{
	put_file(ctl_path, "%s\n", json);
}

static void local_url(char *out, size_t cap, const char *path)
{
	snprintf(out, cap, "http://127.0.0.1:%d%s", port, path);
}

static const char *script_path(void)
{
	const char *src = getenv("LFSFS_SRC");
	const char *f = __FILE__, *p;

	if (src && *src) {
		snprintf(script, sizeof(script), "%s/tests/lib/aws_standins.py", src);
	} else {
		p = strstr(f, "tests/unit/test_aws_creds.c");
		snprintf(script, sizeof(script), "%.*stests/lib/aws_standins.py",
			 p ? (int)(p - f) : 0, f);
	}
	return script;
}

/* Start the stand-ins; 0, or a reason to skip. */
static const char *start_server(void)
{
	char port_file[400], log[400];
	char *argv[] = { "python3", script, "serve", "--port-file", port_file, "--control",
			 ctl_path, "--log", log, NULL };
	FILE *f;

	path_in(port_file, sizeof(port_file), "port");
	path_in(log, sizeof(log), "server.log");
	if (access(script_path(), R_OK))
		return "tests/lib/aws_standins.py not found";
	if (posix_spawnp(&server, "python3", NULL, NULL, argv, environ)) {
		server = -1;
		return "python3 not found";
	}
	for (int i = 0; i < 1000; i++) {
		int st;
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if ((f = fopen(port_file, "r"))) {
			int ok = fscanf(f, "%d", &port) == 1;
			fclose(f);
			if (ok)
				return NULL;
		}
		if (waitpid(server, &st, WNOHANG) == server) {
			server = -1;
			return "python3 could not start tests/lib/aws_standins.py";
		}
		nanosleep(&ts, NULL);
	}
	return "the stand-in server did not start within 10 s";
}

static void stop_server(void)
{
	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
		server = -1;
	}
}

/* One get on a fresh chain. */
static int get_once(const char *profile, struct lfsfs_aws_cred *c, struct lfsfs_buf *tried)
{
	struct lfsfs_aws_chain ch;
	int rc;

	memset(c, 0, sizeof(*c));
	lfsfs_aws_chain_init(&ch, net, profile);
	rc = lfsfs_aws_chain_get(&ch, c, tried);
	lfsfs_aws_chain_release(&ch);
	return rc;
}

static int has(const char *hay, const char *needle)
{
	int ok = hay && strstr(hay, needle) != NULL;

	if (!ok)
		fprintf(stderr, "  '%s' not in: %s\n", needle, hay ? hay : "(null)");
	return ok;
}

static void iso_in(char *out, size_t cap, int seconds)
{
	time_t t = time(NULL) + seconds;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ------------------------------------------------------------------ tests */

static void test_missing(void)
{
	struct lfsfs_buf tried = LFSFS_BUF_INIT(0);
	struct lfsfs_aws_cred c;
	struct timespec t0, t1;
	double secs;
	int rc;

	fprintf(stderr, "-- missing\n");
	reset_env();
	rc = get_once(NULL, &c, &tried);
	CHECK_EQ_INT(rc, -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(tried.data, "env: AWS_ACCESS_KEY_ID unset"));
	CHECK(has(tried.data, "profile 'default': no '"));
	CHECK(has(tried.data, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN unset"));
	CHECK(has(tried.data, "ecs: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"));
	CHECK(has(tried.data, "imds: disabled by AWS_EC2_METADATA_DISABLED"));
	CHECK(has(lfsfs_error_message(), "no aws credentials found (env: AWS_ACCESS_KEY_ID"));
	CHECK(has(lfsfs_error_message(), "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
	CHECK_EQ_STR(lfsfs_code_name(rc), "CREDENTIALS_MISSING");

	/* tried may be NULL */
	CHECK_EQ_INT(get_once(NULL, &c, NULL), -LFSFS_ECREDENTIALS_MISSING);

	/* IMDS enabled but nothing listening: refused at once */
	unsetenv("AWS_EC2_METADATA_DISABLED");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:1", 1);
	CHECK_EQ_INT(get_once(NULL, &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(tried.data, "imds: no instance metadata service at 'http://127.0.0.1:1'"));

	/* a black-holed address (the laptop case) gives up within about a second */
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://10.255.255.1/", 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ_INT(get_once(NULL, &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	CHECK(secs < 3.0);
	/* (a sandbox that intercepts every connection answers instead: then
	 * IMDS answers 4xx, which is also "nothing here") */
	CHECK(has(tried.data, "imds: "));
	lfsfs_buf_release(&tried);
}

static void test_env(void)
{
	struct lfsfs_buf tried = LFSFS_BUF_INIT(0);
	struct lfsfs_aws_cred c;

	fprintf(stderr, "-- env\n");
	reset_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, "AKIAENV");
	CHECK_EQ_STR(c.secret_key, "envsecret");
	CHECK_EQ_STR(c.session_token, "");
	CHECK_EQ_STR(c.source, "env");
	CHECK_EQ_INT(c.expires, 0);

	setenv("AWS_SESSION_TOKEN", "envtoken", 1);
	setenv("AWS_CREDENTIAL_EXPIRATION", "2099-01-02T03:04:05+01:00", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.session_token, "envtoken");
	CHECK_EQ_INT(c.expires, 4071006245LL - 3600);

	/* half set: an error naming the missing variable, not a silent fallthrough */
	unsetenv("AWS_SECRET_ACCESS_KEY");
	CHECK_EQ_INT(get_once(NULL, &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(lfsfs_error_message(), "AWS_SECRET_ACCESS_KEY is not"));
	CHECK(has(tried.data, "env: AWS_ACCESS_KEY_ID set but AWS_SECRET_ACCESS_KEY unset"));
	/* empty counts as unset */
	setenv("AWS_ACCESS_KEY_ID", "", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(lfsfs_error_message(), "no aws credentials found"));
	lfsfs_buf_release(&tried);
}

static void write_profiles(void)
{
	char d[400], f[450];

	snprintf(d, sizeof(d), "%s/.aws", home);
	mkdir(d, 0700);
	snprintf(f, sizeof(f), "%s/credentials", d);
	put_file(f,
		 "# a comment\n"
		 "; another comment\n"
		 "\n"
		 "[default]\n"
		 "aws_access_key_id = AKIADEFAULT\n"
		 "  aws_secret_access_key=defaultsecret   \n"
		 "\n"
		 "[ other ]\r\n"
		 "AWS_ACCESS_KEY_ID\t=\tAKIAOTHER  # inline comment\r\n"
		 "aws_secret_access_key = other/secret+#x\r\n"
		 "aws_session_token = othertoken\r\n"
		 "[profile wrongfile]\n"
		 "aws_access_key_id = AKIANOTHERE\n"
		 "aws_secret_access_key = nope\n"
		 "[halfkeys]\n"
		 "aws_access_key_id = AKIAHALF\n");
	snprintf(f, sizeof(f), "%s/config", d);
	put_file(f,
		 "[default]\n"
		 "region = eu-central-1\n"
		 "s3 =\n"
		 "  region = nested-not-me\n"
		 "  max_concurrent_requests = 4\n"
		 "[profile other]\n"
		 "region = ap-south-1 ; comment\n"
		 "[profile cfgonly]\n"
		 "aws_access_key_id = AKIACFG\n"
		 "aws_secret_access_key = cfgsecret\n"
		 "[cfgonly-noprefix]\n"
		 "aws_access_key_id = AKIAIGNORED\n"
		 "aws_secret_access_key = ignored\n"
		 "[profile regiononly]\n"
		 "region = us-west-2\n"
		 "[profile chained]\n"
		 "role_arn = arn:aws:iam::123456789012:role/x\n"
		 "source_profile = default\n"
		 "[profile ssoish]\n"
		 "sso_session = corp\n"
		 "sso_account_id = 123\n");
}

static void test_profiles(void)
{
	struct lfsfs_buf tried = LFSFS_BUF_INIT(0);
	struct lfsfs_aws_cred c;
	char region[64], f[450];

	fprintf(stderr, "-- profiles\n");
	reset_env();
	write_profiles();
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, "AKIADEFAULT");
	CHECK_EQ_STR(c.secret_key, "defaultsecret");
	CHECK_EQ_STR(c.source, "profile 'default'");

	setenv("AWS_PROFILE", "other", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, "AKIAOTHER");
	CHECK_EQ_STR(c.secret_key, "other/secret+#x");
	CHECK_EQ_STR(c.session_token, "othertoken");
	CHECK_EQ_STR(c.source, "profile 'other'");

	/* the chain's configured profile beats AWS_PROFILE */
	CHECK_EQ_INT(get_once("cfgonly", &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, "AKIACFG");
	CHECK_EQ_STR(c.source, "profile 'cfgonly'");

	/* "[x]" without "profile " is not a profile in the config file, and
	 * "[profile x]" is not one in the credentials file */
	CHECK_EQ_INT(get_once("cfgonly-noprefix", &c, NULL), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(lfsfs_error_message(), "profile 'cfgonly-noprefix' not found"));
	CHECK_EQ_INT(get_once("wrongfile", &c, NULL), -LFSFS_ECREDENTIALS_MISSING);

	/* a named profile that does not exist is an error */
	CHECK_EQ_INT(get_once("nope", &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(lfsfs_error_message(), "profile 'nope' not found in '"));
	CHECK(has(lfsfs_error_message(), "check the configured profile"));
	CHECK(has(tried.data, "profile 'nope': not found"));

	/* half a key pair */
	CHECK_EQ_INT(get_once("halfkeys", &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(tried.data, "profile 'halfkeys': only one of"));
	CHECK(has(lfsfs_error_message(), "has aws_access_key_id but not aws_secret_access_key"));

	/* a profile with only a region: the chain goes on */
	CHECK_EQ_INT(get_once("regiononly", &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(tried.data, "profile 'regiononly': no credentials in '"));
	CHECK(has(tried.data, "imds: disabled"));

	/* unsupported shapes say what to do instead */
	CHECK_EQ_INT(get_once("chained", &c, NULL), -LFSFS_EUNSUPPORTED);
	CHECK(has(lfsfs_error_message(), "credential_process = aws configure export-credentials"));
	CHECK_EQ_INT(get_once("ssoish", &c, NULL), -LFSFS_EUNSUPPORTED);
	CHECK(has(lfsfs_error_message(), "sso"));

	/* env beats the profile */
	setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
	CHECK_EQ_INT(get_once("other", &c, NULL), 0);
	CHECK_EQ_STR(c.source, "env");
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");

	/* AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE move the files */
	path_in(f, sizeof(f), "alt-credentials");
	put_file(f, "[default]\naws_access_key_id=AKIAALT\naws_secret_access_key=alt\n");
	setenv("AWS_SHARED_CREDENTIALS_FILE", f, 1);
	unsetenv("AWS_PROFILE");
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, "AKIAALT");
	unsetenv("AWS_SHARED_CREDENTIALS_FILE");

	/* regions */
	lfsfs_aws_region(NULL, region, sizeof(region));
	CHECK_EQ_STR(region, "eu-central-1");
	lfsfs_aws_region("other", region, sizeof(region));
	CHECK_EQ_STR(region, "ap-south-1");
	setenv("AWS_PROFILE", "regiononly", 1);
	lfsfs_aws_region(NULL, region, sizeof(region));
	CHECK_EQ_STR(region, "us-west-2");
	lfsfs_aws_region("absent", region, sizeof(region));
	CHECK_EQ_STR(region, "");
	setenv("AWS_DEFAULT_REGION", "sa-east-1", 1);
	lfsfs_aws_region("other", region, sizeof(region));
	CHECK_EQ_STR(region, "sa-east-1");
	setenv("AWS_REGION", "us-east-2", 1);
	lfsfs_aws_region("other", region, sizeof(region));
	CHECK_EQ_STR(region, "us-east-2");
	lfsfs_buf_release(&tried);
}

static void test_credential_process(void)
{
	struct lfsfs_aws_chain ch;
	struct lfsfs_aws_cred c;
	char good[400], bad[400], junk[400], nov[400], count[400], cfg[450], exp[32];

	fprintf(stderr, "-- credential_process\n");
	reset_env();
	write_profiles();
	path_in(good, sizeof(good), "proc-good.sh");
	path_in(bad, sizeof(bad), "proc-bad.sh");
	path_in(junk, sizeof(junk), "proc-junk.sh");
	path_in(nov, sizeof(nov), "proc-nov.sh");
	path_in(count, sizeof(count), "proc-count");
	iso_in(exp, sizeof(exp), 60);   /* inside the refresh margin */
	put_file(count, "0\n");
	put_file(good,
		 "n=$(cat '%s'); n=$((n + 1)); echo $n > '%s'\n"
		 "printf '{\"Version\": 1, \"AccessKeyId\": \"AKIAPROC%%d\", "
		 "\"SecretAccessKey\": \"procsecret\", \"SessionToken\": \"proctoken\", "
		 "\"Expiration\": \"%s\"}\\n' $n\n",
		 count, count, exp);
	put_file(bad, "echo 'boom: no sso session' >&2\nexit 3\n");
	put_file(junk, "echo 'not json'\n");
	put_file(nov, "echo '{\"AccessKeyId\": \"a\", \"SecretAccessKey\": \"b\"}'\n");
	snprintf(cfg, sizeof(cfg), "%s/.aws/config", home);
	put_file(cfg,
		 "[profile proc]\ncredential_process = /bin/sh '%s'\n"
		 "[profile bad]\ncredential_process = /bin/sh %s\n"
		 "[profile junk]\ncredential_process = /bin/sh %s\n"
		 "[profile nov]\ncredential_process = /bin/sh %s\n"
		 "[profile missing]\ncredential_process = /nonexistent/helper --x\n",
		 good, bad, junk, nov);

	lfsfs_aws_chain_init(&ch, net, "proc");
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, "AKIAPROC1");
	CHECK_EQ_STR(c.secret_key, "procsecret");
	CHECK_EQ_STR(c.session_token, "proctoken");
	CHECK_EQ_STR(c.source, "credential_process");
	CHECK(c.expires > time(NULL) + 30 && c.expires <= time(NULL) + 61);
	/* expires within 5 minutes: the next get runs the process again */
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, "AKIAPROC2");
	lfsfs_aws_chain_release(&ch);

	CHECK_EQ_INT(get_once("bad", &c, NULL), -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(has(lfsfs_error_message(),
		  "credential_process of profile 'bad': exited with status 3: boom: no sso session"));
	CHECK_EQ_INT(get_once("junk", &c, NULL), -LFSFS_EPARSE);
	CHECK(has(lfsfs_error_message(), "not a JSON object"));
	CHECK_EQ_INT(get_once("nov", &c, NULL), -LFSFS_EPARSE);
	CHECK(has(lfsfs_error_message(), "\"Version\": 1"));
	CHECK_EQ_INT(get_once("missing", &c, NULL), -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(has(lfsfs_error_message(), "exited with status 127"));
}

static void test_web_identity(void)
{
	struct lfsfs_buf tried = LFSFS_BUF_INIT(0);
	struct lfsfs_aws_cred c;
	char tok[400], url[200], cfg[450];

	fprintf(stderr, "-- web identity\n");
	reset_env();
	path_in(tok, sizeof(tok), "web-token");
	put_file(tok, "web-id-token\n");
	local_url(url, sizeof(url), "/sts");
	setenv("AWS_ENDPOINT_URL_STS", url, 1);
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tok, 1);
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/lfsfs", 1);
	setenv("AWS_ROLE_SESSION_NAME", "unit test", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK(has(c.access_key, "ASIASTS"));
	CHECK(has(c.secret_key, "sts-secret-"));
	CHECK(has(c.session_token, "sts-session-token-"));
	CHECK(has(c.session_token, "&x"));   /* &amp; decoded */
	CHECK_EQ_STR(c.source, "web identity");
	CHECK(c.expires > time(NULL) + 3500);

	/* only one of the two variables: skipped, and said so */
	unsetenv("AWS_ROLE_ARN");
	CHECK_EQ_INT(get_once(NULL, &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(tried.data, "web identity: AWS_ROLE_ARN unset"));
	setenv("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/lfsfs", 1);

	/* STS rejects the token */
	put_file(tok, "a-wrong-token");
	CHECK_EQ_INT(get_once(NULL, &c, NULL), -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(has(lfsfs_error_message(), "HTTP 400 InvalidIdentityToken: The token is not valid"));
	CHECK(!strstr(lfsfs_error_message(), "a-wrong-token"));
	put_file(tok, "web-id-token");

	/* unreadable token file */
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), -ENOENT);
	CHECK(has(lfsfs_error_message(), "cannot read token file '/nonexistent/token'"));
	setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tok, 1);

	/* AWS_ENDPOINT_URL is the fallback endpoint */
	unsetenv("AWS_ENDPOINT_URL_STS");
	local_url(url, sizeof(url), "/");
	setenv("AWS_ENDPOINT_URL", url, 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.source, "web identity");

	/* the profile beats web identity */
	write_profiles();
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.source, "profile 'default'");

	/* role_arn + web_identity_token_file inside a profile */
	unsetenv("AWS_WEB_IDENTITY_TOKEN_FILE");
	unsetenv("AWS_ROLE_ARN");
	snprintf(cfg, sizeof(cfg), "%s/.aws/config", home);
	put_file(cfg, "[profile wi]\nrole_arn = arn:aws:iam::1:role/r\n"
		      "web_identity_token_file = %s\n", tok);
	CHECK_EQ_INT(get_once("wi", &c, NULL), 0);
	CHECK(has(c.access_key, "ASIASTS"));
	CHECK_EQ_STR(c.source, "web identity");
	lfsfs_buf_release(&tried);
}

static void test_ecs(void)
{
	struct lfsfs_aws_cred c;
	char url[200], tokf[400];

	fprintf(stderr, "-- ecs\n");
	reset_env();
	local_url(url, sizeof(url), "");
	setenv("LFSFS_ECS_ENDPOINT", url, 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/ecs/v2/credentials/abc", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-secret-token", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK(has(c.access_key, "ASIAECS"));
	CHECK(has(c.session_token, "ecs-session-token-"));
	CHECK_EQ_STR(c.source, "ecs");
	CHECK(c.expires > time(NULL) + 3500);

	/* the Authorization header is checked */
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "wrong", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), -LFSFS_ESOURCE_NOT_ACCESSIBLE);
	CHECK(has(lfsfs_error_message(), "HTTP 401; check AWS_CONTAINER_AUTHORIZATION_TOKEN"));
	/* the token file wins over the variable */
	path_in(tokf, sizeof(tokf), "ecs-token");
	put_file(tokf, "ecs-secret-token\n");
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", tokf, 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.source, "ecs");
	unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");

	/* full URI: loopback http is fine, another http host is not */
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	local_url(url, sizeof(url), "/ecs/full");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.source, "ecs");
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://192.0.2.1/creds", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), -EINVAL);
	CHECK(has(lfsfs_error_message(), "neither https nor a loopback"));
	setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);

	/* web identity beats ECS */
	{
		char tok[400], sts[200];
		path_in(tok, sizeof(tok), "web-token");
		put_file(tok, "web-id-token\n");
		local_url(sts, sizeof(sts), "/sts");
		setenv("AWS_ENDPOINT_URL_STS", sts, 1);
		setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tok, 1);
		setenv("AWS_ROLE_ARN", "arn:aws:iam::1:role/r", 1);
		CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
		CHECK_EQ_STR(c.source, "web identity");
	}
}

static void test_imds(void)
{
	struct lfsfs_buf tried = LFSFS_BUF_INIT(0);
	struct lfsfs_aws_chain ch;
	struct lfsfs_aws_cred c, first;
	char url[200];

	fprintf(stderr, "-- imds\n");
	reset_env();
	unsetenv("AWS_EC2_METADATA_DISABLED");
	local_url(url, sizeof(url), "/");
	setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url, 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK(has(c.access_key, "ASIAIMDS"));
	CHECK(has(c.session_token, "imds-session-token-"));
	CHECK_EQ_STR(c.source, "imds");

	/* no role attached */
	control("{\"imds_role\": \"\"}");
	CHECK_EQ_INT(get_once(NULL, &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(tried.data, "imds: no IAM role attached to the instance"));
	control("{}");

	/* ECS beats IMDS */
	local_url(url, sizeof(url), "");
	setenv("LFSFS_ECS_ENDPOINT", url, 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/ecs/x", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-secret-token", 1);
	CHECK_EQ_INT(get_once(NULL, &c, NULL), 0);
	CHECK_EQ_STR(c.source, "ecs");
	unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");

	/* caching, expiry refresh, invalidate */
	lfsfs_aws_chain_init(&ch, net, NULL);
	control("{\"imds_expire\": 60}");
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &first, NULL), 0);
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &c, NULL), 0);
	CHECK(strcmp(c.access_key, first.access_key) != 0);     /* refetched */
	control("{\"imds_expire\": 3600}");
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &first, NULL), 0);
	CHECK(strcmp(c.access_key, first.access_key) != 0);     /* refetched */
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, first.access_key);           /* cached */
	lfsfs_aws_chain_invalidate(&ch);
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &c, NULL), 0);
	CHECK(strcmp(c.access_key, first.access_key) != 0);     /* refetched */

	/* a failed refresh keeps a credential that has not expired yet */
	lfsfs_aws_chain_invalidate(&ch);
	control("{\"imds_expire\": 240}");
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &first, NULL), 0);
	control("{\"imds_role\": \"\"}");
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &c, NULL), 0);
	CHECK_EQ_STR(c.access_key, first.access_key);
	/* but not after invalidate */
	lfsfs_aws_chain_invalidate(&ch);
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &c, NULL), -LFSFS_ECREDENTIALS_MISSING);
	control("{}");
	lfsfs_aws_chain_release(&ch);

	/* disabled */
	setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
	CHECK_EQ_INT(get_once(NULL, &c, &tried), -LFSFS_ECREDENTIALS_MISSING);
	CHECK(has(tried.data, "imds: disabled"));
	lfsfs_buf_release(&tried);
}

static void test_ecs_refresh(void)
{
	struct lfsfs_aws_chain ch;
	struct lfsfs_aws_cred a, b;
	char url[200];

	fprintf(stderr, "-- ecs refresh\n");
	reset_env();
	local_url(url, sizeof(url), "");
	setenv("LFSFS_ECS_ENDPOINT", url, 1);
	setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/ecs/x", 1);
	setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ecs-secret-token", 1);
	control("{\"ecs_expire\": 60}");
	lfsfs_aws_chain_init(&ch, net, NULL);
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &a, NULL), 0);
	CHECK_EQ_INT(lfsfs_aws_chain_get(&ch, &b, NULL), 0);
	CHECK(strcmp(a.access_key, b.access_key) != 0);
	lfsfs_aws_chain_release(&ch);
	control("{}");
}

struct worker {
	struct lfsfs_aws_chain *ch;
	int failures;
	char key[128];
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct lfsfs_aws_cred c;

	for (int i = 0; i < 50; i++) {
		if (lfsfs_aws_chain_get(w->ch, &c, NULL) || strcmp(c.access_key, w->key))
			w->failures++;
		if (i % 10 == 9)
			lfsfs_aws_chain_invalidate(w->ch);
	}
	return NULL;
}

static void test_threads(void)
{
	struct lfsfs_aws_chain ch;
	struct worker w[8];
	pthread_t t[8];

	fprintf(stderr, "-- threads\n");
	reset_env();
	setenv("AWS_ACCESS_KEY_ID", "AKIATHREADS", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
	lfsfs_aws_chain_init(&ch, net, NULL);
	for (int i = 0; i < 8; i++) {
		w[i].ch = &ch;
		w[i].failures = 0;
		snprintf(w[i].key, sizeof(w[i].key), "AKIATHREADS");
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_INT(w[i].failures, 0);
	}
	lfsfs_aws_chain_release(&ch);
}

int main(void)
{
	const char *why;

	snprintf(tmp, sizeof(tmp), "/tmp/lfsfs-aws-creds-XXXXXX");
	if (!mkdtemp(tmp)) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(home, sizeof(home), "%s/home", tmp);
	mkdir(home, 0700);
	path_in(ctl_path, sizeof(ctl_path), "control.json");
	put_file(ctl_path, "{}\n");
	if ((why = start_server())) {
		printf("skip: %s\n", why);
		return 77;
	}
	if (lfsfs_net_new(&net)) {
		stop_server();
		fprintf(stderr, "cannot start the network engine\n");
		return 1;
	}
	lfsfs_net_set_backoff_ms(net, 10);

	test_missing();
	test_env();
	test_profiles();
	test_credential_process();
	test_web_identity();
	test_ecs();
	test_imds();
	test_ecs_refresh();
	test_threads();

	lfsfs_net_free(net);
	stop_server();
	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
		if (system(cmd))
			fprintf(stderr, "cannot remove %s\n", tmp);
	}
	return TEST_RESULT();
}
