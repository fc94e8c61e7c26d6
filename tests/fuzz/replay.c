/* Replays fuzz inputs (files, or every file in folders) through a fuzz
 * target's LLVMFuzzerTestOneInput, so `make test` runs the corpus under
 * ASan and UBSan without needing clang's libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/fs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path, unsigned *count)
{
    buf_t b = BUF_INIT;
    mf_error_t err = MF_ERROR_INIT;
    if (fs_read_file(path, &b, 16 << 20, &err) < 0) {
        fprintf(stderr, "replay: %s\n", err.msg);
        buf_release(&b);
        return -1;
    }
    /* Copy into an exact-size allocation so ASan sees reads past the end. */
    uint8_t *copy = malloc(b.len ? b.len : 1);
    memcpy(copy, b.data, b.len);
    LLVMFuzzerTestOneInput(copy, b.len);
    free(copy);
    buf_release(&b);
    (*count)++;
    return 0;
}

int main(int argc, char **argv)
{
    unsigned count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) < 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (replay_file(argv[i], &count) < 0)
                return 1;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *de;
        while (d && (de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
            if (replay_file(path, &count) < 0) {
                closedir(d);
                return 1;
            }
        }
        if (d)
            closedir(d);
    }
    printf("replayed %u inputs, no crash\n", count);
    return count ? 0 : 1;
}
