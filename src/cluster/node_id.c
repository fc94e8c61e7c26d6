/* This server's id among the nodes that share a database (cluster.h). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cluster/cluster.h"
#include "core/id.h"

/* "-" and 8 hex digits. */
#define SUFFIX_LEN 9

void cluster_node_id_format(const char *host, uint32_t rnd, char *out, size_t size)
{
    char name[CLUSTER_NODE_ID_MAX + 1];
    size_t keep = size > SUFFIX_LEN + 1 ? size - SUFFIX_LEN - 1 : 0;
    if (keep > CLUSTER_NODE_ID_MAX - SUFFIX_LEN)
        keep = CLUSTER_NODE_ID_MAX - SUFFIX_LEN;
    size_t n = 0;
    for (const char *p = host ? host : ""; *p && n < keep; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        name[n++] = ok ? c : '_';
    }
    name[n] = '\0';
    if (!n)
        snprintf(name, sizeof name, "%.*s", (int)keep, "node");
    snprintf(out, size, "%s-%08x", name, rnd);
}

static char node_id[CLUSTER_NODE_ID_MAX + 1];
static uv_once_t node_id_once = UV_ONCE_INIT;

static void node_id_make(void)
{
    char host[256] = "";
    if (gethostname(host, sizeof host) < 0)
        host[0] = '\0';
    host[sizeof host - 1] = '\0';
    uint32_t rnd;
    id_random_bytes(&rnd, sizeof rnd);
    cluster_node_id_format(host, rnd, node_id, sizeof node_id);
}

const char *cluster_node_id(void)
{
    uv_once(&node_id_once, node_id_make);
    return node_id;
}
