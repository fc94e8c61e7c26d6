#include "core/proctitle.h"

#include <string.h>

static char *area;
static size_t area_len;

void proctitle_init(int argc, char **argv)
{
    if (argc < 1 || !argv[0])
        return;
    /* The kernel lays argv's strings out back to back; the title may use
     * all of that space, and no more. */
    char *end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++) {
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
    }
    area = argv[0];
    area_len = (size_t)(end - argv[0]);
}

void proctitle_set(const char *title)
{
    if (!area || area_len < 2)
        return;
    size_t n = strlen(title);
    if (n > area_len - 1)
        n = area_len - 1;
    memcpy(area, title, n);
    memset(area + n, 0, area_len - n);
}
