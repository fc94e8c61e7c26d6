/* The Java runtimes: which of the host's JDKs runs java17 and java21, and
 * the command line and heap a Java function's JVM gets.
 *
 * The JDKs are found once, the first time one is asked for, among the
 * directories of the JVM folder (Debian's /usr/lib/jvm unless
 * jvm_set_root says otherwise): a JDK is a directory with bin/java and a
 * `release` file naming its JAVA_VERSION. java17 is run by a JDK 17;
 * java21 by a JDK 21, or else by the oldest newer one (Java keeps running
 * what an older release compiled). A JDK must live under /usr, the only
 * part of the host a sandbox sees; one elsewhere is left out with a
 * warning. */
#ifndef MAYFLY_REGISTRY_JVM_H
#define MAYFLY_REGISTRY_JVM_H

#include <stdbool.h>
#include <stddef.h>

/* Whether runtime (canonical: "java17", "java21") names a Java runtime. */
bool jvm_is_java(const char *runtime);

/* Where to look for JDKs instead of /usr/lib/jvm (--jvm-dir). Call it
 * before anything asks for a JDK; later calls change nothing. */
void jvm_set_root(const char *dir);

/* The home of the JDK that runs runtime ("/usr/lib/jvm/java-17-openjdk-
 * amd64"), or NULL when the host has none for it. Thread-safe. */
const char *jvm_home(const char *runtime);

/* The Java feature release of that JDK (17, 21, 25…), or 0 without one. */
unsigned jvm_major(const char *runtime);

/* The JVM's maximum heap for a function of memory_mb: 85 % of it, less
 * 32 MB for what a JVM keeps beside the heap (metaspace, code cache,
 * thread stacks, the collector's own), at least 32 MB. */
unsigned jvm_heap_mb(unsigned memory_mb);

/* The largest memory_mb a pre-started JVM (a zygote) serves: its heap is
 * sized for this when it starts, before its function is known. A larger
 * function starts a JVM of its own with its own heap. */
#define JVM_ZYGOTE_MAX_MB 3008

/* The JVM's command line (NULL-terminated, each string and the array
 * malloc'd) for runtime, with runtime_dir the host folder mounted at
 * /var/runtime (to see whether a class-data-sharing archive was built for
 * this JDK) and a heap for memory_mb. NULL when the host has no JDK for
 * runtime. */
char **jvm_argv(const char *runtime, const char *runtime_dir, unsigned memory_mb);

#endif
