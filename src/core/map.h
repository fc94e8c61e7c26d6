/* A hash map from NUL-terminated string keys to pointers (open addressing,
 * linear probing). The map copies keys; values are the caller's. */
#ifndef MAYFLY_CORE_MAP_H
#define MAYFLY_CORE_MAP_H

#include <stddef.h>

typedef struct map_entry {
    char *key;     /* NULL: empty; a private marker: deleted */
    void *value;
} map_entry_t;

typedef struct map {
    map_entry_t *entries;
    size_t cap;    /* a power of two, or 0 */
    size_t len;
    size_t used;   /* len + tombstones */
} map_t;

#define MAP_INIT { NULL, 0, 0, 0 }

void *map_get(const map_t *m, const char *key);
/* Sets key to value, replacing (and returning) an earlier value. */
void *map_put(map_t *m, const char *key, void *value);
/* Removes key and returns its value, or NULL. */
void *map_remove(map_t *m, const char *key);
/* Empties the map but keeps its table for reuse. */
void map_clear(map_t *m);
void map_release(map_t *m);

/* Iterates: for (size_t i = 0; map_next(m, &i, &key, &value);) … */
int map_next(const map_t *m, size_t *iter, const char **key, void **value);

#endif
