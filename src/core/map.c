#include "core/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

static char tombstone[1];
#define MAP__TOMBSTONE tombstone

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static map_entry_t *find(const map_t *m, const char *key)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = hash(key) & mask;; i = (i + 1) & mask) {
        map_entry_t *e = &m->entries[i];
        if (!e->key)
            return NULL;
        if (e->key != MAP__TOMBSTONE && !strcmp(e->key, key))
            return e;
    }
}

static void grow(map_t *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    /* Rehashing in place of growth when mostly tombstones. */
    if (m->cap && m->len * 2 < m->cap)
        cap = m->cap;
    map_entry_t *old = m->entries;
    size_t oldcap = m->cap;
    m->entries = xcalloc(cap, sizeof *m->entries);
    m->cap = cap;
    m->used = m->len;
    size_t mask = cap - 1;
    for (size_t j = 0; j < oldcap; j++) {
        if (!old[j].key || old[j].key == MAP__TOMBSTONE)
            continue;
        size_t i = hash(old[j].key) & mask;
        while (m->entries[i].key)
            i = (i + 1) & mask;
        m->entries[i] = old[j];
    }
    free(old);
}

void *map_get(const map_t *m, const char *key)
{
    map_entry_t *e = find(m, key);
    return e ? e->value : NULL;
}

void *map_put(map_t *m, const char *key, void *value)
{
    map_entry_t *e = find(m, key);
    if (e) {
        void *old = e->value;
        e->value = value;
        return old;
    }
    if ((m->used + 1) * 4 > m->cap * 3)
        grow(m);
    size_t mask = m->cap - 1;
    size_t i = hash(key) & mask;
    while (m->entries[i].key && m->entries[i].key != MAP__TOMBSTONE)
        i = (i + 1) & mask;
    if (!m->entries[i].key)
        m->used++;
    m->entries[i].key = xstrdup(key);
    m->entries[i].value = value;
    m->len++;
    return NULL;
}

void *map_remove(map_t *m, const char *key)
{
    map_entry_t *e = find(m, key);
    if (!e)
        return NULL;
    void *v = e->value;
    free(e->key);
    e->key = MAP__TOMBSTONE;
    e->value = NULL;
    m->len--;
    return v;
}

void map_clear(map_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->entries[i].key && m->entries[i].key != MAP__TOMBSTONE)
            free(m->entries[i].key);
        m->entries[i].key = NULL;
        m->entries[i].value = NULL;
    }
    m->len = m->used = 0;
}

void map_release(map_t *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->entries[i].key && m->entries[i].key != MAP__TOMBSTONE)
            free(m->entries[i].key);
    }
    free(m->entries);
    memset(m, 0, sizeof *m);
}

int map_next(const map_t *m, size_t *iter, const char **key, void **value)
{
    for (; *iter < m->cap; (*iter)++) {
        map_entry_t *e = &m->entries[*iter];
        if (e->key && e->key != MAP__TOMBSTONE) {
            *key = e->key;
            *value = e->value;
            (*iter)++;
            return 1;
        }
    }
    return 0;
}
