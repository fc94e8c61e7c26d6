/* Writes the C source that embeds the console's files in bin/mayfly:
 *
 *   console_embed OUT.c ROOT FILE...
 *
 * Each FILE (a path that starts with ROOT/) becomes an entry of
 * console__assets (src/console/internal.h): its path below ROOT, its
 * bytes, its content type (console_content_type) and its SHA-256. The
 * entries are sorted by path, for console_asset_find's binary search. A
 * file whose path the server would never serve (console_path_check: a
 * hidden name, a space, "..") stops the build, so every file in ROOT is
 * reachable. The output is written whole to OUT.c.tmp, then renamed. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "console/console.h"

typedef struct {
    const char *file; /* as given */
    const char *path; /* below ROOT */
} entry_t;

static int by_path(const void *a, const void *b)
{
    return strcmp(((const entry_t *)a)->path, ((const entry_t *)b)->path);
}

static unsigned char *read_all(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "console_embed: %s: %s\n", file, strerror(errno));
        exit(1);
    }
    size_t cap = 65536, n = 0;
    unsigned char *data = malloc(cap);
    for (;;) {
        if (n == cap)
            data = realloc(data, cap *= 2);
        if (!data) {
            fprintf(stderr, "console_embed: out of memory\n");
            exit(1);
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        fprintf(stderr, "console_embed: %s: read error\n", file);
        exit(1);
    }
    fclose(f);
    *len = n;
    return data;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: console_embed OUT.c ROOT FILE...\n");
        return 2;
    }
    const char *out = argv[1], *root = argv[2];
    size_t rootlen = strlen(root), n = (size_t)(argc - 3);
    entry_t *e = calloc(n ? n : 1, sizeof *e);
    for (size_t i = 0; i < n; i++) {
        const char *f = argv[3 + i];
        if (strncmp(f, root, rootlen) || f[rootlen] != '/') {
            fprintf(stderr, "console_embed: %s is not below %s\n", f, root);
            return 1;
        }
        char checked[CONSOLE_PATH_MAX + 1];
        const char *p = f + rootlen + 1;
        if (console_path_check(p, strlen(p), checked) < 0 || strcmp(checked, p)) {
            fprintf(stderr,
                    "console_embed: %s: the server would never serve this name (a hidden "
                    "name, a space, a character outside [A-Za-z0-9_.~@+-], or a path over "
                    "%d characters): rename it\n",
                    f, CONSOLE_PATH_MAX);
            return 1;
        }
        e[i] = (entry_t){ f, p };
    }
    qsort(e, n, sizeof *e, by_path);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(e[i - 1].path, e[i].path)) {
            fprintf(stderr, "console_embed: %s given twice\n", e[i].file);
            return 1;
        }

    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fprintf(stderr, "console_embed: %s: %s\n", tmp, strerror(errno));
        return 1;
    }
    fprintf(o, "/* Written by scripts/console_embed.c from %s/: not to be edited. */\n"
               "#include \"console/internal.h\"\n\n",
            root);
    char (*sha)[65] = calloc(n ? n : 1, sizeof *sha);
    size_t *lens = calloc(n ? n : 1, sizeof *lens);
    for (size_t i = 0; i < n; i++) {
        size_t len;
        unsigned char *data = read_all(e[i].file, &len);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
            fprintf(stderr, "console_embed: SHA-256 failed\n");
            return 1;
        }
        for (unsigned j = 0; j < 32; j++)
            snprintf(sha[i] + 2 * j, 3, "%02x", md[j]);
        lens[i] = len;
        fprintf(o, "static const unsigned char a%zu[%zu] = {", i, len ? len : 1);
        for (size_t j = 0; j < len; j++)
            fprintf(o, "%s%u,", j % 24 ? "" : "\n", data[j]);
        fprintf(o, "%s};\n", len ? "\n" : "0");
        free(data);
    }
    fprintf(o, "\nconst console_asset_t console__assets[%zu] = {\n", n ? n : 1);
    for (size_t i = 0; i < n; i++)
        fprintf(o, "    { \"%s\", a%zu, %zu, \"%s\", \"%s\" },\n", e[i].path, i, lens[i],
                console_content_type(e[i].path), sha[i]);
    if (!n)
        fprintf(o, "    { 0 },\n");
    fprintf(o, "};\nconst size_t console__nassets = %zu;\n", n);
    if (fclose(o) != 0 || rename(tmp, out) < 0) {
        fprintf(stderr, "console_embed: %s: %s\n", out, strerror(errno));
        return 1;
    }
    free(sha);
    free(lens);
    free(e);
    return 0;
}
