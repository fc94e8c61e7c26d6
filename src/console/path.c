/* Parsers of what a client sends the console routes: the asset path and
 * If-None-Match (fuzzed by tests/fuzz/fuzz_console_path.c). Also linked
 * into the build's generator, which refuses to embed a file whose path
 * console_path_check refuses. Only libc here. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "console/console.h"

static bool name_char(unsigned char c)
{
    return isalnum(c) || c == '_' || c == '.' || c == '-' || c == '~' || c == '@' || c == '+';
}

int console_path_check(const char *path, size_t len, char out[CONSOLE_PATH_MAX + 1])
{
    static const char index_html[] = "index.html";
    if (!len || memchr(path, '\0', len))
        return -EINVAL;
    bool folder = path[len - 1] == '/';
    if (len + (folder ? sizeof index_html - 1 : 0) > CONSOLE_PATH_MAX)
        return -EINVAL;
    size_t seg = 0; /* the current segment's length so far */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c == '/') {
            if (!seg)
                return -EINVAL; /* a leading '/', or "//" */
            seg = 0;
            continue;
        }
        /* No "." or "..", and no hidden file, which the build leaves out. */
        if (!seg && c == '.')
            return -EINVAL;
        if (!name_char(c))
            return -EINVAL;
        seg++;
    }
    memcpy(out, path, len);
    if (folder)
        memcpy(out + len, index_html, sizeof index_html - 1), len += sizeof index_html - 1;
    out[len] = '\0';
    return 0;
}

static bool is_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

bool console_name_hashed(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *p = slash ? slash + 1 : path;
    const char *ext = strrchr(p, '.');
    if (!ext)
        return false;
    /* Each dot-separated part before the extension, the first (the name
     * itself) included: "3f2a9c1d.js" is as hashed as "app.3f2a9c1d.js". */
    while (p < ext) {
        const char *dot = memchr(p, '.', (size_t)(ext - p));
        const char *end = dot ? dot : ext;
        size_t n = (size_t)(end - p);
        if (n >= 8 && is_hex(p, n))
            return true;
        p = end + 1;
    }
    return false;
}
