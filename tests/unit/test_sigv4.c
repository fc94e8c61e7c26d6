/* The SigV4 verifier: AWS's published test suite, requests captured from
 * boto3, the AWS CLI and the AWS SDK for JavaScript v3, and the errors a
 * wrong key, a stale clock, a tampered request or a mangled Authorization
 * header get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/sigv4.h"
#include "core/buf.h"
#include "core/codec.h"
#include "core/error.h"
#include "http/request.h"

/* The test suite's key, and the key the client requests were signed with. */
#define SUITE_KEY "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define CLIENT_KEY "AKIAMAYFLYEXAMPLE"
#define CLIENT_SECRET "mayfly/secret+KEY/example0123456789"
#define SUITE_DATE "20150830T123600Z"
#define SUITE_NOW_MS 1440938160000LL /* 2015-08-30T12:36:00Z */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define MISMATCH_MSG                                                                          \
    "The request signature we calculated does not match the signature you provided. Check " \
    "your AWS Secret Access Key and signing method. Consult the service documentation for "  \
    "details."

static auth_keys_t keys;

static int setup(void **state)
{
    mf_error_t err = MF_ERROR_INIT;
    return auth_keys_parse_list(&keys, SUITE_KEY ":" SUITE_SECRET "," CLIENT_KEY ":" CLIENT_SECRET,
                                &err);
}

static int teardown(void **state)
{
    auth_keys_release(&keys);
    return 0;
}

/* A request spelled out: headers as name, value pairs ending in NULL. */
#define MAX_HEADERS 16
typedef struct tcase {
    const char *method, *path, *query, *body;
    const char *hdr[2 * MAX_HEADERS + 1];
} tcase_t;

static int run_keys(const tcase_t *t, const auth_keys_t *k, const char *service, int64_t now_ms,
                    sigv4_result_t *res, mf_error_t *err)
{
    http_header_t headers[MAX_HEADERS];
    size_t n = 0;
    for (; t->hdr[2 * n]; n++)
        headers[n] = (http_header_t){ (char *)t->hdr[2 * n], (char *)t->hdr[2 * n + 1] };
    sigv4_request_t req = {
        .method = t->method,
        .path = t->path,
        .query = t->query,
        .headers = headers,
        .nheaders = n,
        .body = t->body,
        .body_len = t->body ? strlen(t->body) : 0,
    };
    int r = sigv4_verify(&req, service, k, now_ms, res, err);
    /* The status and the return value always agree. */
    assert_int_equal(r == 0, res->status == SIGV4_OK);
    assert_true(r == 0 || r == -EACCES);
    assert_int_equal(res->http_status, r == 0 ? 0 : 403);
    return r;
}

static int run(const tcase_t *t, const char *service, int64_t now_ms, sigv4_result_t *res,
               mf_error_t *err)
{
    return run_keys(t, &keys, service, now_ms, res, err);
}

static const char **find_header(tcase_t *t, const char *name)
{
    for (size_t i = 0; t->hdr[2 * i]; i++) {
        if (!strcasecmp(t->hdr[2 * i], name))
            return &t->hdr[2 * i + 1];
    }
    return NULL;
}

/* Signs t as a client would, independently of the verifier but over the
 * string to sign it reports: the Authorization header gets the suite key's
 * signature for scope ("20150830/us-east-1/lambda") and signed_headers. */
static void sign(tcase_t *t, const char *service, const char *scope, const char *signed_headers,
                 int64_t now_ms, char *out, size_t size)
{
    snprintf(out, size,
             "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/%s/aws4_request, SignedHeaders=%s, "
             "Signature=%064d",
             scope, signed_headers, 0);
    const char **authz = find_header(t, "Authorization");
    assert_non_null(authz);
    *authz = out;

    buf_t sts = BUF_INIT;
    sigv4_result_t res = { .string_to_sign = &sts };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(run(t, service, now_ms, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_MISMATCH);

    char date[9] = { 0 }, region[64] = { 0 }, svc[64] = { 0 };
    assert_int_equal(sscanf(scope, "%8[0-9]/%63[^/]/%63s", date, region, svc), 3);
    uint8_t a[CODEC_SHA256_LEN], b[CODEC_SHA256_LEN];
    const char *k = "AWS4" SUITE_SECRET;
    codec_hmac_sha256(a, k, strlen(k), date, strlen(date));
    codec_hmac_sha256(b, a, sizeof a, region, strlen(region));
    codec_hmac_sha256(a, b, sizeof b, svc, strlen(svc));
    codec_hmac_sha256(b, a, sizeof a, "aws4_request", 12);
    codec_hmac_sha256(a, b, sizeof b, sts.data, sts.len);
    char sig[CODEC_SHA256_HEX_LEN + 1];
    codec_hex(sig, a, sizeof a);
    buf_release(&sts);
    char *at = strstr(out, "Signature=");
    memcpy(at + 10, sig, CODEC_SHA256_HEX_LEN);
}

/* --- AWS's test suite ----------------------------------------------------- */

/* The SigV4 test suite as aws-c-auth carries it (tests/aws-signing-test-suite/
 * v4, the "normalize" cases, which are the non-S3 ones), with the X-Amz-Date
 * header the signer adds. creq and sts are its canonical request and string
 * to sign. The cases marked "classic" are from the older suite once
 * published on docs.aws.amazon.com (as @aws-sdk/signature-v4's fixture has
 * it), which signs the body without an x-amz-content-sha256 header. */
typedef struct suite_case {
    const char *name;
    tcase_t req;
    const char *signed_headers;
    const char *signature;
    const char *creq;
    const char *sts;
} suite_case_t;

#define SUITE_HOST "Host", "example.amazonaws.com"
#define SUITE_XDATE "X-Amz-Date", SUITE_DATE
#define STS_HEAD "AWS4-HMAC-SHA256\n" SUITE_DATE "\n20150830/us-east-1/service/aws4_request\n"
#define VANILLA_HEADERS "host:example.amazonaws.com\nx-amz-date:" SUITE_DATE "\n\nhost;x-amz-date\n"
#define STS_TOKEN                                                                              \
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxf" \
    "pSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQ" \
    "DYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+s" \
    "cqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

static const suite_case_t suite[] = {
    { "get-vanilla",
      { "GET", "/", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      "GET\n/\n\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63" },
    { "get-vanilla-query",
      { "GET", "/", NULL, NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      NULL, NULL },
    { "get-vanilla-empty-query-key",
      { "GET", "/", "Param1=value1", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb",
      "GET\n/\nParam1=value1\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab" },
    { "get-vanilla-query-order-key-case",
      { "GET", "/", "Param2=value2&Param1=value1", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
      "GET\n/\nParam1=value1&Param2=value2\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0" },
    { "get-vanilla-query-order-key (classic)",
      { "GET", "/", "Param1=value2&Param1=Value1", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
      "GET\n/\nParam1=Value1&Param1=value2\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89" },
    { "get-vanilla-query-order-value (classic)",
      { "GET", "/", "Param1=value2&Param1=value1", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
      "GET\n/\nParam1=value1&Param1=value2\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606" },
    { "get-vanilla-query-order-encoded",
      { "GET", "/", "Param-3=Value3&Param=Value2&%E1%88%B4=Value1", NULL,
        { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac",
      "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "868294f5c38bd141c4972a373a76654f1418a8e4fc18b2e7903ae45e8ae0ec71" },
    { "get-vanilla-query-unreserved",
      { "GET", "/",
        "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
        "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
      "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
      "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n" VANILLA_HEADERS
          EMPTY_SHA256,
      STS_HEAD "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177" },
    { "get-vanilla-utf8-query",
      { "GET", "/", "\341\210\264=bar", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
      "GET\n/\n%E1%88%B4=bar\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073" },
    { "get-header-key-duplicate",
      { "GET", "/", "", NULL,
        { SUITE_HOST, "My-Header1", "value2", "My-Header1", "value2", "My-Header1", "value1",
          SUITE_XDATE, NULL } },
      "host;my-header1;x-amz-date",
      "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
      "x-amz-date:" SUITE_DATE
      "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA256,
      STS_HEAD "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c" },
    { "get-header-value-multiline",
      { "GET", "/", "", NULL,
        { SUITE_HOST, "My-Header1", "value1\n  value2\n     value3", SUITE_XDATE, NULL } },
      "host;my-header1;x-amz-date",
      "cfd34249e4b1c8d6b91ef74165d41a32e5fab3306300901bb65a51a73575eefd",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1 value2 value3\n"
      "x-amz-date:" SUITE_DATE
      "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA256,
      STS_HEAD "e99419459a677bc11de234014be3c4e72c1ea5b454ceb58b613061f5d7a162e8" },
    { "get-header-value-order",
      { "GET", "/", "", NULL,
        { SUITE_HOST, "My-Header1", "value4", "My-Header1", "value1", "My-Header1", "value3",
          "My-Header1", "value2", SUITE_XDATE, NULL } },
      "host;my-header1;x-amz-date",
      "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\n"
      "x-amz-date:" SUITE_DATE
      "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA256,
      STS_HEAD "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86" },
    { "get-header-value-trim",
      { "GET", "/", "", NULL,
        { SUITE_HOST, "My-Header1", " value1", "My-Header2", " \"a   b   c\"", SUITE_XDATE,
          NULL } },
      "host;my-header1;my-header2;x-amz-date",
      "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
      "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
      "x-amz-date:" SUITE_DATE
      "\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY_SHA256,
      STS_HEAD "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7" },
    { "get-unreserved",
      { "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", "", NULL,
        { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
      "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\n" VANILLA_HEADERS
          EMPTY_SHA256,
      STS_HEAD "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9" },
    { "get-utf8",
      { "GET", "/\341\210\264", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85",
      "GET\n/%E1%88%B4\n\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102" },
    { "get-space-normalized",
      { "GET", "/example space/", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
      "GET\n/example%20space/\n\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86" },
    { "get-relative-normalized",
      { "GET", "/example/..", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      "GET\n/\n\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63" },
    { "get-relative-relative-normalized",
      { "GET", "/example1/example2/../..", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      NULL, NULL },
    { "get-slash-normalized",
      { "GET", "//", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      NULL, NULL },
    { "get-slash-dot-slash-normalized",
      { "GET", "/./", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
      NULL, NULL },
    { "get-slash-pointless-dot-normalized",
      { "GET", "/./example", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
      "GET\n/example\n\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702" },
    { "get-slashes-normalized",
      { "GET", "//example//", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
      "GET\n/example/\n\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015" },
    { "get-vanilla-with-session-token",
      { "GET", "/", "", NULL,
        { SUITE_HOST, SUITE_XDATE, "X-Amz-Security-Token",
          "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267", NULL } },
      "host;x-amz-date;x-amz-security-token",
      "07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8",
      "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:" SUITE_DATE
      "\nx-amz-security-token:6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267\n\n"
      "host;x-amz-date;x-amz-security-token\n" EMPTY_SHA256,
      STS_HEAD "067b36aa60031588cea4a4cde1f21215227a047690c72247f1d70b32fbbfad2b" },
    { "post-vanilla",
      { "POST", "/", "", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
      "POST\n/\n\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87" },
    { "post-vanilla-query",
      { "POST", "/", "Param1=value1", NULL, { SUITE_HOST, SUITE_XDATE, NULL } },
      "host;x-amz-date",
      "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
      "POST\n/\nParam1=value1\n" VANILLA_HEADERS EMPTY_SHA256,
      STS_HEAD "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd" },
    { "post-header-key-case",
      { "POST", "/", "", NULL,
        { "HOST", "example.amazonaws.com", "x-AMZ-date", SUITE_DATE, NULL } },
      "host;x-amz-date",
      "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
      NULL, NULL },
    { "post-header-key-sort",
      { "POST", "/", "", NULL, { SUITE_HOST, "My-Header1", "value1", SUITE_XDATE, NULL } },
      "host;my-header1;x-amz-date",
      "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
      "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nx-amz-date:" SUITE_DATE
      "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA256,
      STS_HEAD "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65" },
    { "post-header-value-case",
      { "POST", "/", "", NULL, { SUITE_HOST, "My-Header1", "VALUE1", SUITE_XDATE, NULL } },
      "host;my-header1;x-amz-date",
      "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
      NULL, NULL },
    { "post-sts-header-after",
      { "POST", "/", "", NULL,
        { SUITE_HOST, SUITE_XDATE, "X-Amz-Security-Token", STS_TOKEN, NULL } },
      "host;x-amz-date",
      "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
      NULL, NULL },
    { "post-sts-header-before",
      { "POST", "/", "", NULL,
        { SUITE_HOST, SUITE_XDATE, "X-Amz-Security-Token", STS_TOKEN, NULL } },
      "host;x-amz-date;x-amz-security-token",
      "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
      "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:" SUITE_DATE
      "\nx-amz-security-token:" STS_TOKEN "\n\nhost;x-amz-date;x-amz-security-token\n" EMPTY_SHA256,
      STS_HEAD "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6" },
    { "post-x-www-form-urlencoded",
      { "POST", "/", "", "Param1=value1",
        { "Content-Type", "application/x-www-form-urlencoded", SUITE_HOST, "Content-Length", "13",
          SUITE_XDATE, "X-Amz-Content-Sha256",
          "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e", NULL } },
      "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
      "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b",
      "POST\n/\n\ncontent-length:13\ncontent-type:application/x-www-form-urlencoded\n"
      "host:example.amazonaws.com\n"
      "x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\n"
      "x-amz-date:" SUITE_DATE "\n\n"
      "content-length;content-type;host;x-amz-content-sha256;x-amz-date\n"
      "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
      STS_HEAD "b1edd1d03544c25390e32085d55b57acc9a3961bb59415ff86c45c3d89d16cfb" },
    { "post-x-www-form-urlencoded-parameters",
      { "POST", "/", "", "Param1=value1",
        { "Content-Type", "application/x-www-form-urlencoded; charset=utf-8", SUITE_HOST,
          "Content-Length", "13", SUITE_XDATE, "X-Amz-Content-Sha256",
          "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e", NULL } },
      "content-length;content-type;host;x-amz-content-sha256;x-amz-date",
      "328d1b9eaadca9f5818ef05e8392801e091653bafec24fcab71e7344e7f51422",
      NULL,
      STS_HEAD "a89f1a5b53e37702ee6363ce1da3ce8f54386f3c8f352ae652153c2982a0bc4d" },
    { "post-x-www-form-urlencoded (classic)",
      { "POST", "/", "", "Param1=value1",
        { "Content-Type", "application/x-www-form-urlencoded", SUITE_HOST, SUITE_XDATE,
          "Content-Length", "13", NULL } },
      "content-type;host;x-amz-date",
      "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
      "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:example.amazonaws.com\n"
      "x-amz-date:" SUITE_DATE "\n\ncontent-type;host;x-amz-date\n"
      "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
      STS_HEAD "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281" },
    { "post-x-www-form-urlencoded-parameters (classic)",
      { "POST", "/", "", "Param1=value1",
        { "Content-Type", "application/x-www-form-urlencoded; charset=utf8", SUITE_HOST,
          SUITE_XDATE, "Content-Length", "13", NULL } },
      "content-type;host;x-amz-date",
      "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
      NULL, NULL },
};

static void test_aws_suite(void **state)
{
    for (size_t i = 0; i < sizeof suite / sizeof suite[0]; i++) {
        const suite_case_t *c = &suite[i];
        tcase_t t = c->req;
        char authz[512];
        snprintf(authz, sizeof authz,
                 "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/service/"
                 "aws4_request, SignedHeaders=%s, Signature=%s",
                 c->signed_headers, c->signature);
        size_t n = 0;
        while (t.hdr[2 * n])
            n++;
        t.hdr[2 * n] = "Authorization";
        t.hdr[2 * n + 1] = authz;
        t.hdr[2 * n + 2] = NULL;

        buf_t creq = BUF_INIT, sts = BUF_INIT;
        sigv4_result_t res = { .canonical_request = &creq, .string_to_sign = &sts };
        mf_error_t err = MF_ERROR_INIT;
        int r = run(&t, "service", SUITE_NOW_MS, &res, &err);
        if (r != 0)
            print_error("%s: %s\n%s\n---\n%s\n", c->name, err.msg, creq.data, sts.data);
        assert_int_equal(r, 0);
        if (c->creq)
            assert_string_equal(creq.data, c->creq);
        if (c->sts)
            assert_string_equal(sts.data, c->sts);
        assert_string_equal(res.access_key_id, SUITE_KEY);
        assert_string_equal(res.region, "us-east-1");
        assert_int_equal(res.signed_at_ms, SUITE_NOW_MS);
        assert_false(res.presigned);
        /* Only the dot-segment and double-slash cases change the path. */
        assert_int_equal(res.path_normalized,
                         strstr(c->name, "relative") != NULL || strstr(c->name, "slash") != NULL);

        /* The same request with the last hex digit of the signature off. */
        char *last = authz + strlen(authz) - 1;
        *last = *last == '0' ? '1' : '0';
        assert_int_equal(run(&t, "service", SUITE_NOW_MS, &res, &err), -EACCES);
        assert_int_equal(res.status, SIGV4_MISMATCH);
        assert_string_equal(res.error_type, "InvalidSignatureException");
        assert_string_equal(err.msg, MISMATCH_MSG);
        buf_release(&creq);
        buf_release(&sts);
    }
}

/* --- Requests real clients sent ------------------------------------------ */

/* The bytes a one-shot listener on 127.0.0.1 received from boto3 1.43.11
 * (botocore 1.43.11), aws-cli 1.45.11 and @aws-sdk/client-lambda 3.1162 on
 * Node 20, each given the listener as its endpoint URL and CLIENT_KEY as its
 * credentials; the presigned one is the URL boto3's generate_presigned_url
 * made, sent by hand. now_ms is a second and a half after each request's
 * X-Amz-Date. */
typedef struct client_case {
    const char *name;
    int64_t now_ms;
    const char *raw;
} client_case_t;

static const client_case_t clients[] = {
    { "boto3 Invoke, an ARN as the function name", 1795250596500LL,
      "POST /2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%"
      "3Afoo/invocations HTTP/1.1\r\n"
      "Host: 127.0.0.1:55175\r\n"
      "Accept-Encoding: identity\r\n"
      "User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v595 md/arc"
      "h#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Z,e,b,D,N cfg/retry-mode#legacy Boto"
      "core/1.43.11\r\n"
      "X-Amz-Date: 20261121T084315Z\r\n"
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/us-east-1/lamb"
      "da/aws4_request, SignedHeaders=host;x-amz-date, Signature=2bc9c63f4730858517b08e217b"
      "2419ed3fbc61e7926d602045dd52410534c00b\r\n"
      "amz-sdk-invocation-id: e8b7b704-b4bc-4179-9b85-8748558a7881\r\n"
      "amz-sdk-request: attempt=1\r\n"
      "Content-Length: 18\r\n"
      "\r\n"
      "{\"hello\": \"world\"}" },
    { "boto3 ListFunctions?MaxItems=2&Marker=x", 1795250596500LL,
      "GET /2015-03-31/functions?MaxItems=2&Marker=x HTTP/1.1\r\n"
      "Host: 127.0.0.1:54329\r\n"
      "Accept-Encoding: identity\r\n"
      "User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v595 md/arc"
      "h#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Z,e,b,D,N cfg/retry-mode#legacy Boto"
      "core/1.43.11\r\n"
      "X-Amz-Date: 20261121T084315Z\r\n"
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/us-east-1/lamb"
      "da/aws4_request, SignedHeaders=host;x-amz-date, Signature=6dcd047cd03352cf67c2777b82"
      "304b365111eea010a86cb87f21ff089480c571\r\n"
      "amz-sdk-invocation-id: 6e42a221-1adc-4ccb-ab26-ab612dbcc242\r\n"
      "amz-sdk-request: attempt=1\r\n"
      "\r\n" },
    { "boto3 ListFunctions, a Marker to encode", 1795250596500LL,
      "GET /2015-03-31/functions?Marker=x%20y%2Fz%3A%2B%3D%26~%25 HTTP/1.1\r\n"
      "Host: 127.0.0.1:40231\r\n"
      "Accept-Encoding: identity\r\n"
      "User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v595 md/arc"
      "h#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Z,e,b,D,N cfg/retry-mode#legacy Boto"
      "core/1.43.11\r\n"
      "X-Amz-Date: 20261121T084315Z\r\n"
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/us-east-1/lamb"
      "da/aws4_request, SignedHeaders=host;x-amz-date, Signature=d05d42615a63abc7b032ba094d"
      "a82ccd8f92f641c833efedf62ab74748832ace\r\n"
      "amz-sdk-invocation-id: a71a8442-bab4-473f-ad93-ddb2dc6f05d2\r\n"
      "amz-sdk-request: attempt=1\r\n"
      "\r\n" },
    { "boto3 GetFunction?Qualifier=$LATEST", 1795250596500LL,
      "GET /2015-03-31/functions/my-func_1?Qualifier=%24LATEST HTTP/1.1\r\n"
      "Host: 127.0.0.1:43455\r\n"
      "Accept-Encoding: identity\r\n"
      "User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v595 md/arc"
      "h#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Z,e,b,D,N cfg/retry-mode#legacy Boto"
      "core/1.43.11\r\n"
      "X-Amz-Date: 20261121T084315Z\r\n"
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/us-east-1/lamb"
      "da/aws4_request, SignedHeaders=host;x-amz-date, Signature=03c941b6bf820374e3a16b12f2"
      "688e3044328f84170d6e1c7042fdcd2d6a438a\r\n"
      "amz-sdk-invocation-id: c3960f6c-9d82-445e-b5e2-04c9eb6cbb6e\r\n"
      "amz-sdk-request: attempt=1\r\n"
      "\r\n" },
    { "boto3 UpdateFunctionConfiguration, a JSON body", 1795250596500LL,
      "PUT /2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3"
      "Afoo/configuration HTTP/1.1\r\n"
      "Host: 127.0.0.1:36249\r\n"
      "Accept-Encoding: identity\r\n"
      "Content-Type: application/json\r\n"
      "User-Agent: Boto3/1.43.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v595 md/arc"
      "h#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/Z,e,b,D,N cfg/retry-mode#legacy Boto"
      "core/1.43.11\r\n"
      "X-Amz-Date: 20261121T084315Z\r\n"
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/us-east-1/lamb"
      "da/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=71690ea18aa1e"
      "4d91df5c6a08e73d75b748e680c00dcefd604ecec9cd1e7a4e7\r\n"
      "amz-sdk-invocation-id: 8d4d6fc7-525c-40b2-a87e-4d88c6df3891\r\n"
      "amz-sdk-request: attempt=1\r\n"
      "Content-Length: 54\r\n"
      "\r\n"
      "{\"Description\": \"h\\u00e9llo w\\u00f6rld\", \"Timeout\": 3}" },
    { "boto3 presigned GetFunction URL", 1795250596500LL,
      "GET /2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-west-2%3A000000000000%3Afunction%3"
      "Afoo?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAMAYFLYEXAMPLE%2F20261121%"
      "2Fus-west-2%2Flambda%2Faws4_request&X-Amz-Date=20261121T084315Z&X-Amz-Expires=300&X-"
      "Amz-SignedHeaders=host&X-Amz-Signature=64449af15f1747611ef341baa89b6d5d861a041bd9f84"
      "a92f769805de7dca270 HTTP/1.1\r\n"
      "Host: 127.0.0.1:9001\r\n"
      "User-Agent: curl/8.0\r\n"
      "Accept: */*\r\n"
      "\r\n" },
    { "aws lambda invoke", 1795250596500LL,
      "POST /2015-03-31/functions/arn%3Aaws%3Alambda%3Aap-southeast-2%3A000000000000%3Afunc"
      "tion%3Afoo%3Alive/invocations HTTP/1.1\r\n"
      "Host: 127.0.0.1:49509\r\n"
      "Accept-Encoding: identity\r\n"
      "User-Agent: aws-cli/1.45.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v595 md/a"
      "rch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,Z,D,N,g cfg/retry-mode#legacy bo"
      "tocore/1.43.11\r\n"
      "X-Amz-Date: 20261121T084315Z\r\n"
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/ap-southeast-2"
      "/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=4ada0b4dba7caa642e011"
      "6de115bae384e17bdd9d1302cd1f6b4a8caba46652a\r\n"
      "amz-sdk-invocation-id: f152c7ad-1162-4fec-9327-568947b2257c\r\n"
      "amz-sdk-request: attempt=1\r\n"
      "Content-Length: 8\r\n"
      "\r\n"
      "{\"n\": 1}" },
    { "aws lambda list-functions", 1795250597500LL,
      "GET /2015-03-31/functions HTTP/1.1\r\n"
      "Host: 127.0.0.1:41591\r\n"
      "Accept-Encoding: identity\r\n"
      "User-Agent: aws-cli/1.45.11 md/Botocore#1.43.11 ua/2.1 os/linux#6.18.44-fc-v595 md/a"
      "rch#x86_64 lang/python#3.11.7 md/pyimpl#CPython m/b,D,Z,g,N,C cfg/retry-mode#legacy "
      "botocore/1.43.11\r\n"
      "X-Amz-Date: 20261121T084316Z\r\n"
      "Authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/ap-southeast-2"
      "/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=7943e269a031cc8f8ad56"
      "10260a91623314202f9e03df5837962a786b29cd122\r\n"
      "amz-sdk-invocation-id: 973cd8f0-6d9a-42c4-adee-309221c313bc\r\n"
      "amz-sdk-request: attempt=1\r\n"
      "\r\n" },
    { "JS SDK v3 Invoke, an ARN with a qualifier", 1795250601500LL,
      "POST /2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-3%3A000000000000%3Afunction%"
      "3Afoo%3Aprod/invocations HTTP/1.1\r\n"
      "content-type: application/octet-stream\r\n"
      "content-length: 18\r\n"
      "x-amz-user-agent: aws-sdk-js/3.1161.0\r\n"
      "user-agent: aws-sdk-js/3.1161.0 ua/2.1 os/linux#6.18.44-fc-v595 lang/js md/nodejs#20"
      ".20.2 api/lambda#3.1161.0 m/N,E,e\r\n"
      "host: 127.0.0.1:42683\r\n"
      "amz-sdk-invocation-id: 843b4d12-c85d-4f62-b95f-1b2524a8d4ac\r\n"
      "amz-sdk-request: attempt=1; max=1\r\n"
      "x-amz-date: 20261121T084320Z\r\n"
      "x-amz-content-sha256: 5f8f04f6a3a892aaabbddb6cf273894493773960d4a325b105fee46eef4304"
      "f1\r\n"
      "authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/eu-west-3/lamb"
      "da/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;"
      "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=1c3547"
      "6ac71f52b837c570185933dbe38960978740316ef8c9c7dda2206519ac\r\n"
      "Connection: keep-alive\r\n"
      "\r\n"
      "{\"hello\": \"world\"}" },
    { "JS SDK v3 ListFunctions, a Marker to encode", 1795250601500LL,
      "GET /2015-03-31/functions?Marker=x%20y%2Fz%3A%2B%3D%26~%25&MaxItems=2 HTTP/1.1\r\n"
      "x-amz-user-agent: aws-sdk-js/3.1161.0\r\n"
      "user-agent: aws-sdk-js/3.1161.0 ua/2.1 os/linux#6.18.44-fc-v595 lang/js md/nodejs#20"
      ".20.2 api/lambda#3.1161.0 m/N,E,e\r\n"
      "host: 127.0.0.1:46859\r\n"
      "amz-sdk-invocation-id: c3325654-7ee7-40af-89ae-27d02e24259d\r\n"
      "amz-sdk-request: attempt=1; max=1\r\n"
      "x-amz-date: 20261121T084320Z\r\n"
      "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8"
      "55\r\n"
      "authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/eu-west-3/lamb"
      "da/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;host;x-amz-cont"
      "ent-sha256;x-amz-date;x-amz-user-agent, Signature=6e916d1c59648168cafeac3749c34c156d"
      "5d939acaeb35bfeb1e1e4988ffb77f\r\n"
      "Connection: keep-alive\r\n"
      "\r\n" },
    { "JS SDK v3 GetFunction?Qualifier=$LATEST", 1795250601500LL,
      "GET /2015-03-31/functions/my-func_1?Qualifier=%24LATEST HTTP/1.1\r\n"
      "x-amz-user-agent: aws-sdk-js/3.1161.0\r\n"
      "user-agent: aws-sdk-js/3.1161.0 ua/2.1 os/linux#6.18.44-fc-v595 lang/js md/nodejs#20"
      ".20.2 api/lambda#3.1161.0 m/N,E,e\r\n"
      "host: 127.0.0.1:37039\r\n"
      "amz-sdk-invocation-id: b906e176-931f-472c-bd4a-aa637010058d\r\n"
      "amz-sdk-request: attempt=1; max=1\r\n"
      "x-amz-date: 20261121T084320Z\r\n"
      "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8"
      "55\r\n"
      "authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/eu-west-3/lamb"
      "da/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;host;x-amz-cont"
      "ent-sha256;x-amz-date;x-amz-user-agent, Signature=78a272f5d8803df2861f219cc1b55f81ab"
      "04257027807a322776deeca4fd79f2\r\n"
      "Connection: keep-alive\r\n"
      "\r\n" },
    { "JS SDK v3 UpdateFunctionConfiguration, a JSON body", 1795250601500LL,
      "PUT /2015-03-31/functions/foo/configuration HTTP/1.1\r\n"
      "content-type: application/json\r\n"
      "content-length: 43\r\n"
      "x-amz-user-agent: aws-sdk-js/3.1161.0\r\n"
      "user-agent: aws-sdk-js/3.1161.0 ua/2.1 os/linux#6.18.44-fc-v595 lang/js md/nodejs#20"
      ".20.2 api/lambda#3.1161.0 m/N,E,e\r\n"
      "host: 127.0.0.1:33237\r\n"
      "amz-sdk-invocation-id: 7940f9cb-c01c-465e-8f23-4825eaf22362\r\n"
      "amz-sdk-request: attempt=1; max=1\r\n"
      "x-amz-date: 20261121T084320Z\r\n"
      "x-amz-content-sha256: 37e0078917cb75cc1deb736ee94ffb36eef1b34edbb4a01322e14b632750ec"
      "d0\r\n"
      "authorization: AWS4-HMAC-SHA256 Credential=AKIAMAYFLYEXAMPLE/20261121/eu-west-3/lamb"
      "da/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;"
      "content-type;host;x-amz-content-sha256;x-amz-date;x-amz-user-agent, Signature=78d5a1"
      "8066a5e8f01df873bf6894e6664bb94d9635f5f8d9c1864ad50fa8cc88\r\n"
      "Connection: keep-alive\r\n"
      "\r\n"
      "{\"Description\":\"h\303\251llo w\303\266rld\",\"Timeout\":3}" },
};

static int allow_body(void *ud, http_request_t *req, size_t *body_limit)
{
    *body_limit = 1 << 20;
    return 0;
}

/* Reads raw with the server's own HTTP reader, the way the request would
 * reach an API handler. */
static http_request_t *read_request(const char *raw, size_t len)
{
    http_reader_t r;
    http_reader_init(&r, allow_body, NULL, NULL);
    size_t used = 0;
    http_reader_result_t res = http_reader_feed(&r, raw, len, &used);
    assert_int_equal(res, HTTP_READER_REQUEST);
    http_request_t *req = http_reader_take(&r);
    http_reader_release(&r);
    return req;
}

static int verify_raw(const char *raw, size_t len, int64_t now_ms, sigv4_result_t *res,
                      mf_error_t *err)
{
    http_request_t *req = read_request(raw, len);
    int r = sigv4_verify_http(req, "lambda", &keys, now_ms, res, err);
    http_request_free(req);
    return r;
}

static void test_real_clients(void **state)
{
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
        const client_case_t *c = &clients[i];
        size_t len = strlen(c->raw);
        buf_t creq = BUF_INIT;
        sigv4_result_t res = { .canonical_request = &creq };
        mf_error_t err = MF_ERROR_INIT;
        int r = verify_raw(c->raw, len, c->now_ms, &res, &err);
        if (r != 0)
            print_error("%s: %s\n%s\n", c->name, err.msg, creq.data);
        assert_int_equal(r, 0);
        assert_string_equal(res.access_key_id, CLIENT_KEY);
        assert_false(res.unsigned_payload);
        assert_false(res.path_normalized);
        /* An ARN in the path reaches the signature encoded twice. */
        if (strstr(c->raw, "arn%3Aaws"))
            assert_non_null(strstr(creq.data, "/2015-03-31/functions/arn%253Aaws%253Alambda%253A"));
        buf_release(&creq);
        res.canonical_request = NULL;

        /* Changing any one byte of the request line (the method, the path or
         * the query) or of the body breaks the signature. */
        char *copy = strdup(c->raw);
        size_t line_end = strcspn(copy, "\r");
        const char *body = strstr(copy, "\r\n\r\n") + 4;
        size_t spots[] = { 0, 5, line_end / 2, line_end - 12, line_end - 10,
                           (size_t)(body - copy) };
        for (size_t j = 0; j < sizeof spots / sizeof spots[0]; j++) {
            size_t at = spots[j];
            if (at >= len || copy[at] == ' ' || (at == (size_t)(body - copy) && !*body))
                continue;
            char was = copy[at];
            copy[at] = was == 'x' ? 'y' : 'x';
            http_reader_t rd;
            http_reader_init(&rd, allow_body, NULL, NULL);
            size_t used = 0;
            if (http_reader_feed(&rd, copy, len, &used) == HTTP_READER_REQUEST) {
                http_request_t *req = http_reader_take(&rd);
                r = sigv4_verify_http(req, "lambda", &keys, c->now_ms, &res, &err);
                http_request_free(req);
                if (r == 0)
                    print_error("%s: byte %zu changed, still verified\n", c->name, at);
                assert_int_not_equal(r, 0);
            }
            http_reader_release(&rd);
            copy[at] = was;
        }
        free(copy);

        /* Signed for lambda, so not for another service. */
        http_request_t *req = read_request(c->raw, len);
        assert_int_equal(sigv4_verify_http(req, "s3", &keys, c->now_ms, &res, &err), -EACCES);
        assert_int_equal(res.status, SIGV4_INVALID);
        assert_string_equal(err.msg, "Credential should be scoped to correct service: 's3'.");
        http_request_free(req);
    }
}

/* --- What a bad request gets ---------------------------------------------- */

/* A Lambda request signed with the suite key by sign(). */
static tcase_t lambda_get(void)
{
    return (tcase_t){ "GET",
                      "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A0%3Afunction%3Af",
                      "Qualifier=%24LATEST&MaxItems=2", NULL,
                      { "Host", "127.0.0.1:9001", "X-Amz-Date", SUITE_DATE, "My-Header1", "a  b",
                        "Authorization", "", NULL } };
}

#define LAMBDA_SCOPE "20150830/us-east-1/lambda"
#define LAMBDA_SIGNED "host;my-header1;x-amz-date"

static void expect(const tcase_t *t, int64_t now_ms, sigv4_status_t status, const char *type,
                   const char *msg)
{
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    int r = run(t, "lambda", now_ms, &res, &err);
    if (status == SIGV4_OK) {
        if (r != 0)
            print_error("unexpected: %s\n", err.msg);
        assert_int_equal(r, 0);
        return;
    }
    assert_int_equal(r, -EACCES);
    assert_int_equal(res.status, status);
    assert_int_equal(res.http_status, 403);
    assert_string_equal(res.error_type, type);
    assert_int_equal(err.code, EACCES);
    if (msg)
        assert_string_equal(err.msg, msg);
}

static void test_signed_request_verifies(void **state)
{
    tcase_t t = lambda_get();
    char authz[512];
    sign(&t, "lambda", LAMBDA_SCOPE, LAMBDA_SIGNED, SUITE_NOW_MS, authz, sizeof authz);
    expect(&t, SUITE_NOW_MS, SIGV4_OK, NULL, NULL);

    /* Header values are compared trimmed and with white space collapsed,
     * and names whatever their case. */
    t.hdr[5] = "  a \t b ";
    t.hdr[4] = "MY-HEADER1";
    expect(&t, SUITE_NOW_MS, SIGV4_OK, NULL, NULL);
    /* Query parameters count in any order and encoding that decodes the
     * same. */
    t.query = "MaxItems=2&Qualifier=$LATEST";
    expect(&t, SUITE_NOW_MS, SIGV4_OK, NULL, NULL);
}

static void test_wrong_secret(void **state)
{
    tcase_t t = lambda_get();
    char authz[512];
    sign(&t, "lambda", LAMBDA_SCOPE, LAMBDA_SIGNED, SUITE_NOW_MS, authz, sizeof authz);
    auth_keys_t other = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(auth_keys_parse_list(&other, SUITE_KEY ":not-the-secret", &err), 0);
    sigv4_result_t res = { 0 };
    assert_int_equal(run_keys(&t, &other, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_MISMATCH);
    assert_string_equal(res.error_type, "InvalidSignatureException");
    assert_string_equal(err.msg, MISMATCH_MSG);
    assert_string_equal(res.access_key_id, SUITE_KEY);
    auth_keys_release(&other);
}

static void test_unknown_key(void **state)
{
    tcase_t t = lambda_get();
    const char **authz = find_header(&t, "Authorization");
    *authz = "AWS4-HMAC-SHA256 Credential=AKIDUNKNOWN/20150830/us-east-1/lambda/aws4_request, "
             "SignedHeaders=host;x-amz-date, Signature=" EMPTY_SHA256;
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(run(&t, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_UNKNOWN_KEY);
    assert_string_equal(res.error_type, "UnrecognizedClientException");
    assert_string_equal(err.msg, "The security token included in the request is invalid.");
    assert_string_equal(res.access_key_id, "AKIDUNKNOWN");
    assert_string_equal(res.region, "us-east-1");

    /* A server without keys knows no key at all. */
    auth_keys_t none = { 0 };
    assert_int_equal(run_keys(&t, &none, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_UNKNOWN_KEY);
}

static void test_clock_skew(void **state)
{
    tcase_t t = lambda_get();
    char authz[512];
    sign(&t, "lambda", LAMBDA_SCOPE, LAMBDA_SIGNED, SUITE_NOW_MS, authz, sizeof authz);
    const int64_t five_min = 5 * 60 * 1000;

    /* Five minutes either way is still fine. */
    expect(&t, SUITE_NOW_MS + five_min, SIGV4_OK, NULL, NULL);
    expect(&t, SUITE_NOW_MS - five_min, SIGV4_OK, NULL, NULL);
    expect(&t, SUITE_NOW_MS + five_min + 1000, SIGV4_EXPIRED, "InvalidSignatureException",
           "Signature expired: 20150830T123600Z is now earlier than 20150830T123601Z "
           "(20150830T124101Z - 5 min.)");
    expect(&t, SUITE_NOW_MS - five_min - 1000, SIGV4_EXPIRED, "InvalidSignatureException",
           "Signature not yet current: 20150830T123600Z is still later than 20150830T123559Z "
           "(20150830T123059Z + 5 min.)");
    /* Days off, across a month's end. */
    expect(&t, 1441065600000LL /* 2015-09-01T00:00:00Z */, SIGV4_EXPIRED,
           "InvalidSignatureException",
           "Signature expired: 20150830T123600Z is now earlier than 20150831T235500Z "
           "(20150901T000000Z - 5 min.)");
}

static void test_date_header(void **state)
{
    /* Without X-Amz-Date the Date header dates the request. */
    tcase_t t = { "GET", "/", "", NULL,
                  { "Host", "h", "Date", "Sun, 30 Aug 2015 12:36:00 GMT", "Authorization", "",
                    NULL } };
    char authz[512];
    sign(&t, "lambda", LAMBDA_SCOPE, "date;host", SUITE_NOW_MS, authz, sizeof authz);
    expect(&t, SUITE_NOW_MS, SIGV4_OK, NULL, NULL);
    t.hdr[3] = "Sun, 30 Aug 2015 12:36:01 GMT";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    t.hdr[3] = "Sunday, 30-Aug-15 12:36:00 GMT";
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "Date must be in ISO-8601 'basic format'. Got 'Sunday, 30-Aug-15 12:36:00 GMT'. See "
           "http://en.wikipedia.org/wiki/ISO_8601");
}

static void test_tampering(void **state)
{
    tcase_t good = lambda_get();
    char authz[512];
    sign(&good, "lambda", LAMBDA_SCOPE, LAMBDA_SIGNED, SUITE_NOW_MS, authz, sizeof authz);

    tcase_t t = good;
    t.hdr[5] = "a  c"; /* a signed header's value */
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    t = good;
    t.query = "Qualifier=%24LATEST&MaxItems=3";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    t = good;
    t.query = "Qualifier=%24LATEST&MaxItems=2&Marker=x";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    t = good;
    t.path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A0%3Afunction%3Ag";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    /* The path is signed as sent: ':' and its escape are different paths. */
    t.path = "/2015-03-31/functions/arn:aws:lambda:us-east-1:0:function:f";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    t = good;
    t.method = "DELETE";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    t = good;
    t.body = "{}"; /* a body where the client signed none */
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    /* An unsigned header may change or be added. */
    t = good;
    t.hdr[8] = "User-Agent";
    t.hdr[9] = "curl";
    t.hdr[10] = NULL;
    expect(&t, SUITE_NOW_MS, SIGV4_OK, NULL, NULL);
    /* A second value for a signed header is not what was signed. */
    t.hdr[8] = "my-header1";
    t.hdr[9] = "b";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
}

static void test_signed_header_missing(void **state)
{
    tcase_t t = lambda_get();
    char authz[512];
    sign(&t, "lambda", LAMBDA_SCOPE, LAMBDA_SIGNED, SUITE_NOW_MS, authz, sizeof authz);
    /* Drop My-Header1 (a proxy might): what was signed is not all here. */
    t.hdr[4] = "X-Other";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);

    /* Host must be signed. */
    t = lambda_get();
    sign(&t, "lambda", LAMBDA_SCOPE, "host;x-amz-date", SUITE_NOW_MS, authz, sizeof authz);
    char *sh = strstr(authz, "host;x-amz-date");
    memcpy(sh, "date", 4);
    expect(&t, SUITE_NOW_MS, SIGV4_INVALID, "InvalidSignatureException",
           "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    memcpy(sh, "hosts", 5); /* "hostsx-amz-date" */
    expect(&t, SUITE_NOW_MS, SIGV4_INVALID, "InvalidSignatureException", NULL);
    memcpy(sh, "HOST;", 5); /* names are matched whatever their case */
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
}

static void test_missing_date(void **state)
{
    tcase_t t = { "GET", "/", "", NULL,
                  { "Host", "h", "Authorization",
                    "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/lambda/"
                    "aws4_request, SignedHeaders=host, Signature=" EMPTY_SHA256,
                    NULL } };
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' "
           "header. Authorization=AWS4-HMAC-SHA256 Credential=" SUITE_KEY
           "/20150830/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=" EMPTY_SHA256);
    t.hdr[4] = "X-Amz-Date";
    t.hdr[5] = "2015-08-30T12:36:00Z";
    t.hdr[6] = NULL;
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'. See "
           "http://en.wikipedia.org/wiki/ISO_8601");
    const char *bad[] = { "", "20150830", "20150830T123600", "20150830t123600Z",
                          "20150230T123600Z", "20151330T123600Z", "20150830T246000Z",
                          "2015083OT123600Z", "+0150830T123600Z", "20150830T123600ZZ" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t.hdr[5] = bad[i];
        expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException", NULL);
    }
}

static void test_content_sha256(void **state)
{
    tcase_t t = { "POST", "/2015-03-31/functions/f/invocations", "", "{\"a\": 1}",
                  { "Host", "h", "X-Amz-Date", SUITE_DATE, "X-Amz-Content-Sha256",
                    "0ff2e3b4e5e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4",
                    "Authorization", "", NULL } };
    char authz[512];
    /* The body's hash as the header gives it. */
    char hash[CODEC_SHA256_HEX_LEN + 1];
    codec_sha256_hex(hash, t.body, strlen(t.body));
    t.hdr[5] = hash;
    sign(&t, "lambda", LAMBDA_SCOPE, "host;x-amz-content-sha256;x-amz-date", SUITE_NOW_MS,
         authz, sizeof authz);
    expect(&t, SUITE_NOW_MS, SIGV4_OK, NULL, NULL);

    /* The header does not match the body that came. */
    t.body = "{\"a\": 2}";
    expect(&t, SUITE_NOW_MS, SIGV4_INVALID, "InvalidSignatureException",
           "The provided 'x-amz-content-sha256' header does not match what was computed.");

    /* A caller that hashed the body itself passes the hash. */
    http_header_t headers[4];
    for (int i = 0; i < 4; i++)
        headers[i] = (http_header_t){ (char *)t.hdr[2 * i], (char *)t.hdr[2 * i + 1] };
    sigv4_request_t req = { .method = "POST", .path = t.path, .headers = headers, .nheaders = 4,
                            .body_sha256 = hash };
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(sigv4_verify(&req, "lambda", &keys, SUITE_NOW_MS, &res, &err), 0);

    /* UNSIGNED-PAYLOAD leaves the body out, and says so. */
    t.hdr[5] = "UNSIGNED-PAYLOAD";
    sign(&t, "lambda", LAMBDA_SCOPE, "host;x-amz-content-sha256;x-amz-date", SUITE_NOW_MS,
         authz, sizeof authz);
    assert_int_equal(run(&t, "lambda", SUITE_NOW_MS, &res, &err), 0);
    assert_true(res.unsigned_payload);

    /* aws-chunked bodies are S3's, not Lambda's. */
    t.hdr[5] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    expect(&t, SUITE_NOW_MS, SIGV4_INVALID, "InvalidSignatureException", NULL);
    t.hdr[5] = "not-a-hash";
    expect(&t, SUITE_NOW_MS, SIGV4_INVALID, "InvalidSignatureException",
           "The provided 'x-amz-content-sha256' header does not match what was computed.");
}

static void test_credential_scope(void **state)
{
    tcase_t t = lambda_get();
    const char **authz = find_header(&t, "Authorization");
    *authz = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150831/US_EAST/s3/aws4_requesx, "
             "SignedHeaders=host;x-amz-date, Signature=" EMPTY_SHA256;
    expect(&t, SUITE_NOW_MS, SIGV4_INVALID, "InvalidSignatureException",
           "Credential should be scoped to a valid region, not 'US_EAST'. Credential should be "
           "scoped to correct service: 'lambda'. Credential should be scoped with a valid "
           "terminator: 'aws4_request', not 'aws4_requesx'. Date in Credential scope does not "
           "match YYYYMMDD from ISO-8601 version of date from HTTP: '20150831' != '20150830', "
           "from '20150830T123600Z'.");
    *authz = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/lambda, "
             "SignedHeaders=host;x-amz-date, Signature=" EMPTY_SHA256;
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "Credential must have exactly 5 slash-delimited elements, e.g. "
           "keyid/date/region/service/term, got '" SUITE_KEY "/20150830/us-east-1/lambda'");
    *authz = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/lambda/aws4_request/x, "
             "SignedHeaders=host;x-amz-date, Signature=" EMPTY_SHA256;
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException", NULL);
    /* Any region will do; the signature is then checked as usual. */
    *authz = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY
             "/20150830/mars-north-7/lambda/aws4_request//, SignedHeaders=host;x-amz-date, "
             "Signature=" EMPTY_SHA256;
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
}

static void test_malformed_authorization(void **state)
{
    tcase_t t = lambda_get();
    const char **authz = find_header(&t, "Authorization");

    /* Not SigV4 at all: no token, so a caller may try another scheme. */
    const char *not_sigv4[] = { NULL, "", "Bearer AKID:secret", "AWS AKID:c2lnbmF0dXJl",
                                "aws4-hmac-sha256 Credential=x" };
    for (size_t i = 0; i < sizeof not_sigv4 / sizeof not_sigv4[0]; i++) {
        if (not_sigv4[i]) {
            *authz = not_sigv4[i];
        } else {
            t.hdr[6] = NULL;
        }
        expect(&t, SUITE_NOW_MS, SIGV4_MISSING, "MissingAuthenticationTokenException",
               "Missing Authentication Token");
        t = lambda_get();
        authz = find_header(&t, "Authorization");
    }

    *authz = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/lambda/aws4_request";
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "Authorization header requires 'Signature' parameter. Authorization header requires "
           "'SignedHeaders' parameter. Authorization=AWS4-HMAC-SHA256 Credential=" SUITE_KEY
           "/20150830/us-east-1/lambda/aws4_request");
    *authz = "AWS4-HMAC-SHA256";
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "Authorization header requires 'Credential' parameter. Authorization header requires "
           "'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. "
           "Authorization=AWS4-HMAC-SHA256");
    *authz = "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders, Signature=00";
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "'SignedHeaders' not a valid key=value pair (missing equal-sign) in Authorization "
           "header: 'AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders, Signature=00'.");
    *authz = "AWS4-HMAC-SHA512 Credential=" SUITE_KEY "/20150830/us-east-1/lambda/aws4_request, "
             "SignedHeaders=host;x-amz-date, Signature=00";
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA512' (only AWS4-HMAC-SHA256 for now).");
    /* Commas alone, or white space alone, separate the parameters too. */
    *authz = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/lambda/aws4_request,"
             "SignedHeaders=host;x-amz-date,Signature=00";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    *authz = "  AWS4-HMAC-SHA256  Credential=" SUITE_KEY "/20150830/us-east-1/lambda/aws4_request"
             "  SignedHeaders=host;x-amz-date\tSignature=00  ";
    expect(&t, SUITE_NOW_MS, SIGV4_MISMATCH, "InvalidSignatureException", MISMATCH_MSG);
    /* Control bytes are not repeated back. */
    *authz = "AWS4-HMAC-SHA256 Cred\001ential";
    expect(&t, SUITE_NOW_MS, SIGV4_INCOMPLETE, "IncompleteSignatureException",
           "'Cred?ential' not a valid key=value pair (missing equal-sign) in Authorization "
           "header: 'AWS4-HMAC-SHA256 Cred?ential'.");

    /* Both forms at once. */
    t = lambda_get();
    t.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256";
    expect(&t, SUITE_NOW_MS, SIGV4_INVALID, "InvalidSignatureException",
           "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP "
           "header.");
}

/* Every prefix of a good Authorization header, and of its query and date,
 * and pseudo-random damage to each, must be refused without reading out of
 * bounds (run under ASan). */
static void test_truncated_and_mangled(void **state)
{
    tcase_t good = lambda_get();
    char authz[512];
    sign(&good, "lambda", LAMBDA_SCOPE, LAMBDA_SIGNED, SUITE_NOW_MS, authz, sizeof authz);
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    char buf[512];

    size_t len = strlen(authz);
    for (size_t n = 0; n < len; n++) {
        tcase_t t = good;
        memcpy(buf, authz, n);
        buf[n] = '\0';
        *find_header(&t, "Authorization") = buf;
        assert_int_equal(run(&t, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    }
    for (size_t n = 0; n < strlen(good.query); n++) {
        tcase_t t = good;
        memcpy(buf, good.query, n);
        buf[n] = '\0';
        t.query = buf;
        assert_int_equal(run(&t, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    }
    for (size_t n = 0; n < strlen(SUITE_DATE); n++) {
        tcase_t t = good;
        memcpy(buf, SUITE_DATE, n);
        buf[n] = '\0';
        *find_header(&t, "X-Amz-Date") = buf;
        assert_int_equal(run(&t, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    }

    /* Flip bytes to ones that mean something to the parser: what still
     * verifies must be the very request that was signed. */
    buf_t want = BUF_INIT, got = BUF_INIT;
    res = (sigv4_result_t){ .canonical_request = &want };
    assert_int_equal(run(&good, "lambda", SUITE_NOW_MS, &res, &err), 0);
    static const char alphabet[] = "=,; /%&\t\0aZ9-_.~:\377\200";
    uint32_t seed = 12345;
    for (int round = 0; round < 3000; round++) {
        tcase_t t = good;
        const char *src = round % 3 == 0 ? authz : round % 3 == 1 ? good.query : good.path;
        size_t slen = strlen(src);
        memcpy(buf, src, slen + 1);
        int flips = 1 + round % 4;
        for (int f = 0; f < flips; f++) {
            seed = seed * 1103515245 + 12345;
            size_t at = (seed >> 8) % slen;
            seed = seed * 1103515245 + 12345;
            buf[at] = alphabet[(seed >> 8) % (sizeof alphabet - 1)];
        }
        if (round % 3 == 0)
            *find_header(&t, "Authorization") = buf;
        else if (round % 3 == 1)
            t.query = buf;
        else
            t.path = buf;
        buf_reset(&got);
        res = (sigv4_result_t){ .canonical_request = &got };
        if (run(&t, "lambda", SUITE_NOW_MS, &res, &err) == 0)
            assert_string_equal(got.data, want.data);
    }
    buf_release(&want);
    buf_release(&got);
}

static void test_presigned(void **state)
{
    /* The boto3 presigned URL from the client captures, via the reader. */
    const client_case_t *c = NULL;
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
        if (strstr(clients[i].name, "presigned"))
            c = &clients[i];
    }
    assert_non_null(c);
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(verify_raw(c->raw, strlen(c->raw), c->now_ms, &res, &err), 0);
    assert_true(res.presigned);
    assert_string_equal(res.region, "us-west-2");

    /* Good for X-Amz-Expires (300) seconds from its date, not one more. */
    int64_t signed_at = res.signed_at_ms;
    assert_int_equal(verify_raw(c->raw, strlen(c->raw), signed_at + 300000, &res, &err), 0);
    assert_int_equal(verify_raw(c->raw, strlen(c->raw), signed_at + 301000, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_EXPIRED);
    assert_non_null(strstr(err.msg, "Signature expired: "));
    assert_non_null(strstr(err.msg, " - 300 sec.)"));
    assert_int_equal(verify_raw(c->raw, strlen(c->raw), signed_at - 301000, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_EXPIRED);
    assert_non_null(strstr(err.msg, "Signature not yet current: "));

    /* A part missing, or X-Amz-Expires not a number or over a week. */
    struct {
        const char *from, *to, *msg;
    } edits[] = {
        { "&X-Amz-Signature=", "&X-Amz-Signaturf=",
          "AWS query-string parameters must include 'X-Amz-Signature'. Re-examine the "
          "query-string parameters." },
        { "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=",
          "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credentials=",
          "AWS query-string parameters must include 'X-Amz-Credential'. Re-examine the "
          "query-string parameters." },
        { "X-Amz-Expires=300", "X-Amz-Expires=3e2", "X-Amz-Expires should be a number" },
        { "X-Amz-Expires=300", "X-Amz-Expires=604801",
          "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires "
          "must be less than 604800 seconds" },
        { "X-Amz-Expires=300", "X-Amz-Expires=301", MISMATCH_MSG },
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        buf_t raw = BUF_INIT;
        const char *at = strstr(c->raw, edits[i].from);
        assert_non_null(at);
        buf_add(&raw, c->raw, (size_t)(at - c->raw));
        buf_adds(&raw, edits[i].to);
        buf_adds(&raw, at + strlen(edits[i].from));
        assert_int_equal(verify_raw(raw.data, raw.len, c->now_ms, &res, &err), -EACCES);
        assert_string_equal(err.msg, edits[i].msg);
        buf_release(&raw);
    }
}

/* --- From the head alone --------------------------------------------------- */

static int run_head(const tcase_t *t, const auth_keys_t *k, int64_t now_ms, sigv4_result_t *res,
                    mf_error_t *err)
{
    http_header_t headers[MAX_HEADERS];
    size_t n = 0;
    for (; t->hdr[2 * n]; n++)
        headers[n] = (http_header_t){ (char *)t->hdr[2 * n], (char *)t->hdr[2 * n + 1] };
    /* No body: the head is all there is when this runs. */
    sigv4_request_t req = { .method = t->method, .path = t->path, .query = t->query,
                            .headers = headers, .nheaders = n };
    int r = sigv4_verify_head(&req, "lambda", k, now_ms, res, err);
    assert_int_equal(r == 0, res->status == SIGV4_OK);
    assert_int_equal(res->http_status, r == 0 ? 0 : 403);
    return r;
}

static void test_head_without_payload_hash(void **state)
{
    /* What the SDKs send to Lambda: no x-amz-content-sha256, so the
     * signature covers the body's hash and waits for the body; the rest
     * is judged from the head. */
    tcase_t t = lambda_get();
    char authz[512];
    sign(&t, "lambda", LAMBDA_SCOPE, LAMBDA_SIGNED, SUITE_NOW_MS, authz, sizeof authz);
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), 0);
    assert_false(res.signature_checked);
    assert_string_equal(res.access_key_id, SUITE_KEY);

    /* A wrong secret cannot show before the body... */
    auth_keys_t other = { 0 };
    assert_int_equal(auth_keys_parse_list(&other, SUITE_KEY ":not-the-secret", &err), 0);
    assert_int_equal(run_head(&t, &other, SUITE_NOW_MS, &res, &err), 0);
    assert_int_equal(run_keys(&t, &other, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_MISMATCH);
    auth_keys_release(&other);

    /* ... but an unknown key, a stale date, a wrong scope and a missing
     * part all do. */
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS + 6 * 60 * 1000, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_EXPIRED);
    const char **a = find_header(&t, "Authorization");
    *a = "AWS4-HMAC-SHA256 Credential=AKIDUNKNOWN/20150830/us-east-1/lambda/aws4_request, "
         "SignedHeaders=host;x-amz-date, Signature=" EMPTY_SHA256;
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_UNKNOWN_KEY);
    assert_string_equal(res.error_type, "UnrecognizedClientException");
    *a = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/s3/aws4_request, "
         "SignedHeaders=host;x-amz-date, Signature=" EMPTY_SHA256;
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_INVALID);
    *a = "AWS4-HMAC-SHA256 Credential=" SUITE_KEY "/20150830/us-east-1/lambda/aws4_request, "
         "SignedHeaders=host;x-amz-date";
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_INCOMPLETE);
    *a = "Bearer x:y";
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_MISSING);
}

static void test_head_with_payload_hash(void **state)
{
    /* x-amz-content-sha256 fixes the canonical request from the head: the
     * signature itself is checked there. */
    tcase_t t = { "POST", "/2015-03-31/functions/f/invocations", "", "{\"a\": 1}",
                  { "Host", "h", "X-Amz-Date", SUITE_DATE, "X-Amz-Content-Sha256", "",
                    "Authorization", "", NULL } };
    char authz[512], hash[CODEC_SHA256_HEX_LEN + 1];
    codec_sha256_hex(hash, t.body, strlen(t.body));
    t.hdr[5] = hash;
    sign(&t, "lambda", LAMBDA_SCOPE, "host;x-amz-content-sha256;x-amz-date", SUITE_NOW_MS,
         authz, sizeof authz);
    sigv4_result_t res = { 0 };
    mf_error_t err = MF_ERROR_INIT;
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), 0);
    assert_true(res.signature_checked);

    auth_keys_t other = { 0 };
    assert_int_equal(auth_keys_parse_list(&other, SUITE_KEY ":not-the-secret", &err), 0);
    assert_int_equal(run_head(&t, &other, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_MISMATCH);
    assert_string_equal(err.msg, MISMATCH_MSG);

    /* A body other than the one declared passes the head (it has not come
     * yet) and fails once it has. */
    t.body = "{\"a\": 2}";
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), 0);
    assert_int_equal(run(&t, "lambda", SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_INVALID);

    /* UNSIGNED-PAYLOAD: the whole signature from the head, the body never
     * part of it. */
    t.hdr[5] = "UNSIGNED-PAYLOAD";
    sign(&t, "lambda", LAMBDA_SCOPE, "host;x-amz-content-sha256;x-amz-date", SUITE_NOW_MS,
         authz, sizeof authz);
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), 0);
    assert_true(res.signature_checked);
    assert_true(res.unsigned_payload);
    assert_int_equal(run_head(&t, &other, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_MISMATCH);
    auth_keys_release(&other);

    /* Chunked signing (S3's) and a declared hash that is no hash are
     * refused before the body. */
    t.hdr[5] = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_INVALID);
    t.hdr[5] = "0ff2e3b4e5e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4e4ZZZZ";
    assert_int_equal(run_head(&t, &keys, SUITE_NOW_MS, &res, &err), -EACCES);
    assert_int_equal(res.status, SIGV4_INVALID);
}

static void test_head_of_real_clients(void **state)
{
    /* Every captured client request passes the head; the head checks the
     * signature of exactly those that declared their payload's hash. */
    for (size_t i = 0; i < sizeof clients / sizeof clients[0]; i++) {
        const client_case_t *c = &clients[i];
        http_request_t *req = read_request(c->raw, strlen(c->raw));
        sigv4_result_t res = { 0 };
        mf_error_t err = MF_ERROR_INIT;
        int r = sigv4_verify_http_head(req, "lambda", &keys, c->now_ms, &res, &err);
        if (r != 0)
            print_error("%s: %s\n", c->name, err.msg);
        assert_int_equal(r, 0);
        assert_int_equal(res.signature_checked,
                         http_request_header(req, "X-Amz-Content-Sha256") != NULL);
        http_request_free(req);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_suite),
        cmocka_unit_test(test_real_clients),
        cmocka_unit_test(test_signed_request_verifies),
        cmocka_unit_test(test_wrong_secret),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_clock_skew),
        cmocka_unit_test(test_date_header),
        cmocka_unit_test(test_tampering),
        cmocka_unit_test(test_signed_header_missing),
        cmocka_unit_test(test_missing_date),
        cmocka_unit_test(test_content_sha256),
        cmocka_unit_test(test_credential_scope),
        cmocka_unit_test(test_malformed_authorization),
        cmocka_unit_test(test_truncated_and_mangled),
        cmocka_unit_test(test_presigned),
        cmocka_unit_test(test_head_without_payload_hash),
        cmocka_unit_test(test_head_with_payload_hash),
        cmocka_unit_test(test_head_of_real_clients),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
