/* Content types by extension. Also linked into the build's generator
 * (scripts/console_embed.c), so the embedded table and --console-dir
 * agree. Only libc here. */
#include <string.h>
#include <strings.h>

#include "console/console.h"

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    { "html", "text/html; charset=utf-8" },
    { "css", "text/css; charset=utf-8" },
    /* RFC 9239: text/javascript, for classic scripts and modules alike. */
    { "js", "text/javascript; charset=utf-8" },
    { "mjs", "text/javascript; charset=utf-8" },
    { "json", "application/json" },
    { "map", "application/json" },
    { "svg", "image/svg+xml" },
    { "png", "image/png" },
    { "ico", "image/x-icon" },
    { "webp", "image/webp" },
    { "woff2", "font/woff2" },
    { "woff", "font/woff" },
    { "txt", "text/plain; charset=utf-8" },
    { "md", "text/markdown; charset=utf-8" },
};

const char *console_content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    /* A LICENSE or README without an extension is text. */
    if (!dot)
        return "text/plain; charset=utf-8";
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(dot + 1, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}
