/* of-watchdog's function in fork mode (its `streaming` mode forks and execs
 * the fprocess once per request, the request body on its stdin and its
 * stdout the response): the ofw-fork row's no-op. It reads the body to its
 * end first, as a well-behaved function should, and answers `{}`. */
#include <stdio.h>

int main(void)
{
    char buf[4096];
    while (fread(buf, 1, sizeof buf, stdin) > 0)
        ;
    fputs("{}", stdout);
    return 0;
}
