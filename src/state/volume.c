/* Shared volumes, the service: what exists (the store's records, mirrored
 * in memory), creating and deleting them off the loop, mounting them at
 * start, where sandboxes find them, and their metrics. The file systems
 * themselves are volume_fs.c's. */
#include "state/volume.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/cleanup.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/json.h"
#include "core/log.h"
#include "core/map.h"
#include "core/xalloc.h"
#include "obs/metrics.h"
#include "registry/registry.h"
#include "state/volume_internal.h"
#include "store/writer.h"

typedef enum {
    VOL_CREATING, /* being formatted and mounted: not recorded yet */
    VOL_READY,    /* recorded (mounted, unless error says why not) */
    VOL_DELETING, /* being forgotten by the store, then its files go */
} vol_state_t;

typedef struct volume {
    char name[TENANT_QNAME_MAX + 1];
    int64_t size_mb;
    int64_t created_ms;
    vol_state_t state;
    char error[512]; /* READY but not mounted: why */
} volume_t;

struct volumes {
    uv_loop_t *loop;
    store_t *store;
    store_writer_t *writer; /* records changes off the loop; NULL: at once */
    char *dir;             /* DATA/volumes: the images and their mount points */
    char unavailable[256]; /* why this server keeps no volumes, or "" */
    map_t by_name;         /* name → volume_t */
    unsigned jobs;         /* creates and deletes under way */
    metrics_family_t *m_used, *m_size;
};

/* How long a start waits for an image that a loop device still holds
 * (the server before this one, just killed, whose mounts the kernel is
 * still taking down) before it gives up on that volume. */
#define ATTACHED_WAIT_MS 10000

static char *image_path(const volumes_t *v, const char *name)
{
    return xasprintf("%s/%s.img", v->dir, name);
}

static char *mount_path(const volumes_t *v, const char *name)
{
    return xasprintf("%s/%s", v->dir, name);
}

static void fill_info(const volumes_t *v, const volume_t *e, volume_info_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", e->name);
    out->size_mb = e->size_mb;
    out->created_ms = e->created_ms;
    snprintf(out->error, sizeof out->error, "%s", e->error);
    if (e->error[0])
        return;
    cleanup_free char *dir = mount_path(v, e->name);
    out->mounted = volume__usage(dir, &out->size_bytes, &out->used_bytes) == 0;
    if (!out->mounted)
        snprintf(out->error, sizeof out->error, "not mounted");
}

/* ---- bodies --------------------------------------------------------------- */

int volumes_parse_spec(const char *body, size_t len, int64_t *size_mb, mf_error_t *err)
{
    json_error_t jerr;
    cleanup_json json_t *doc =
        len ? json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr) : NULL;
    if (!doc && len)
        return mf_error_plain(err, EINVAL, "body: not JSON (%s at line %d): send {\"size_mb\": N}",
                              jerr.text, jerr.line);
    if (!json_is_object(doc))
        return mf_error_plain(err, EINVAL, "body: must be a JSON object {\"size_mb\": N}");
    const char *key;
    json_t *val;
    json_object_foreach(doc, key, val)
    {
        if (strcmp(key, "size_mb") != 0) {
            char shown[80];
            return mf_error_plain(err, EINVAL, "%s: unknown field (a volume has only size_mb)",
                                  mf_error_show(key, 64, shown, sizeof shown));
        }
    }
    json_t *size = json_object_get(doc, "size_mb");
    if (!size)
        return mf_error_plain(err, EINVAL, "size_mb: required, a whole number of MiB from %d to %d",
                              VOLUME_SIZE_MB_MIN, VOLUME_SIZE_MB_MAX);
    if (!json_is_integer(size) || json_integer_value(size) < VOLUME_SIZE_MB_MIN ||
        json_integer_value(size) > VOLUME_SIZE_MB_MAX)
        return mf_error_plain(err, EINVAL, "size_mb: must be a whole number of MiB from %d to %d",
                              VOLUME_SIZE_MB_MIN, VOLUME_SIZE_MB_MAX);
    *size_mb = (int64_t)json_integer_value(size);
    return 0;
}

/* ---- opening -------------------------------------------------------------- */

/* Mounts a recorded volume at start; the reason it cannot, otherwise. */
static void mount_at_start(volumes_t *v, volume_t *e)
{
    cleanup_free char *image = image_path(v, e->name);
    cleanup_free char *dir = mount_path(v, e->name);
    mf_error_t err = MF_ERROR_INIT;
    struct stat st;
    if (stat(image, &st) < 0) {
        snprintf(e->error, sizeof e->error, "its image %s is missing: %s", image, strerror(errno));
        return;
    }
    /* The server before us may have been killed a moment ago: the kernel
     * lets go of its mounts, and then of the loop device, shortly after
     * its data directory lock. Mounting the image a second time meanwhile
     * would corrupt it, so wait for that. */
    char dev[64];
    for (int waited = 0; waited < ATTACHED_WAIT_MS && volume__attached(image, dev, sizeof dev);
         waited += 50)
        nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
    int r = volume__check(image, &err);
    if (r == 0)
        r = volume__mount(image, dir, false, &err);
    if (r < 0)
        snprintf(e->error, sizeof e->error, "%s", err.msg);
}

/* Images and mount points no record names: a create or a delete cut
 * short. Nothing the store knows is touched. */
static void remove_leftovers(volumes_t *v)
{
    DIR *d = opendir(v->dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        char name[sizeof de->d_name];
        snprintf(name, sizeof name, "%s", de->d_name);
        size_t n = strlen(name);
        bool image = n > 4 && !strcmp(name + n - 4, ".img");
        if (image)
            name[n - 4] = '\0';
        if (!registry_valid_state_name(name) || map_get(&v->by_name, name))
            continue;
        cleanup_free char *path = xasprintf("%s/%s", v->dir, de->d_name);
        if (image) {
            log_warn("volumes",
                     "removing %s: no volume is recorded for it (a create or delete "
                     "that did not finish)",
                     path);
            unlink(path);
        } else if (de->d_type == DT_DIR && !volume__is_mounted(path)) {
            rmdir(path);
        }
    }
    closedir(d);
}

static void collect(void *ud)
{
    volumes_t *v = ud;
    const char *name;
    void *val;
    for (size_t i = 0; map_next(&v->by_name, &i, &name, &val);) {
        volume_t *e = val;
        if (e->state != VOL_READY || e->error[0])
            continue;
        cleanup_free char *dir = mount_path(v, e->name);
        uint64_t size, used;
        if (volume__usage(dir, &size, &used) < 0)
            continue;
        const char *labels[] = {e->name};
        metrics_set(v->m_size, labels, (double)size);
        metrics_set(v->m_used, labels, (double)used);
    }
}

int volumes_open(uv_loop_t *loop, store_t *store, const char *data_dir, bool isolated,
                 volumes_t **out, mf_error_t *err)
{
    volumes_t *v = xcalloc(1, sizeof *v);
    v->loop = loop;
    v->store = store;
    v->dir = xasprintf("%s/volumes", data_dir);
    map_t empty = MAP_INIT;
    v->by_name = empty;
    static const char *const labels[] = {"volume", NULL};
    v->m_used =
        metrics_family_new(METRICS_GAUGE, "mayfly_volume_used_bytes",
                           "Bytes in use on a shared volume's file system.", labels, NULL, 0);
    v->m_size = metrics_family_new(METRICS_GAUGE, "mayfly_volume_size_bytes",
                                   "Usable size of a shared volume's file system, in bytes.",
                                   labels, NULL, 0);
    if (geteuid() != 0)
        snprintf(v->unavailable, sizeof v->unavailable,
                 "volumes need the server to run as root (loop devices and mounts)");
    else if (!isolated)
        snprintf(v->unavailable, sizeof v->unavailable,
                 "volumes need the server in a mount namespace of its own, which it could not "
                 "make (see its log at start)");

    store_volume_t *rows = NULL;
    size_t n = 0;
    int r = store_volume_list(store, &rows, &n, err);
    if (r < 0) {
        volumes_close(v);
        return r;
    }
    if (!v->unavailable[0] && n == 0 && access(v->dir, F_OK) < 0 && errno == ENOENT) {
        /* Made on the first create. */
    } else if (!v->unavailable[0] && (r = fs_mkdir_p(v->dir, 0700, err)) < 0) {
        free(rows);
        volumes_close(v);
        return r;
    }
    for (size_t i = 0; i < n; i++) {
        volume_t *e = xcalloc(1, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", rows[i].name);
        e->size_mb = rows[i].size_mb;
        e->created_ms = rows[i].created_ms;
        e->state = VOL_READY;
        if (v->unavailable[0])
            snprintf(e->error, sizeof e->error, "%s", v->unavailable);
        else
            mount_at_start(v, e);
        if (e->error[0])
            log_error("volumes", "volume %s is not available: %s", e->name, e->error);
        map_put(&v->by_name, e->name, e);
    }
    free(rows);
    if (!v->unavailable[0]) {
        remove_leftovers(v);
        if (n)
            log_info("volumes", "%zu volume(s) in %s", n, v->dir);
    }
    metrics_add_collector(collect, v);
    *out = v;
    return 0;
}

void volumes_close(volumes_t *v)
{
    if (!v)
        return;
    if (v->jobs)
        log_warn("volumes", "closing with %u create(s) or delete(s) still running", v->jobs);
    const char *name;
    void *val;
    for (size_t i = 0; map_next(&v->by_name, &i, &name, &val);) {
        volume_t *e = val;
        if (!v->unavailable[0] && e->state == VOL_READY && !e->error[0]) {
            cleanup_free char *dir = mount_path(v, e->name);
            mf_error_t err = MF_ERROR_INIT;
            if (volume__unmount(dir, &err) < 0)
                log_warn("volumes", "%s", err.msg);
        }
        if (!v->jobs)
            free(e);
    }
    if (v->jobs)
        return; /* their callbacks still hold v; the process is ending */
    map_release(&v->by_name);
    free(v->dir);
    free(v);
}

/* ---- create ---------------------------------------------------------------- */

/* A create or a delete: its file work runs on the thread pool. */
typedef struct vol_job {
    uv_work_t work;
    volumes_t *v;
    volume_t *e;
    bool mounted; /* a delete: the volume is to be unmounted */
    store_volume_t row; /* a create's record */
    char *image, *dir;
    int r;
    mf_error_t err;
    volumes_create_cb created; /* one of the two, by kind */
    volumes_done_cb deleted;
    void *ud;
} vol_job_t;

static vol_job_t *job_new(volumes_t *v, volume_t *e, void *ud)
{
    vol_job_t *j = xcalloc(1, sizeof *j);
    j->work.data = j;
    j->v = v;
    j->e = e;
    j->image = image_path(v, e->name);
    j->dir = mount_path(v, e->name);
    j->err = (mf_error_t)MF_ERROR_INIT;
    j->ud = ud;
    return j;
}

static void job_queue(vol_job_t *j, uv_work_cb work, uv_after_work_cb after)
{
    j->v->jobs++;
    if (uv_queue_work(j->v->loop, &j->work, work, after) < 0) {
        work(&j->work);
        after(&j->work, 0);
    }
}

static void create_work(uv_work_t *w)
{
    vol_job_t *j = w->data;
    j->r = volume__format(j->image, j->e->size_mb, &j->err);
    if (j->r == 0 && (j->r = volume__mount(j->image, j->dir, true, &j->err)) < 0) {
        unlink(j->image);
        rmdir(j->dir);
    }
}

static void job_free(vol_job_t *j)
{
    free(j->image);
    free(j->dir);
    free(j);
}

static int create_apply(void *db, void *arg, mf_error_t *err)
{
    vol_job_t *j = arg;
    return store_volume_add(db, &j->row, err);
}

static void create_recorded(void *arg, int r, const mf_error_t *err)
{
    vol_job_t *j = arg;
    volumes_t *v = j->v;
    volume_t *e = j->e;
    v->jobs--;
    if (r < 0 && !j->r) {
        j->r = r;
        j->err = *err;
        mf_error_t ignored = MF_ERROR_INIT;
        volume__unmount(j->dir, &ignored);
        unlink(j->image);
        rmdir(j->dir);
    }
    volume_info_t info;
    if (j->r < 0) {
        map_remove(&v->by_name, e->name);
        free(e);
        j->created(j->ud, j->r, NULL, false, &j->err);
    } else {
        e->state = VOL_READY;
        log_info("volumes", "created volume %s (%lld MiB)", e->name, (long long)e->size_mb);
        fill_info(v, e, &info);
        j->created(j->ud, 0, &info, true, &j->err);
    }
    job_free(j);
}

static void create_done(uv_work_t *w, int status)
{
    vol_job_t *j = w->data;
    volume_t *e = j->e;
    if (j->r < 0) {
        create_recorded(j, 0, &j->err);
        return;
    }
    j->row = (store_volume_t){ .size_mb = e->size_mb, .created_ms = e->created_ms };
    snprintf(j->row.name, sizeof j->row.name, "%s", e->name);
    store_writer_submit_or_run(j->v->writer, j->v->store, true, create_apply, create_recorded, j);
}

static int check_name(const char *name, mf_error_t *err)
{
    if (!name || !registry_valid_state_name(name))
        return mf_error_plain(err, EINVAL, "name: must match [A-Za-z0-9_-]{1,%d}", VOLUME_NAME_MAX);
    return 0;
}

void volumes_create(volumes_t *v, const char *name, int64_t size_mb, volumes_create_cb cb, void *ud)
{
    mf_error_t err = MF_ERROR_INIT;
    int r = check_name(name, &err);
    if (r == 0 && (size_mb < VOLUME_SIZE_MB_MIN || size_mb > VOLUME_SIZE_MB_MAX))
        r = mf_error_plain(&err, EINVAL, "size_mb: must be a whole number of MiB from %d to %d",
                           VOLUME_SIZE_MB_MIN, VOLUME_SIZE_MB_MAX);
    if (r == 0 && v->unavailable[0])
        r = mf_error_plain(&err, ENOTSUP, "%s", v->unavailable);
    volume_t *e = r == 0 ? map_get(&v->by_name, name) : NULL;
    if (e && e->state == VOL_CREATING)
        r = mf_error_plain(&err, EBUSY, "volume %s is being created: try again when it is", name);
    else if (e && e->state == VOL_DELETING)
        r = mf_error_plain(&err, EBUSY, "volume %s is being deleted: try again when it is gone",
                           name);
    else if (e && e->size_mb != size_mb)
        r = mf_error_plain(&err, EEXIST,
                           "volume %s exists with size_mb %lld: resizing a volume is not "
                           "supported yet (delete it and create it again, which loses its files)",
                           name, (long long)e->size_mb);
    if (r < 0) {
        cb(ud, r, NULL, false, &err);
        return;
    }
    if (e) {
        volume_info_t info;
        fill_info(v, e, &info);
        cb(ud, 0, &info, false, &err);
        return;
    }
    if ((r = fs_mkdir_p(v->dir, 0700, &err)) < 0) {
        cb(ud, r, NULL, false, &err);
        return;
    }
    e = xcalloc(1, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    e->size_mb = size_mb;
    e->created_ms = clock_wall_ms();
    e->state = VOL_CREATING;
    map_put(&v->by_name, e->name, e);
    vol_job_t *j = job_new(v, e, ud);
    j->created = cb;
    job_queue(j, create_work, create_done);
}

/* ---- reading ---------------------------------------------------------------- */

static int find(volumes_t *v, const char *name, volume_t **out, mf_error_t *err)
{
    int r = check_name(name, err);
    if (r < 0)
        return r;
    volume_t *e = map_get(&v->by_name, name);
    if (!e || e->state != VOL_READY)
        return mf_error_plain(err, ENOENT, "no volume named %s", name);
    *out = e;
    return 0;
}

int volumes_get(volumes_t *v, const char *name, volume_info_t *out, mf_error_t *err)
{
    volume_t *e;
    int r = find(v, name, &e, err);
    if (r == 0)
        fill_info(v, e, out);
    return r;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const volume_info_t *)a)->name, ((const volume_info_t *)b)->name);
}

int volumes_list(volumes_t *v, volume_info_t **out, size_t *count, mf_error_t *err)
{
    size_t n = 0;
    volume_info_t *list = xcalloc(v->by_name.len + 1, sizeof *list);
    const char *name;
    void *val;
    for (size_t i = 0; map_next(&v->by_name, &i, &name, &val);) {
        const volume_t *e = val;
        if (e->state == VOL_READY)
            fill_info(v, e, &list[n++]);
    }
    qsort(list, n, sizeof *list, by_name);
    *out = list;
    *count = n;
    return 0;
}

bool volumes_exists(volumes_t *v, const char *name)
{
    const volume_t *e = name ? map_get(&v->by_name, name) : NULL;
    return e && e->state == VOL_READY;
}

int volumes_mount_point(void *ud, const char *name, char *path, size_t len, mf_error_t *err)
{
    volumes_t *v = ud;
    volume_t *e;
    int r = find(v, name, &e, err);
    if (r < 0)
        return r;
    if (e->error[0])
        return mf_error_plain(err, EIO, "volume %s is not available: %s", name, e->error);
    snprintf(path, len, "%s/%s", v->dir, name);
    return 0;
}

/* ---- delete ------------------------------------------------------------------- */

static void delete_work(uv_work_t *w)
{
    vol_job_t *j = w->data;
    if (j->mounted)
        j->r = volume__unmount(j->dir, &j->err);
    /* Freeing a large image's blocks takes a while: off the loop. */
    if (j->r == 0 && unlink(j->image) < 0 && errno != ENOENT)
        j->r = mf_error_set(&j->err, errno, "volumes: remove `%s`", j->image);
    if (j->r == 0)
        rmdir(j->dir);
}

static void delete_done(uv_work_t *w, int status)
{
    vol_job_t *j = w->data;
    volumes_t *v = j->v;
    v->jobs--;
    map_remove(&v->by_name, j->e->name);
    if (j->r < 0)
        log_warn("volumes", "volume %s is deleted, but its files stay until the next start: %s",
                 j->e->name, j->err.msg);
    else
        log_info("volumes", "deleted volume %s", j->e->name);
    free(j->e);
    /* The volume is gone for good once the store forgot it: what is left
     * of its files goes at the next start. */
    j->deleted(j->ud, 0, NULL);
    job_free(j);
}

static int delete_apply(void *db, void *arg, mf_error_t *err)
{
    vol_job_t *j = arg;
    return store_volume_delete(db, j->e->name, err);
}

static void delete_recorded(void *arg, int r, const mf_error_t *err)
{
    vol_job_t *j = arg;
    volumes_t *v = j->v;
    v->jobs--;
    if (r < 0) {
        j->e->state = VOL_READY; /* still recorded: as it was */
        j->deleted(j->ud, r, err);
        job_free(j);
        return;
    }
    const char *labels[] = {j->e->name};
    metrics_remove(v->m_used, labels);
    metrics_remove(v->m_size, labels);
    job_queue(j, delete_work, delete_done);
}

void volumes_delete(volumes_t *v, const char *name, volumes_done_cb cb, void *ud)
{
    mf_error_t err = MF_ERROR_INIT;
    volume_t *e = map_get(&v->by_name, name);
    int r = check_name(name, &err);
    if (r == 0 && e && e->state == VOL_CREATING)
        r = mf_error_plain(&err, EBUSY, "volume %s is being created: try again when it is", name);
    else if (r == 0 && e && e->state == VOL_DELETING)
        r = mf_error_plain(&err, EBUSY, "volume %s is being deleted", name);
    else if (r == 0 && (!e || e->state != VOL_READY))
        r = mf_error_plain(&err, ENOENT, "no volume named %s", name);
    if (r < 0) {
        cb(ud, r, &err);
        return;
    }
    /* From here no function can come to mount it (volumes_exists). */
    e->state = VOL_DELETING;
    vol_job_t *j = job_new(v, e, ud);
    j->deleted = cb;
    j->mounted = !v->unavailable[0] && !e->error[0];
    v->jobs++;
    store_writer_submit_or_run(v->writer, v->store, true, delete_apply, delete_recorded, j);
}

void volumes_set_writer(volumes_t *v, store_writer_t *w)
{
    v->writer = w;
}
