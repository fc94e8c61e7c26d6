/* The process title: what `ps` and /proc/PID/cmdline show. A sandbox's
 * init is a fork of the server that never execs, so without this it would
 * show the function the server's whole command line. */
#ifndef MAYFLY_CORE_PROCTITLE_H
#define MAYFLY_CORE_PROCTITLE_H

/* Remembers where argv's strings live; call first thing in main. */
void proctitle_init(int argc, char **argv);
/* Overwrites argv's strings with title (cut to fit) and NULs. Safe after
 * fork (it touches only this process's copy) and without malloc. */
void proctitle_set(const char *title);

#endif
