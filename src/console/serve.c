/* GET and HEAD /console/…: the embedded assets, or a folder's files with
 * --console-dir. Every answer under /console (refusals included) carries
 * the same security headers: a Content-Security-Policy that lets the pages
 * load nothing but this server's own files and talk to nothing but this
 * server, no sniffing, no referrer, no framing. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "console/console.h"
#include "console/internal.h"
#include "core/buf.h"
#include "core/codec.h"
#include "core/json.h"
#include "core/xalloc.h"
#include "http/request.h"
#include "http/server.h"

#define CONSOLE_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "           \
    "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; "                 \
    "frame-ancestors 'none'"

/* A file read from --console-dir larger than this is refused (the
 * console's largest asset is tens of KiB). */
#define CONSOLE_DIR_FILE_MAX (16u << 20)

/* The header lines of every answer under /console. */
static const char security_headers[] = "Content-Security-Policy: " CONSOLE_CSP "\r\n"
                                       "X-Content-Type-Options: nosniff\r\n"
                                       "Referrer-Policy: no-referrer\r\n";

typedef struct console_ctx {
    uv_loop_t *loop;
    const char *dir; /* --console-dir, or NULL: the embedded assets */
} console_ctx_t;

static console_ctx_t the_ctx;

const console_asset_t *console_assets(size_t *n)
{
    *n = console__nassets;
    return console__assets;
}

const console_asset_t *console_asset_find(const char *path)
{
    size_t lo = 0, hi = console__nassets;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(path, console__assets[mid].path);
        if (!c)
            return &console__assets[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static void add_security_headers(http_request_t *req)
{
    buf_adds(&req->resp_headers, security_headers);
}

static void respond_error(http_request_t *req, int status, const char *code, const char *msg)
{
    add_security_headers(req);
    http_respond_error(req, status, code, "%s", msg);
}

/* The answer for an asset's bytes, whichever way they came: 304 when the
 * client holds this version, else the bytes (HEAD: the headers alone,
 * which the server sees to). */
static void respond_asset(http_request_t *req, const char *path, const char *sha256,
                          const void *data, size_t len)
{
    char etag[40];
    snprintf(etag, sizeof etag, "\"%.32s\"", sha256);
    add_security_headers(req);
    http_header_add(req, "ETag", "%s", etag);
    /* A hashed name never changes its bytes: cached for good. Every other
     * file is asked about each time (a 304 once the ETag matches), so a
     * new build shows at the next load. */
    http_header_add(req, "Cache-Control", "%s",
                    console_name_hashed(path) ? "public, max-age=31536000, immutable"
                                              : "no-cache");
    if (http_etag_matches(http_request_header(req, "If-None-Match"), etag)) {
        http_respond(req, 304, NULL, NULL, 0);
        return;
    }
    http_respond(req, 200, console_content_type(path), data, len);
}

/* ---- --console-dir: a folder's files, read on the thread pool ---------- */

typedef struct dir_read {
    uv_work_t work;
    http_request_t *req;
    const char *dir;
    char path[CONSOLE_PATH_MAX + 1];
    buf_t data;
    char sha256[CODEC_SHA256_HEX_LEN + 1];
    int r;
} dir_read_t;

static void dir_read_work(uv_work_t *w)
{
    dir_read_t *d = w->data;
    char full[PATH_MAX];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", d->dir, d->path) >= sizeof full) {
        d->r = -ENOENT;
        return;
    }
    /* The path's segments were checked (no "..", no hidden names); the
     * file itself is no symlink, and a regular file. */
    int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) {
        d->r = -ENOENT;
        return;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        d->r = -ENOENT;
        return;
    }
    if ((uint64_t)st.st_size > CONSOLE_DIR_FILE_MAX) {
        close(fd);
        d->r = -EFBIG;
        return;
    }
    buf_grow(&d->data, (size_t)st.st_size + 1);
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            d->r = -EIO;
            break;
        }
        if (n == 0)
            break;
        if (d->data.len + (size_t)n > CONSOLE_DIR_FILE_MAX) {
            d->r = -EFBIG;
            break;
        }
        buf_add(&d->data, chunk, (size_t)n);
    }
    close(fd);
    if (!d->r)
        codec_sha256_hex(d->sha256, d->data.data, d->data.len);
}

static void dir_read_done(uv_work_t *w, int status)
{
    dir_read_t *d = w->data;
    if (status < 0 && !d->r)
        d->r = -EIO;
    if (d->r == -ENOENT)
        respond_error(d->req, 404, "not_found", "no such file in the console");
    else if (d->r == -EFBIG)
        respond_error(d->req, 500, "internal", "the console's file is too large to serve");
    else if (d->r)
        respond_error(d->req, 500, "internal", "the console's file cannot be read");
    else
        respond_asset(d->req, d->path, d->sha256, d->data.data, d->data.len);
    buf_release(&d->data);
    free(d);
}

static void serve_from_dir(http_request_t *req, console_ctx_t *ctx, const char *path)
{
    dir_read_t *d = xcalloc(1, sizeof *d);
    d->req = req;
    d->dir = ctx->dir;
    snprintf(d->path, sizeof d->path, "%s", path);
    d->work.data = d;
    int r = uv_queue_work(ctx->loop, &d->work, dir_read_work, dir_read_done);
    if (r < 0) {
        free(d);
        respond_error(req, 503, "unavailable", "the console's file cannot be read now");
    }
}

/* ---- the routes ---------------------------------------------------------- */

static void serve(http_request_t *req, console_ctx_t *ctx, const char *raw)
{
    char path[CONSOLE_PATH_MAX + 1];
    if (console_path_check(raw, strlen(raw), path) < 0) {
        /* Whatever it names ("..", a hidden file, a '\'), it is no asset:
         * the same 404 as a file that is not there, so a probe learns
         * nothing of the server's files. */
        respond_error(req, 404, "not_found", "no such file in the console");
        return;
    }
    if (ctx->dir) {
        serve_from_dir(req, ctx, path);
        return;
    }
    const console_asset_t *a = console_asset_find(path);
    if (!a) {
        respond_error(req, 404, "not_found", "no such file in the console");
        return;
    }
    respond_asset(req, a->path, a->sha256, a->data, a->len);
}

static void handle_index(http_request_t *req, void *ud)
{
    serve(req, ud, "index.html");
}

static void handle_asset(http_request_t *req, void *ud)
{
    serve(req, ud, req->nparams ? req->params[0] : "");
}

/* /console without its slash: the pages' relative links need it. */
static void handle_bare(http_request_t *req, void *ud)
{
    add_security_headers(req);
    http_header_add(req, "Location", "/console/");
    http_respond(req, 301, NULL, NULL, 0);
}

/* The router's own refusals under /console (405 for a POST, say): the
 * server's JSON error, with the console's headers. */
static void refuse(int status, const char *message, buf_t *headers, buf_t *body)
{
    buf_adds(headers, security_headers);
    buf_addf(body, "{\"error\":{\"code\":\"%s\",\"message\":", http_status_code_name(status));
    json_quote(body, message, strlen(message));
    buf_adds(body, "}}\n");
}

void console_register(http_router_t *router, uv_loop_t *loop, const char *dir)
{
    the_ctx = (console_ctx_t){ .loop = loop, .dir = dir };
    static const enum http_method methods[] = { HTTP_GET, HTTP_HEAD };
    for (size_t i = 0; i < 2; i++) {
        http_router_add(router, methods[i], "/console", handle_bare, &the_ctx, 0);
        http_router_add(router, methods[i], "/console/", handle_index, &the_ctx, 0);
        http_router_add(router, methods[i], "/console/{path**}", handle_asset, &the_ctx, 0);
    }
    http_router_refuse_with(router, "/console", refuse);
}
