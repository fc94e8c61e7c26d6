/* A function's code package read back by its owner:
 *   GET /v1/functions/{name}/code           the package as a zip
 *   GET /v1/functions/{name}/code/files     its entries, a page at a time
 * With a store that keeps code packages (PostgreSQL) the zip is the one
 * uploaded, byte for byte; on SQLite, where the unpacked tree is the only
 * copy, the tree is zipped again (registry_code_zip). Either way reading
 * and zipping run on libuv's thread pool: a package unpacks to up to
 * 250 MiB, which would otherwise hold up every call. The package stays
 * in the code directory meanwhile (registry_fetch_begin). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "http/request.h"
#include "core/cleanup.h"
#include "core/json.h"
#include "core/utf8.h"
#include "core/xalloc.h"

#define CODE_FILES_DEFAULT 100
#define CODE_FILES_MAX 1000

typedef enum { CODE_JOB_ZIP, CODE_JOB_FILES } code_job_kind_t;

typedef struct code_job {
    uv_work_t work;
    http_request_t *req;
    api_ctx_t *ctx;
    code_job_kind_t kind;
    char name[TENANT_QNAME_MAX + 1];
    char sha[65];
    /* files: the page asked for */
    int limit;
    buf_t after;
    bool has_after;
    /* what the work found */
    int r;
    mf_error_t err;
    buf_t zip;
    bool as_uploaded;
    code_file_t *files;
    size_t nfiles;
} code_job_t;

static void code_job_work(uv_work_t *w)
{
    code_job_t *j = w->data;
    if (j->kind == CODE_JOB_ZIP)
        j->r = registry_code_zip(j->ctx->registry, j->sha, &j->zip, &j->as_uploaded, &j->err);
    else
        j->r = registry_code_files(j->ctx->registry, j->sha, &j->files, &j->nfiles, &j->err);
}

/* s as a JSON string: a name that is not UTF-8 (a zip may carry any bytes
 * but NUL and '/') shows its bad bytes as U+FFFD. */
static json_t *code_json_text(const char *s)
{
    size_t len = strlen(s);
    if (utf8_valid(s, len))
        return json_stringn(s, len);
    cleanup_buf buf_t out = BUF_INIT;
    for (size_t i = 0; i < len;) {
        size_t k = utf8_seq((const unsigned char *)s + i, len - i);
        if (k) {
            buf_add(&out, s + i, k);
            i += k;
        } else {
            buf_adds(&out, "\xef\xbf\xbd");
            i++;
        }
    }
    return json_stringn(out.data, out.len);
}

static const char *const code_type_names[] = {
    [CODE_FILE_REGULAR] = "file",
    [CODE_FILE_DIR] = "dir",
    [CODE_FILE_SYMLINK] = "symlink",
};

/* The first entry whose path sorts after after (the files are sorted). */
static size_t code_first_after(const code_job_t *j)
{
    if (!j->has_after)
        return 0;
    size_t lo = 0, hi = j->nfiles;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(j->files[mid].path, j->after.data) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void code_answer_files(code_job_t *j)
{
    size_t from = code_first_after(j);
    size_t to = from + (size_t)j->limit < j->nfiles ? from + (size_t)j->limit : j->nfiles;
    cleanup_json json_t *files = json_array();
    for (size_t i = from; i < to; i++) {
        const code_file_t *f = &j->files[i];
        char mode[8];
        snprintf(mode, sizeof mode, "%04o", f->mode);
        json_t *o = json_pack("{so sI ss ss}", "path", code_json_text(f->path), "size",
                              (json_int_t)f->size, "mode", mode, "type",
                              code_type_names[f->type]);
        if (f->target)
            json_object_set_new(o, "target", code_json_text(f->target));
        json_array_append_new(files, o);
    }
    json_t *next = json_null();
    if (to < j->nfiles) {
        cleanup_buf buf_t cursor = BUF_INIT;
        const char *last = j->files[to - 1].path;
        code_cursor_format(&cursor, last, strlen(last));
        next = json_stringn(cursor.data, cursor.len);
    }
    cleanup_json json_t *out = json_pack("{sO so sI ss}", "files", files, "next", next, "total",
                                         (json_int_t)j->nfiles, "code_sha256", j->sha);
    http_respond_json(j->req, 200, out);
}

static void code_answer_zip(code_job_t *j)
{
    char local[FN_NAME_MAX + 1];
    snprintf(local, sizeof local, "%s", tenant_local(j->name));
    /* The uploaded bytes have the package's SHA-256 itself; a zip made
     * again holds the same files in other bytes, so its tag is weak. */
    http_header_add(j->req, "ETag", "%s\"%s\"", j->as_uploaded ? "" : "W/", j->sha);
    http_header_add(j->req, "Cache-Control", "private, no-cache");
    http_header_add(j->req, "Content-Disposition", "attachment; filename=\"%s.zip\"", local);
    http_header_add(j->req, "X-Mayfly-Code-Source", "%s",
                    j->as_uploaded ? "uploaded" : "unpacked");
    http_respond_buf(j->req, 200, "application/zip", &j->zip);
}

static void code_job_done(uv_work_t *w, int status)
{
    code_job_t *j = w->data;
    registry_fetch_end(j->ctx->registry);
    if (status < 0 && j->r == 0)
        j->r = mf_error_plain(&j->err, EIO, "the package was not read: %s", uv_strerror(status));
    if (j->r < 0)
        api_respond_failure(j->req, j->r, &j->err);
    else if (j->kind == CODE_JOB_ZIP)
        code_answer_zip(j);
    else
        code_answer_files(j);
    buf_release(&j->zip);
    buf_release(&j->after);
    code_files_free(j->files, j->nfiles);
    free(j);
}

/* The function of the path, into *fn (fn_clear it), or false having
 * answered 400 or 404. */
static bool code_function(http_request_t *req, api_ctx_t *ctx, fn_t *fn)
{
    if (!registry_valid_name(req->params[0])) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return false;
    }
    mf_error_t err = MF_ERROR_INIT;
    int r = registry_get(ctx->registry, req->params[0], fn, &err);
    if (r < 0) {
        api_respond_failure(req, r, &err);
        return false;
    }
    return true;
}

static void code_start(code_job_t *j)
{
    registry_fetch_begin(j->ctx->registry);
    j->work.data = j;
    int r = uv_queue_work(j->ctx->loop, &j->work, code_job_work, code_job_done);
    if (r < 0) {
        j->r = mf_error_plain(&j->err, -r, "the package cannot be read now: %s", uv_strerror(r));
        code_job_done(&j->work, 0);
    }
}

static code_job_t *code_job_new(http_request_t *req, api_ctx_t *ctx, const fn_t *fn,
                                code_job_kind_t kind)
{
    code_job_t *j = xcalloc(1, sizeof *j);
    j->req = req;
    j->ctx = ctx;
    j->kind = kind;
    buf_init(&j->zip, 0);
    buf_init(&j->after, 0);
    snprintf(j->name, sizeof j->name, "%s", fn->name);
    snprintf(j->sha, sizeof j->sha, "%s", fn->code_sha256);
    return j;
}

static void handle_code(http_request_t *req, api_ctx_t *ctx)
{
    fn_t fn;
    if (!code_function(req, ctx, &fn))
        return;
    char etag[70];
    snprintf(etag, sizeof etag, "\"%s\"", fn.code_sha256);
    /* The package's SHA-256 names its files, whichever bytes carry them. */
    if (http_etag_matches(http_request_header(req, "If-None-Match"), etag)) {
        /* The tag the 200 would carry: weak where the zip is made again. */
        http_header_add(req, "ETag", "%s%s", store_keeps_code(ctx->store) ? "" : "W/", etag);
        http_header_add(req, "Cache-Control", "private, no-cache");
        http_respond(req, 304, NULL, NULL, 0);
        fn_clear(&fn);
        return;
    }
    code_job_t *j = code_job_new(req, ctx, &fn, CODE_JOB_ZIP);
    fn_clear(&fn);
    code_start(j);
}

static void handle_files(http_request_t *req, api_ctx_t *ctx)
{
    cleanup_buf buf_t v = BUF_INIT, after = BUF_INIT;
    int limit = CODE_FILES_DEFAULT;
    bool has_after = false;
    if (!registry_valid_name(req->params[0])) {
        http_respond_error(req, 400, "bad_request", "name: must match [A-Za-z0-9_-]{1,64}");
        return;
    }
    if (http_request_query(req, "limit", &v)) {
        char *end;
        long n = strtol(v.data, &end, 10);
        if (!v.len || *end || v.data[0] == ' ' || v.data[0] == '+' || v.data[0] == '-' || n < 1 ||
            n > CODE_FILES_MAX) {
            http_respond_error(req, 400, "bad_request", "limit: must be a number from 1 to %d",
                               CODE_FILES_MAX);
            return;
        }
        limit = (int)n;
    }
    buf_reset(&v);
    if (http_request_query(req, "after", &v) && v.len) {
        if (code_cursor_parse(v.data, v.len, &after) < 0) {
            http_respond_error(req, 400, "bad_request",
                               "after: not a cursor this server gave (pass \"next\" as it came)");
            return;
        }
        has_after = true;
    }
    fn_t fn;
    if (!code_function(req, ctx, &fn))
        return;
    code_job_t *j = code_job_new(req, ctx, &fn, CODE_JOB_FILES);
    fn_clear(&fn);
    j->limit = limit;
    j->has_after = has_after;
    buf_add(&j->after, after.data, after.len);
    code_start(j);
}

void api__code_register(http_router_t *router, api_ctx_t *ctx)
{
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/code", handle_code, 0, false);
    api__route(router, ctx, HTTP_GET, "/v1/functions/{name}/code/files", handle_files, 0, false);
}
