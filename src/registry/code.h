/* Code packages: zips checked against bounds and unpacked once into a
 * content-addressed directory, CODE_ROOT/<sha256 of the zip>/. */
#ifndef MAYFLY_REGISTRY_CODE_H
#define MAYFLY_REGISTRY_CODE_H

#include <stddef.h>
#include <stdint.h>

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

#endif
