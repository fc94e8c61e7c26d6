/* A fresh temporary directory per test, as a cmocka setup/teardown pair:
 * the test gets its path as *state, and everything under it is removed. */
#ifndef MAYFLY_TESTS_TMPDIR_H
#define MAYFLY_TESTS_TMPDIR_H

#include <stdlib.h>

#include "core/error.h"
#include "core/fs.h"
#include "core/xalloc.h"

static inline int setup_dir(void **state)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = xasprintf("%s/mayfly-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        free(dir);
        return -1;
    }
    *state = dir;
    return 0;
}

static inline int teardown_dir(void **state)
{
    mf_error_t err = MF_ERROR_INIT;
    fs_rm_rf(*state, &err);
    free(*state);
    return 0;
}

#endif
