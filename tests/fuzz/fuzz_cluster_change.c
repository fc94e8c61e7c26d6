/* libFuzzer target: the payloads of the store's change notifications
 * (cluster_change_parse). They come from the database, not from clients,
 * but are parsed as if from anyone: whatever is taken has a kind's name
 * or a batch of lines with a node, an ordered id range and at least one
 * function, and goes into a batch and out again without harm.
 * Build with `make fuzz`; `make test` replays the checked-in corpus. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cluster_change_t c;
    if (cluster_change_parse((const char *)data, size, &c) < 0)
        return 0;
    if (c.kind == CLUSTER_LOGS) {
        if (!c.node[0] || c.first_id < 0 || c.last_id < c.first_id || !c.functions_len ||
            c.functions < (const char *)data ||
            c.functions + c.functions_len != (const char *)data + size)
            abort();
    } else if (!c.name[0] || strlen(c.name) > CLUSTER_NAME_MAX) {
        abort();
    }
    cluster_batch_t b;
    cluster_batch_init(&b);
    cluster_batch_add(&b, &c, "self");
    if (cluster_batch_empty(&b) && !(c.kind == CLUSTER_LOGS && !strcmp(c.node, "self")))
        abort();
    cluster_batch_release(&b);
    return 0;
}
