/* File-system helpers shared by the store, the registry and the sandbox. */
#ifndef MAYFLY_CORE_FS_H
#define MAYFLY_CORE_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/buf.h"
#include "core/error.h"

/* Creates path and its missing parents with mode; an existing directory is
 * fine. */
int fs_mkdir_p(const char *path, mode_t mode, mf_error_t *err);
/* Removes path and everything below it without following symlinks; a
 * missing path is fine. */
int fs_rm_rf(const char *path, mf_error_t *err);
/* Reads a whole file into out, failing with -EFBIG past max_len bytes. */
int fs_read_file(const char *path, buf_t *out, size_t max_len, mf_error_t *err);
/* Writes data to path through a temporary file, fsync and rename, so a
 * reader sees the old or the new content, never a mix. */
int fs_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         mf_error_t *err);
/* Writes all of data to fd, retrying short writes and EINTR. */
int fs_write_all(int fd, const void *data, size_t len);
/* Calls fsync on a directory so a rename or create inside it is durable. */
int fs_fsync_dir(const char *path, mf_error_t *err);
/* Takes DIR/lock (made if missing) for this process and writes its pid
 * there: a second server on the same data directory fails with -EBUSY and
 * a message naming the holder's pid. The lock is an flock() on the open
 * file description, so the kernel drops it when the server dies, however
 * it dies, and a second take in the same process conflicts as a second
 * server would. *out_fd holds it until closed. */
int fs_lock_dir(const char *dir, int *out_fd, mf_error_t *err);
/* Reads a task's /proc schedstat file held open at fd ("run_ns wait_ns
 * timeslices", made anew by a read from the start): the time it has run
 * and the time it has waited, runnable, for a CPU. 0, or a negative errno
 * (-EIO for a line it cannot read). */
int fs_read_schedstat(int fd, uint64_t *run_ns, uint64_t *wait_ns);

#endif
