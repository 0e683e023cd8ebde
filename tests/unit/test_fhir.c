/* Unit tests for the FHIR DocumentReference generator (src/meta/fhir.c). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lfsfs/error.h"
#include "meta/fhir.h"
#include "test.h"

#define OID "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393"
#define OID_UPPER "4D7A214614AB2935C943F9E0FF69D22EADBB8F32B1258DAAA5E2CA24D17E2393"

static char root[] = "/tmp/lfsfs-test-fhir-XXXXXX";

/* ---------------------------------------------------------------- helpers */

static void put(const char *path, const char *data)
{
	FILE *f = fopen(path, "w");

	CHECK(f != NULL);
	if (!f)
		return;
	fputs(data, f);
	fclose(f);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	b = calloc(1, (size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	return b;
}

/* Skip reports: "path|why" lines. */
static char skips[16384];

static void on_skip(const char *path, const char *why, void *ctx)
{
	size_t n = strlen(skips);

	(*(int *)ctx)++;
	snprintf(skips + n, sizeof(skips) - n, "%s|%s\n", path, why);
}

static int skipped(const char *path)
{
	char needle[512];

	snprintf(needle, sizeof(needle), "%s|", path);
	for (const char *s = skips; (s = strstr(s, needle)); s++)
		if (s == skips || s[-1] == '\n')
			return 1;
	return 0;
}

/* Object with only the required fields. */
static struct lfsfs_fhir_object obj(const char *path, const char *url, uint64_t size)
{
	struct lfsfs_fhir_object o;

	memset(&o, 0, sizeof(o));
	o.path = (char *)path;
	o.url = (char *)url;
	o.size = size;
	return o;
}

/* Render o and parse it back; the JSON text goes to *text if non-NULL. */
static cJSON *render(const struct lfsfs_fhir_object *o, char **text)
{
	char *t = NULL;
	cJSON *j;

	CHECK_EQ_INT(lfsfs_fhir_render(o, &t), 0);
	if (!t)
		return NULL;
	CHECK(strchr(t, '\n') == NULL); /* NDJSON: one line */
	CHECK_EQ_INT(lfsfs_fhir_check(t), 0);
	if (lfsfs_fhir_check(t))
		fprintf(stderr, "  check: %s\n  json: %s\n", lfsfs_error_message(), t);
	j = cJSON_Parse(t);
	CHECK(j != NULL);
	if (text)
		*text = t;
	else
		free(t);
	return j;
}

static const cJSON *get(const cJSON *j, const char *path)
{
	/* "a.b.0.c": members and array indexes */
	char tok[128];

	while (j && *path) {
		size_t n = strcspn(path, ".");

		snprintf(tok, sizeof(tok), "%.*s", (int)n, path);
		path += n + (path[n] == '.');
		if (*tok >= '0' && *tok <= '9')
			j = cJSON_GetArrayItem(j, (int)strtol(tok, NULL, 10));
		else
			j = cJSON_GetObjectItemCaseSensitive(j, tok);
	}
	return j;
}

static const char *str(const cJSON *j, const char *path)
{
	const cJSON *it = get(j, path);

	return cJSON_IsString(it) ? it->valuestring : NULL;
}

/* The valueX of the attachment extension with this url, or NULL. */
static const cJSON *ext(const cJSON *j, const char *url)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, get(j, "content.0.attachment.extension"))
	{
		const char *u = str(e, "url");

		if (u && !strcmp(u, url))
			return e;
	}
	return NULL;
}

/* ---------------------------------------------------------------- tests */

static void test_content_types(void)
{
	static const struct {
		const char *path, *type;
	} cases[] = {
		{ "data/x.bam", "application/octet-stream" },
		{ "data/x.BAM", "application/octet-stream" },
		{ "x.cram", "application/octet-stream" },
		{ "x.bam.bai", "application/octet-stream" },
		{ "calls/s1.vcf", "text/plain" },
		{ "calls/s1.vcf.gz", "application/gzip" },
		{ "calls/s1.VCF.GZ", "application/gzip" },
		{ "calls/s1.vcf.bgz", "application/gzip" },
		{ "r/a.fastq.gz", "application/gzip" },
		{ "r/a.fastq", "text/plain" },
		{ "r/a.fq", "text/plain" },
		{ "regions.bed", "text/plain" },
		{ "notes.txt", "text/plain" },
		{ "t.csv", "text/csv" },
		{ "t.tsv", "text/tab-separated-values" },
		{ "m.json", "application/json" },
		{ "r.pdf", "application/pdf" },
		{ "i.png", "image/png" },
		{ "i.jpg", "image/jpeg" },
		{ "i.JPEG", "image/jpeg" },
		{ "s.tif", "image/tiff" },
		{ "s.tiff", "image/tiff" },
		{ "ct/0001.dcm", "application/dicom" },
		{ "a.gz", "application/gzip" },
		{ "m.h5", "application/x-hdf5" },
		{ "m.hdf5", "application/x-hdf5" },
		{ "t.parquet", "application/vnd.apache.parquet" },
		{ "a.zst", "application/zstd" },
		/* no or unknown extension */
		{ "README", "application/octet-stream" },
		{ "dir.d/README", "application/octet-stream" },
		{ ".bam", "application/octet-stream" },
		{ "d/.hidden", "application/octet-stream" },
		{ "x.", "application/octet-stream" },
		{ "x.unknownext", "application/octet-stream" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		CHECK_EQ_STR(lfsfs_fhir_content_type(cases[i].path), cases[i].type);
}

static int id_syntax_ok(const char *id)
{
	size_t n = strlen(id);

	if (n < 1 || n > 64)
		return 0;
	for (; *id; id++)
		if (!((*id >= 'A' && *id <= 'Z') || (*id >= 'a' && *id <= 'z') ||
		      (*id >= '0' && *id <= '9') || *id == '-' || *id == '.'))
			return 0;
	return 1;
}

static void test_ids(void)
{
	char a[LFSFS_FHIR_ID_LEN + 1], b[LFSFS_FHIR_ID_LEN + 1];

	/* Values from python: uuid.uuid5(uuid.UUID(LFSFS_FHIR_ID_NAMESPACE), path) */
	CHECK_EQ_INT(lfsfs_fhir_id("data/foo.vcf", a), 0);
	CHECK_EQ_STR(a, "d6ce1134-ad06-5292-a5ec-128bd16b375a");
	CHECK_EQ_INT(lfsfs_fhir_id("a", a), 0);
	CHECK_EQ_STR(a, "4436c8f7-a7aa-5267-9bfb-59570fd9025e");
	CHECK_EQ_INT(lfsfs_fhir_id("data/na\xc3\xafve \"q\" & <t>.vcf.gz", a), 0);
	CHECK_EQ_STR(a, "8e4ab5f8-88a8-53be-8827-4cfb00c72607");
	CHECK(id_syntax_ok(a));
	CHECK_EQ_INT(strlen(a), LFSFS_FHIR_ID_LEN);
	CHECK_EQ_INT(a[14], '5');             /* version 5 */
	CHECK(strchr("89ab", a[19]) != NULL); /* RFC 4122 variant */

	/* deterministic, and different paths differ */
	CHECK_EQ_INT(lfsfs_fhir_id("data/foo.vcf", a), 0);
	CHECK_EQ_INT(lfsfs_fhir_id("data/foo.vcf", b), 0);
	CHECK_EQ_STR(a, b);
	CHECK_EQ_INT(lfsfs_fhir_id("data/foo.vcF", b), 0);
	CHECK(strcmp(a, b) != 0);
	CHECK(id_syntax_ok(b));
}

static void test_references(void)
{
	static const char *const subj[] = { "Patient", "Group", "Practitioner", "Device", NULL };
	static const char *const spec[] = { "Specimen", NULL };
	const char *why = NULL;
	char *r = NULL;

	CHECK_EQ_INT(lfsfs_fhir_reference("1234", "Patient", subj, &r, &why), 0);
	CHECK_EQ_STR(r, "Patient/1234");
	free(r);
	CHECK_EQ_INT(lfsfs_fhir_reference("Patient/1234", "Patient", subj, &r, &why), 0);
	CHECK_EQ_STR(r, "Patient/1234");
	free(r);
	CHECK_EQ_INT(lfsfs_fhir_reference("Group/cohort-1", "Patient", subj, &r, &why), 0);
	CHECK_EQ_STR(r, "Group/cohort-1");
	free(r);
	CHECK_EQ_INT(lfsfs_fhir_reference("Patient/p.1/_history/2", "Patient", subj, &r, &why), 0);
	CHECK_EQ_STR(r, "Patient/p.1/_history/2");
	free(r);
	CHECK_EQ_INT(lfsfs_fhir_reference("https://fhir.example.org/r4/Patient/9", "Patient", subj,
	                                  &r, &why),
	             0);
	CHECK_EQ_STR(r, "https://fhir.example.org/r4/Patient/9");
	free(r);
	CHECK_EQ_INT(lfsfs_fhir_reference("urn:uuid:0b3f1ad3-6c0e-4bb8-9f4a-1c2d3e4f5a6b",
	                                  "Patient", subj, &r, &why),
	             0);
	free(r);
	CHECK_EQ_INT(lfsfs_fhir_reference("XYZ", "Specimen", spec, &r, &why), 0);
	CHECK_EQ_STR(r, "Specimen/XYZ");
	free(r);

	/* wrong type, malformed */
	r = NULL;
	CHECK_EQ_INT(lfsfs_fhir_reference("Observation/1", "Patient", subj, &r, &why), -EINVAL);
	CHECK(r == NULL);
	CHECK(why && strstr(why, "type"));
	CHECK_EQ_INT(lfsfs_fhir_reference("Patient/1", "Specimen", spec, &r, &why), -EINVAL);
	CHECK_EQ_INT(lfsfs_fhir_reference("Patient/", "Patient", subj, &r, &why), -EINVAL);
	CHECK_EQ_INT(lfsfs_fhir_reference("Patient/a b", "Patient", subj, &r, &why), -EINVAL);
	CHECK_EQ_INT(lfsfs_fhir_reference("John Smith", "Patient", subj, &r, &why), -EINVAL);
	CHECK_EQ_INT(lfsfs_fhir_reference("patient/1", "Patient", subj, &r, &why), -EINVAL);
	CHECK_EQ_INT(lfsfs_fhir_reference("Patient/1/extra", "Patient", subj, &r, &why), -EINVAL);
	CHECK_EQ_INT(lfsfs_fhir_reference("urn:uuid:nope", "Patient", subj, &r, &why), -EINVAL);
	CHECK_EQ_INT(lfsfs_fhir_reference("https://h/Patient", "Patient", subj, &r, &why), -EINVAL);
	{
		char id65[66];

		memset(id65, 'a', 65);
		id65[65] = '\0';
		CHECK_EQ_INT(lfsfs_fhir_reference(id65, "Patient", subj, &r, &why), -EINVAL);
		id65[64] = '\0'; /* 64 is the limit */
		CHECK_EQ_INT(lfsfs_fhir_reference(id65, "Patient", subj, &r, &why), 0);
		CHECK(r && strlen(r) == 8 + 64);
		free(r);
	}
}

static void test_render_full(void)
{
	struct lfsfs_fhir_object o = obj("data/foo.vcf", "s3://my-bucket/data/foo.vcf", 12345678);
	char *text = NULL;
	cJSON *j;

	memcpy(o.sha256, OID, 65);
	o.etag = "\"abc123etag\"";
	o.md5 = "0cc175b9c0f1b6a831c399e269772661";
	o.subject = "Patient/1234";
	o.specimen = "Specimen/XYZ";
	o.date = "2024-05-01T12:00:00Z";
	o.description = "germline calls";
	j = render(&o, &text);
	if (!j)
		return;
	CHECK_EQ_STR(str(j, "resourceType"), "DocumentReference");
	CHECK_EQ_STR(str(j, "id"), "d6ce1134-ad06-5292-a5ec-128bd16b375a");
	CHECK_EQ_STR(str(j, "status"), "current");
	CHECK_EQ_STR(str(j, "identifier.0.system"), LFSFS_FHIR_SID_PATH);
	CHECK_EQ_STR(str(j, "identifier.0.value"), "data/foo.vcf");
	CHECK_EQ_STR(str(j, "subject.reference"), "Patient/1234");
	CHECK_EQ_STR(str(j, "context.related.0.reference"), "Specimen/XYZ");
	CHECK_EQ_STR(str(j, "date"), "2024-05-01T12:00:00Z");
	CHECK_EQ_STR(str(j, "description"), "germline calls");
	CHECK_EQ_INT(cJSON_GetArraySize(get(j, "content")), 1);
	CHECK_EQ_STR(str(j, "content.0.attachment.url"), "s3://my-bucket/data/foo.vcf");
	CHECK_EQ_STR(str(j, "content.0.attachment.title"), "foo.vcf");
	CHECK_EQ_STR(str(j, "content.0.attachment.contentType"), "text/plain");
	CHECK(cJSON_IsNumber(get(j, "content.0.attachment.size")));
	CHECK(get(j, "content.0.attachment.size")->valuedouble == 12345678.0);
	/* sha256 is never put in hash (R4: base64 SHA-1) */
	CHECK(get(j, "content.0.attachment.hash") == NULL);
	CHECK_EQ_STR(str(ext(j, LFSFS_FHIR_EXT_SHA256), "valueString"), OID);
	CHECK_EQ_STR(str(ext(j, LFSFS_FHIR_EXT_ETAG), "valueString"), "\"abc123etag\"");
	CHECK_EQ_STR(str(ext(j, LFSFS_FHIR_EXT_MD5), "valueString"),
	             "0cc175b9c0f1b6a831c399e269772661");
	CHECK(ext(j, LFSFS_FHIR_EXT_SIZE) == NULL);
	/* element order follows the R4 definition; the text is stable */
	CHECK(text && !strncmp(text, "{\"resourceType\":\"DocumentReference\",\"id\":", 41));
	CHECK(text && strstr(text, "\"status\":\"current\",\"subject\":"));
	free(text);
	cJSON_Delete(j);

	/* minimal: no subject, context, extensions, date, description */
	o = obj("top.bin", "https://h/top.bin", 7);
	j = render(&o, NULL);
	if (!j)
		return;
	CHECK(get(j, "subject") == NULL);
	CHECK(get(j, "context") == NULL);
	CHECK(get(j, "date") == NULL);
	CHECK(get(j, "description") == NULL);
	CHECK(get(j, "content.0.attachment.extension") == NULL);
	CHECK_EQ_STR(str(j, "content.0.attachment.title"), "top.bin");
	CHECK_EQ_STR(str(j, "content.0.attachment.contentType"), "application/octet-stream");
	cJSON_Delete(j);

	/* sha1 -> hash; content_type override */
	o = obj("d/r.dat", "gs://b/r.dat", 1);
	memcpy(o.sha1_b64, "L9ThxnotKPzthJ7hu3bnORuT6xI=", 29);
	o.content_type = "application/vnd.example+json; charset=utf-8";
	j = render(&o, NULL);
	if (!j)
		return;
	CHECK_EQ_STR(str(j, "content.0.attachment.hash"), "L9ThxnotKPzthJ7hu3bnORuT6xI=");
	CHECK_EQ_STR(str(j, "content.0.attachment.contentType"),
	             "application/vnd.example+json; charset=utf-8");
	cJSON_Delete(j);
}

static void test_sizes(void)
{
	static const struct {
		uint64_t size;
		const char *text; /* exact JSON digits */
		int in_attachment;
	} cases[] = {
		{ 0, "0", 1 },
		{ 1, "1", 1 },
		{ 4294967295u, "4294967295", 1 },
		{ 4294967296u, "4294967296", 0 },
		{ 5368709120u, "5368709120", 0 },
		{ 9007199254740993u, "9007199254740993", 0 }, /* 2^53 + 1: not a double */
		{ UINT64_MAX, "18446744073709551615", 0 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct lfsfs_fhir_object o = obj("big.bam", "s3://b/big.bam", cases[i].size);
		char *text = NULL, want[96];
		cJSON *j = render(&o, &text);

		if (!j)
			continue;
		if (cases[i].in_attachment) {
			snprintf(want, sizeof(want), "\"size\":%s,", cases[i].text);
			CHECK(get(j, "content.0.attachment.size") != NULL);
			CHECK(ext(j, LFSFS_FHIR_EXT_SIZE) == NULL);
		} else {
			snprintf(want, sizeof(want), "\"valueDecimal\":%s}", cases[i].text);
			CHECK(get(j, "content.0.attachment.size") == NULL);
			CHECK(ext(j, LFSFS_FHIR_EXT_SIZE) != NULL);
		}
		CHECK(strstr(text, want) != NULL);
		if (!strstr(text, want))
			fprintf(stderr, "  wanted %s in %s\n", want, text);
		free(text);
		cJSON_Delete(j);
	}
}

static void test_escaping(void)
{
	/* quotes, ampersand, angle brackets, UTF-8, '%', '#', '?', spaces */
	static const char path[] = "data/na\xc3\xafve \"q\" & <t>.vcf.gz";
	static const char odd[] = "odd/\xe6\x97\xa5\xe6\x9c\xac #1 ?x=%41.txt";
	struct lfsfs_fhir_object o = obj(path, "s3://b/na%C3%AFve%20%22q%22.vcf.gz", 3);
	char *text = NULL;
	cJSON *j;

	o.description = "line one\nline \"two\"\twith tab and back\\slash";
	o.etag = "W/\"x\\y\"";
	j = render(&o, &text);
	if (!j)
		return;
	CHECK_EQ_STR(str(j, "identifier.0.value"), path);
	CHECK_EQ_STR(str(j, "content.0.attachment.title"), "na\xc3\xafve \"q\" & <t>.vcf.gz");
	CHECK_EQ_STR(str(j, "description"), o.description);
	CHECK_EQ_STR(str(ext(j, LFSFS_FHIR_EXT_ETAG), "valueString"), o.etag);
	CHECK_EQ_STR(str(j, "id"), "8e4ab5f8-88a8-53be-8827-4cfb00c72607");
	CHECK(text && strstr(text, "\\\"q\\\""));
	CHECK(text && strstr(text, "line one\\nline"));
	CHECK(text && strstr(text, "\\tw"));
	for (const char *p = text; p && *p; p++)
		CHECK((unsigned char)*p >= 0x20);
	free(text);
	cJSON_Delete(j);

	o = obj(odd, "https://h/odd", 1);
	j = render(&o, NULL);
	if (j) {
		CHECK_EQ_STR(str(j, "content.0.attachment.title"),
		             "\xe6\x97\xa5\xe6\x9c\xac #1 ?x=%41.txt");
		CHECK_EQ_STR(str(j, "content.0.attachment.contentType"), "text/plain");
	}
	cJSON_Delete(j);
}

static void test_check(void)
{
	static const char *const bad[] = {
		"[]",
		"{\"resourceType\":\"Patient\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		/* status missing, wrong */
		"{\"resourceType\":\"DocumentReference\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"final\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		/* id syntax */
		"{\"resourceType\":\"DocumentReference\",\"id\":\"a_b\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		/* content missing, empty, attachment missing */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\"}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\",\"content\":[]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\",\"content\":[{}]}",
		/* size over unsignedInt, negative, fractional */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"size\":4294967296}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"size\":-1}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"size\":1.5}}]}",
		/* hash must be base64 SHA-1 (20 bytes), not sha256 */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"hash\":\"" OID "\"}}]}",
		/* unknown elements, null, empty string */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\",\"sha256\":\"x\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\",\"md5\":\"x\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\",\"description\":null,"
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\",\"title\":\"\"}}]}",
		/* url with a space, contentType not a media type */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/a b\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"contentType\":\"vcf\"}}]}",
		/* subject type, malformed reference, related */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"subject\":{\"reference\":\"Specimen/1\"},"
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"subject\":{\"reference\":\"1234\"},"
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"context\":{\"related\":[{\"reference\":\"specimen x\"}]},"
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		/* extension: relative url, two values, no value */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"extension\":[{\"url\":\"sha256\","
		"\"valueString\":\"x\"}]}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"extension\":[{\"url\":\"https://x/y\","
		"\"valueString\":\"x\",\"valueDecimal\":1}]}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"extension\":[{\"url\":\"https://x/y\"}]}}]}",
		/* date without a time zone, date only */
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"date\":\"2024-05-01T12:00:00\",\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"date\":\"2024-05-01\",\"content\":[{\"attachment\":{\"url\":\"s3://b/k\"}}]}",
	};
	static const char *const good[] = {
		"{\"resourceType\":\"DocumentReference\",\"status\":\"current\","
		"\"content\":[{\"attachment\":{\"url\":\"s3://b/k\",\"size\":4294967295}}]}",
		"{\"resourceType\":\"DocumentReference\",\"status\":\"superseded\","
		"\"date\":\"2024-05-01T12:00:00.123+14:00\","
		"\"subject\":{\"reference\":\"https://f.example/fhir/Patient/1\"},"
		"\"context\":{\"related\":[{\"reference\":\"Specimen/S.1\"},"
		"{\"reference\":\"Observation/o-2\"}]},"
		"\"content\":[{\"attachment\":{\"hash\":\"L9ThxnotKPzthJ7hu3bnORuT6xI=\","
		"\"extension\":[{\"url\":\"https://x/y\",\"valueDecimal\":5368709120}]}}]}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = lfsfs_fhir_check(bad[i]);

		CHECK_EQ_INT(rc, -LFSFS_EPARSE);
		if (rc != -LFSFS_EPARSE)
			fprintf(stderr, "  accepted bad[%zu]: %s\n", i, bad[i]);
		else
			CHECK(strstr(lfsfs_error_message(), "invalid DocumentReference") != NULL);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		int rc = lfsfs_fhir_check(good[i]);

		CHECK_EQ_INT(rc, 0);
		if (rc)
			fprintf(stderr, "  refused good[%zu]: %s\n", i, lfsfs_error_message());
	}
}

static void test_load(void)
{
	char file[512];
	struct lfsfs_fhir_set *s = NULL;
	const struct lfsfs_fhir_object *o;
	int n = 0;

	snprintf(file, sizeof(file), "%s/metadata.json", root);
	put(file,
	    "{\n"
	    "  \"data/z.vcf\": {\"remote_url\": \"s3://bucket/z.vcf\", \"etag\": \"\\\"e1\\\"\",\n"
	    "                 \"size\": 1048576, \"md5\": \"m\", \"patient\": \"Patient/1234\",\n"
	    "                 \"specimen\": \"XYZ\", \"other\": {\"ignored\": true}},\n"
	    "  \"data/a.bam\": {\"remote_url\": \"https://h/a.bam\", \"size\": \"5368709120\",\n"
	    "                 \"sha256\": \"sha256:" OID_UPPER "\", \"patient\": \"p-9\",\n"
	    "                 \"sha1\": \"2FD4E1C67A2D28FCED849EE1BB76E7391B93EB12\"},\n"
	    "  \"./top//b.txt\": {\"remote_url\": \"gs://b/b.txt\", \"size\": 0, \"etag\": null,\n"
	    "                 \"sha256\": null, \"patient\": \"\", \"date\": \"2024-01-02T03:04:05+01:00\",\n"
	    "                 \"content_type\": \"text/x-custom\", \"description\": \"d\"},\n"
	    "  \"top/b.txt\": {\"remote_url\": \"gs://b/dup.txt\", \"size\": 1},\n"
	    "  \"no/url\": {\"size\": 1},\n"
	    "  \"bad/size\": {\"remote_url\": \"s3://b/x\", \"size\": -1},\n"
	    "  \"no/size\": {\"remote_url\": \"s3://b/x\"},\n"
	    "  \"bad/sha\": {\"remote_url\": \"s3://b/x\", \"size\": 1, \"sha256\": \"abc\"},\n"
	    "  \"bad/sha1\": {\"remote_url\": \"s3://b/x\", \"size\": 1, \"sha1\": \"" OID "\"},\n"
	    "  \"bad/patient\": {\"remote_url\": \"s3://b/x\", \"size\": 1,\n"
	    "                  \"patient\": \"Observation/1\"},\n"
	    "  \"bad/patient2\": {\"remote_url\": \"s3://b/x\", \"size\": 1, \"patient\": 12},\n"
	    "  \"bad/specimen\": {\"remote_url\": \"s3://b/x\", \"size\": 1,\n"
	    "                   \"specimen\": \"a specimen\"},\n"
	    "  \"bad/date\": {\"remote_url\": \"s3://b/x\", \"size\": 1, \"date\": \"2024-01-02\"},\n"
	    "  \"bad/ctype\": {\"remote_url\": \"s3://b/x\", \"size\": 1, \"content_type\": \"vcf\"},\n"
	    "  \"bad/url\": {\"remote_url\": \"s3://b/a b\", \"size\": 1},\n"
	    "  \"bad/desc\": {\"remote_url\": \"s3://b/x\", \"size\": 1, \"description\": \"a\\u0001\"},\n"
	    "  \"bad/utf8\xff\": {\"remote_url\": \"s3://b/x\", \"size\": 1},\n"
	    "  \"bad/value\": \"s3://b/x\",\n"
	    "  \"../escape\": {\"remote_url\": \"s3://b/x\", \"size\": 1},\n"
	    "  \".git/config\": {\"remote_url\": \"s3://b/x\", \"size\": 1}\n"
	    "}\n");
	skips[0] = '\0';
	CHECK_EQ_INT(lfsfs_fhir_load(file, &s, on_skip, &n), 0);
	if (!s)
		return;
	CHECK_EQ_INT(s->n, 3);
	CHECK_EQ_INT(n, 17);
	{
		static const char *const want[] = {
			"top/b.txt", "no/url",      "bad/size",     "no/size",      "bad/sha",
			"bad/sha1",  "bad/patient", "bad/patient2", "bad/specimen", "bad/date",
			"bad/ctype", "bad/url",     "bad/desc",     "bad/utf8\xff", "bad/value",
			"../escape", ".git/config",
		};
		for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
			CHECK(skipped(want[i]));
			if (!skipped(want[i]))
				fprintf(stderr, "  not skipped: %s\n", want[i]);
		}
	}
	CHECK(strstr(skips, "top/b.txt|duplicate path") != NULL);
	CHECK(strstr(skips, "no/url|missing or empty \"remote_url\"") != NULL);
	CHECK(strstr(skips, "bad/patient|\"patient\"") != NULL);
	if (s->n != 3)
		goto out;
	/* sorted, normalized */
	o = &s->objs[0];
	CHECK_EQ_STR(o->path, "data/a.bam");
	CHECK_EQ_INT(o->size, 5368709120ull);
	CHECK_EQ_STR(o->sha256, OID);
	CHECK_EQ_STR(o->sha1_b64, "L9ThxnotKPzthJ7hu3bnORuT6xI=");
	CHECK_EQ_STR(o->subject, "Patient/p-9");
	CHECK(o->specimen == NULL && o->etag == NULL);
	o = &s->objs[1];
	CHECK_EQ_STR(o->path, "data/z.vcf");
	CHECK_EQ_STR(o->etag, "\"e1\"");
	CHECK_EQ_STR(o->md5, "m");
	CHECK_EQ_STR(o->subject, "Patient/1234");
	CHECK_EQ_STR(o->specimen, "Specimen/XYZ");
	CHECK_EQ_STR(o->sha256, "");
	o = &s->objs[2];
	CHECK_EQ_STR(o->path, "top/b.txt");
	CHECK_EQ_STR(o->url, "gs://b/b.txt"); /* the first of the duplicates */
	CHECK_EQ_INT(o->size, 0);
	CHECK(o->etag == NULL && o->subject == NULL);
	CHECK_EQ_STR(o->date, "2024-01-02T03:04:05+01:00");
	CHECK_EQ_STR(o->content_type, "text/x-custom");
	CHECK_EQ_STR(o->description, "d");
out:
	lfsfs_fhir_set_free(s);
}

static void test_load_errors(void)
{
	char file[512];
	struct lfsfs_fhir_set *s = NULL;
	int n = 0;

	snprintf(file, sizeof(file), "%s/missing.json", root);
	CHECK_EQ_INT(lfsfs_fhir_load(file, &s, on_skip, &n), -ENOENT);
	CHECK(s == NULL);
	CHECK(strstr(lfsfs_error_message(), "missing.json") != NULL);

	/* malformed: the message names file:line:column */
	snprintf(file, sizeof(file), "%s/bad.json", root);
	put(file,
	    "{\n  \"a\": {\"remote_url\": \"s3://b/a\", \"size\": 1},\n  \"b\": {\"size\": ,}\n}\n");
	CHECK_EQ_INT(lfsfs_fhir_load(file, &s, on_skip, &n), -LFSFS_EPARSE);
	CHECK(s == NULL);
	CHECK(strstr(lfsfs_error_message(), "bad.json:3:") != NULL);
	CHECK(strstr(lfsfs_error_message(), "malformed json") != NULL);
	if (!strstr(lfsfs_error_message(), "bad.json:3:"))
		fprintf(stderr, "  message: %s\n", lfsfs_error_message());

	/* not an object at top level */
	put(file, "[1, 2]\n");
	CHECK_EQ_INT(lfsfs_fhir_load(file, &s, on_skip, &n), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "top level") != NULL);

	/* empty file, empty object */
	put(file, "");
	CHECK_EQ_INT(lfsfs_fhir_load(file, &s, on_skip, &n), -LFSFS_EPARSE);
	CHECK(strstr(lfsfs_error_message(), "bad.json:1:1") != NULL);
	put(file, "{}");
	CHECK_EQ_INT(lfsfs_fhir_load(file, &s, on_skip, &n), 0);
	CHECK(s && s->n == 0);
	lfsfs_fhir_set_free(s);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void test_write(void)
{
	struct lfsfs_fhir_object objs[3];
	struct lfsfs_fhir_set s = { objs, 3 };
	char out[512], dir[512], *a, *b;
	struct stat st;

	objs[0] = obj("a/1.vcf", "s3://b/1.vcf", 1);
	objs[1] = obj("a/2.bam", "s3://b/2.bam", 5368709120ull);
	objs[2] = obj("b", "s3://b/b", 0);
	snprintf(dir, sizeof(dir), "%s/w/deep/META", root);
	snprintf(out, sizeof(out), "%s/DocumentReference.ndjson", dir);
	CHECK_EQ_INT(lfsfs_fhir_write_file(&s, out), 0);
	CHECK_EQ_INT(stat(out, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0644);
	a = slurp(out);
	CHECK(a != NULL);
	if (a) {
		int lines = 0;

		for (const char *p = a; *p; p++)
			lines += *p == '\n';
		CHECK_EQ_INT(lines, 3);
		CHECK(a[strlen(a) - 1] == '\n');
		CHECK(strstr(a, "\"value\":\"a/1.vcf\"") < strstr(a, "\"value\":\"a/2.bam\""));
	}
	/* rerun: byte-identical, no temporary left behind, mode kept */
	CHECK_EQ_INT(chmod(out, 0664), 0);
	CHECK_EQ_INT(lfsfs_fhir_write_file(&s, out), 0);
	b = slurp(out);
	CHECK(a && b && !strcmp(a, b));
	CHECK_EQ_INT(count_entries(dir), 1);
	CHECK_EQ_INT(stat(out, &st), 0);
	CHECK_EQ_INT(st.st_mode & 0777, 0664);
	free(a);
	free(b);

	/* an empty set gives an empty file */
	s.n = 0;
	CHECK_EQ_INT(lfsfs_fhir_write_file(&s, out), 0);
	CHECK_EQ_INT(stat(out, &st), 0);
	CHECK_EQ_INT(st.st_size, 0);

	/* a directory in the way: error, nothing left behind */
	CHECK_EQ_INT(lfsfs_fhir_write_file(&s, dir), -EISDIR);
	CHECK_EQ_INT(count_entries(dir), 1);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

int main(void)
{
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	test_content_types();
	test_ids();
	test_references();
	test_render_full();
	test_sizes();
	test_escaping();
	test_check();
	test_load();
	test_load_errors();
	test_write();
	nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return TEST_RESULT();
}
