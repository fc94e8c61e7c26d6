/* Code packages: zips checked against bounds and unpacked once into a
 * content-addressed directory, CODE_ROOT/<sha256 of the zip>/. */
#ifndef MAYFLY_REGISTRY_CODE_H
#define MAYFLY_REGISTRY_CODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

typedef struct code_limits {
    uint64_t max_zip_bytes;       /* default 50 MiB */
    uint64_t max_unzipped_bytes;  /* default 250 MiB */
    uint64_t max_files;           /* default 10,000 */
} code_limits_t;

#define CODE_LIMITS_DEFAULT { 50u << 20, 250u << 20, 10000 }

/* Checks the zip and unpacks it under code_root unless that package is
 * already there. Rejects (-EINVAL, message naming the entry) absolute
 * paths, `..` components, symlinks whose target leaves the package, and a
 * zip that is not a zip; rejects (-EFBIG) a zip, an unpacked total or a file
 * count past the limits, counting bytes as they are written, not as the zip
 * declares them. Unpacks into a temporary directory renamed into place, so
 * a half-written package is never seen. Executable bits are kept.
 * Writes the package's SHA-256 (hex) into sha_out and its unpacked size into
 * *unpacked_size. */
int code_install(const char *code_root, const void *zip, size_t zip_len,
                 const code_limits_t *limits, char sha_out[65], int64_t *unpacked_size,
                 mf_error_t *err);

/* Removes CODE_ROOT/<sha>; a missing package is fine. */
int code_remove(const char *code_root, const char *sha, mf_error_t *err);

/* ---- reading an unpacked package back (registry/code_files.c) ------------ */

typedef enum code_file_type { CODE_FILE_REGULAR, CODE_FILE_DIR, CODE_FILE_SYMLINK } code_file_type_t;

/* One entry of an unpacked package, as code_install left it. */
typedef struct code_file {
    char *path;              /* relative, '/'-separated, no leading or trailing '/' */
    code_file_type_t type;
    unsigned mode;           /* permission bits: 0644 or 0755, 0755 for a directory, 0777 for a symlink */
    int64_t size;            /* a file's bytes, a symlink's target's length, 0 for a directory */
    char *target;            /* a symlink's target, else NULL */
} code_file_t;

/* Every entry below dir (a package's directory, CODE_ROOT/<sha>), sorted
 * by path (bytewise), into a new array (code_files_free). Reads the disk:
 * off the event loop for a package of any size. */
int code_files(const char *dir, code_file_t **out, size_t *count, mf_error_t *err);
void code_files_free(code_file_t *files, size_t count);

/* The package below dir as a zip again, into out (replaced): each entry
 * in code_files' order, directories included, with its Unix mode and
 * type (a symlink stays a symlink), deflated, every time set to
 * 2000-01-01 00:00, so the same tree always gives the same bytes. What
 * code_install makes of it is the same tree. Reads the disk and
 * compresses: off the event loop. */
int code_zip(const char *dir, buf_t *out, mf_error_t *err);

/* The paging cursor of a package's file list (?after=): the last path of
 * a page, opaque to the client ("p." and the path's base64url, no
 * padding). Format appends the cursor for path to out; parse decodes one
 * into out (replaced), -EINVAL when it is not a cursor this server wrote
 * (fuzzed by tests/fuzz/fuzz_code_cursor.c). */
#define CODE_CURSOR_PATH_MAX 4096
void code_cursor_format(buf_t *out, const char *path, size_t len);
int code_cursor_parse(const char *s, size_t len, buf_t *out);

#endif
