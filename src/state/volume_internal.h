/* What volume.c (the service) and volume_fs.c (the Linux side: images,
 * ext4, loop devices, mounts) share. Not for other modules. */
#ifndef MAYFLY_STATE_VOLUME_INTERNAL_H
#define MAYFLY_STATE_VOLUME_INTERNAL_H

#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

/* Makes the sparse image path of size_mb MiB (it must not exist) and
 * formats it ext4 with its root owned by SANDBOX_VOLUME_OWNER: no blocks
 * reserved for root (no sandbox is root), and lost+found removed once
 * mounted (volume__mount with fresh set). Runs mke2fs: call it off the
 * loop. A failure leaves no image behind. */
int volume__format(const char *image, int64_t size_mb, mf_error_t *err);

/* Checks the image's file system (e2fsck -p: a journal replayed, what a
 * crash left repaired without asking) before it is mounted at start.
 * Fails only when it needs a person (e2fsck's exit status 4 and up),
 * with e2fsck's words. Runs e2fsck: off the loop, or at start. */
int volume__check(const char *image, mf_error_t *err);

/* Attaches the image to a free loop device (autoclear: the device goes
 * with the last mount of it) and mounts it at dir (created if missing),
 * nosuid and nodev. Refuses an image some loop device holds already: two
 * mounts of one ext4 image would corrupt it. fresh: a volume just
 * formatted (its lost+found goes; e2fsck makes one again when it needs
 * it). */
int volume__mount(const char *image, const char *dir, bool fresh, mf_error_t *err);

/* Detaches the mount at dir (lazily: sandboxes still running with it keep
 * it until they stop; the loop device goes after them). */
int volume__unmount(const char *dir, mf_error_t *err);

/* Whether dir is a mount's root (the volume is mounted there). */
bool volume__is_mounted(const char *dir);

/* The file system's size and bytes in use (statvfs) at dir. */
int volume__usage(const char *dir, uint64_t *size_bytes, uint64_t *used_bytes);

/* The loop device (e.g. "/dev/loop3") whose backing file is image, into
 * out; false when none. */
bool volume__attached(const char *image, char *out, size_t len);

#endif
