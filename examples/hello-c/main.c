/*
 * A Lambda function in C: greets the caller by name.
 *
 * Built into ./bootstrap by `make` (or by hand:
 *   cc -std=gnu17 -O2 -I../../runtimes/c -o bootstrap main.c ../../runtimes/c/mayfly_runtime.c)
 * and deployed with --runtime provided.
 */
#include "mayfly_runtime.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char name[1024];
    int n = mayfly_json_get_string(ev->body, ev->body_len, "name", name, sizeof name);
    if (n == -ENOENT) {
        strcpy(name, "world");
        n = 5;
    } else if (n == -ENOSPC) {
        return mayfly_response_error(res, "ValidationError", "name is longer than %zu bytes",
                                     sizeof name - 1);
    } else if (n < 0) {
        return mayfly_response_error(res, "ValidationError", "name must be a string");
    }

    printf("hello-c: greeting %.*s (request %s)\n", n, name, ev->request_id);

    char greeting[sizeof name + 16];
    int len = snprintf(greeting, sizeof greeting, "hello, %.*s!", n, name);
    mayfly_response_set(res, "{\"message\":", 11);
    mayfly_response_append_json_string(res, greeting, (size_t)len);
    mayfly_response_append(res, ",\"request_id\":", 14);
    mayfly_response_append_json_string(res, ev->request_id, strlen(ev->request_id));
    mayfly_response_append(res, "}", 1);
    return 0;
}

int main(void)
{
    return mayfly_runtime_run(handler);
}
