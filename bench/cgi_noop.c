/* The fork-per-request peer's function: a CGI program that answers `{}`.
 * fcgiwrap forks and execs it once per request, which is what the row
 * measures. It reads the request body first, as a CGI program should:
 * one that exits without reading it races fcgiwrap writing the body into
 * its stdin, and fcgiwrap answers 502 when it loses. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    const char *len = getenv("CONTENT_LENGTH");
    long left = len ? atol(len) : 0;
    char buf[4096];
    while (left > 0) {
        size_t n = fread(buf, 1, left < (long)sizeof buf ? (size_t)left : sizeof buf, stdin);
        if (n == 0)
            break;
        left -= (long)n;
    }
    fputs("Status: 200 OK\r\nContent-Type: application/json\r\n\r\n{}", stdout);
    return 0;
}
