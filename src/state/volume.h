/* Shared volumes (docs/state.md): persistent, size-limited file systems
 * that every instance of every function mounting one shares, as Lambda
 * functions share EFS.
 *
 * Volume NAME is an ext4 file system in the sparse image
 * DATA/volumes/NAME.img, its root owned by SANDBOX_VOLUME_OWNER, attached
 * to a loop device and mounted by the server at DATA/volumes/NAME: when it
 * is created and at every start. Sandboxes mount that (sandbox.h). The
 * file system is the size limit: a write past it fails with ENOSPC inside
 * the function, and the image never takes more of the host's disk than
 * size_mb. The server's mounts live in a mount namespace of its own
 * (volumes_isolate_mounts): the host never sees them, and they go with
 * the server however it ends.
 *
 * What exists is what the store says (name, size_mb, created): a volume is
 * recorded once it is formatted and mounted, and forgotten before its
 * image goes, so an image without a record (a create or a delete cut
 * short by a crash) is removed at the next start.
 *
 * Calls are made on the loop thread. Errors: -EINVAL a bad name or body
 * (the message starts with the field), -ENOENT no such volume, -EEXIST it
 * exists with another size, -EBUSY it is being created or deleted,
 * -ENOTSUP the server cannot keep volumes (not root, no mount namespace of
 * its own), else what went wrong. */
#ifndef MAYFLY_STATE_VOLUME_H
#define MAYFLY_STATE_VOLUME_H

#include "core/tenant.h"
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "core/error.h"
#include "store/store.h"
#include "store/writer.h"

#define VOLUME_NAME_MAX 64
#define VOLUME_SIZE_MB_MIN 1
#define VOLUME_SIZE_MB_MAX 1048576 /* 1 TiB */

typedef struct volumes volumes_t;

typedef struct volume_info {
    char name[TENANT_QNAME_MAX + 1];
    int64_t size_mb;     /* as created */
    int64_t created_ms;  /* wall clock */
    bool mounted;        /* false: it could not be mounted (error says why) */
    uint64_t size_bytes; /* the file system's usable size (statvfs), 0 unmounted */
    uint64_t used_bytes; /* of which in use */
    char error[512];     /* "" when mounted */
} volume_info_t;

/* Puts the calling process in a mount namespace of its own, a slave of
 * the host's (the host's later mounts still show; ours never reach it).
 * Call before any thread starts: unshare needs a process of one thread. */
int volumes_isolate_mounts(mf_error_t *err);

/* Opens the volumes of data_dir: mounts each one the store records
 * (after e2fsck -p), and removes images no record names. A volume that
 * cannot be mounted is kept, with its error, and logged; its functions
 * fail to start until it can. isolated: the server is in a mount
 * namespace of its own (volumes_isolate_mounts succeeded); without it,
 * or without root, there are no volumes (-ENOTSUP on each call) and
 * *out is still set. */
int volumes_open(uv_loop_t *loop, store_t *store, const char *data_dir, bool isolated,
                 volumes_t **out, mf_error_t *err);
/* Unmounts every volume (lazily: see volume_fs.c). */
void volumes_close(volumes_t *v);
/* Creates and deletes are recorded by jobs of w, off the loop (NULL, the
 * default: at once, with the store given to volumes_open). */
void volumes_set_writer(volumes_t *v, store_writer_t *w);

/* Parses a create body {"size_mb": N}, N a whole number of MiB from
 * VOLUME_SIZE_MB_MIN to VOLUME_SIZE_MB_MAX; unknown fields are refused. */
int volumes_parse_spec(const char *body, size_t len, int64_t *size_mb, mf_error_t *err);

/* created: a new volume (false: one with that name and size existed). */
typedef void (*volumes_create_cb)(void *ud, int r, const volume_info_t *info, bool created,
                                  const mf_error_t *err);
/* Creates the volume name of size_mb MiB, or finds it: cb is called once,
 * possibly before this returns. A new volume is formatted and mounted on
 * the thread pool, then recorded. An existing one with another size is
 * -EEXIST (volumes cannot be resized yet). */
void volumes_create(volumes_t *v, const char *name, int64_t size_mb, volumes_create_cb cb,
                    void *ud);

int volumes_get(volumes_t *v, const char *name, volume_info_t *out, mf_error_t *err);
/* Every volume, by name; free *out. */
int volumes_list(volumes_t *v, volume_info_t **out, size_t *count, mf_error_t *err);
/* True when name is recorded (whether mounted or not). */
bool volumes_exists(volumes_t *v, const char *name);

typedef void (*volumes_done_cb)(void *ud, int r, const mf_error_t *err);
/* Deletes the volume and its files (the caller has checked that no
 * function mounts it): no function can mount it from the call on; it is
 * forgotten by the store, then unmounted and its image removed on the
 * thread pool; cb is called once, possibly before this returns. */
void volumes_delete(volumes_t *v, const char *name, volumes_done_cb cb, void *ud);

/* Where the volume is mounted, for sandboxes (exec_volume_path_fn): fills
 * path, or fails naming why the volume cannot be used. */
int volumes_mount_point(void *v, const char *name, char *path, size_t len, mf_error_t *err);

#endif
