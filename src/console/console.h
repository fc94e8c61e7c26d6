/* The web console's server side: the files under console/ (HTML, CSS,
 * JavaScript, the vendored chart library), embedded in the binary at build
 * time (scripts/console_embed.c writes them into a C source), served at
 * /console/ with strict security headers and ETags. The console is a view
 * over /v1: these routes hold no data and need no key; the pages call /v1
 * with the user's own bearer key. See docs/console.md. */
#ifndef MAYFLY_CONSOLE_CONSOLE_H
#define MAYFLY_CONSOLE_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "http/router.h"

/* The longest asset path (below console/) served. */
#define CONSOLE_PATH_MAX 512

typedef struct console_asset {
    const char *path;          /* below console/: "index.html", "vendor/uplot/uPlot.min.js" */
    const unsigned char *data;
    size_t len;
    const char *content_type;  /* console_content_type(path) */
    const char *sha256;        /* of data, 64 lowercase hex digits */
} console_asset_t;

/* The embedded assets, sorted by path (strcmp); *n their count. */
const console_asset_t *console_assets(size_t *n);
/* The embedded asset at path (below console/, no leading '/'), or NULL. */
const console_asset_t *console_asset_find(const char *path);

/* The Content-Type a file is served with, by its name's extension (html,
 * css, js and mjs as text/javascript, svg, png, woff2, json, map, ...);
 * application/octet-stream for one not known. */
const char *console_content_type(const char *path);

/* Checks an asset path taken from a request (percent-decoded, below
 * /console/): len bytes, no NUL, at most CONSOLE_PATH_MAX, segments of
 * [A-Za-z0-9_.~@+-] separated by single '/', none empty and none starting
 * with '.' (so no "." or "..", no hidden file), no leading '/'; a trailing
 * '/' names the folder's index.html. Writes the asset path into out
 * (CONSOLE_PATH_MAX + 1 bytes) and returns 0, or -EINVAL: such a path is
 * never an asset, whatever is embedded or on disk. The build refuses to
 * embed a file whose path this refuses. */
int console_path_check(const char *path, size_t len, char out[CONSOLE_PATH_MAX + 1]);

/* Whether a file's name carries a content hash ("app.3f2a9c1d.js": a
 * dot-separated part of 8 or more hex digits before the extension): such
 * a file never changes under its name and may be cached for good. */
bool console_name_hashed(const char *path);

/* Adds GET and HEAD /console, /console/ and /console/{path**} to router:
 * the embedded assets, or, with dir (--console-dir DIR, for working on the
 * console), the files under dir read at each request off the loop. dir
 * must outlive the router. */
void console_register(http_router_t *router, uv_loop_t *loop, const char *dir);

#endif
