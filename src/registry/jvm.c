/* The Java runtimes' JDKs and JVM command line (see jvm.h). */
#include "registry/jvm.h"

#include <dirent.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"

typedef struct jvm_jdk {
    char *home;     /* resolved: no symlink in it */
    char *name;     /* its directory's name: names its CDS archive */
    unsigned major; /* 0: none */
} jvm_jdk_t;

static pthread_once_t jvm__once = PTHREAD_ONCE_INIT;
static const char *jvm__root = "/usr/lib/jvm";
static bool jvm__root_locked;
static jvm_jdk_t jvm__17, jvm__21;

bool jvm_is_java(const char *runtime)
{
    return !strcmp(runtime, "java17") || !strcmp(runtime, "java21");
}

void jvm_set_root(const char *dir)
{
    if (!jvm__root_locked)
        jvm__root = xstrdup(dir);
}

/* JAVA_VERSION="17.0.15" (or "1.8.0_402" before 9) from a JDK's release file. */
static unsigned jvm__release_major(const char *home)
{
    char *path = xasprintf("%s/release", home);
    FILE *f = fopen(path, "re");
    free(path);
    if (!f)
        return 0;
    char line[256];
    unsigned major = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "JAVA_VERSION=\"", 14))
            continue;
        const char *v = line + 14;
        unsigned a = (unsigned)strtoul(v, NULL, 10);
        if (a == 1) { /* 1.8 → 8 */
            const char *dot = strchr(v, '.');
            a = dot ? (unsigned)strtoul(dot + 1, NULL, 10) : 0;
        }
        major = a;
        break;
    }
    fclose(f);
    return major;
}

static void jvm__take(jvm_jdk_t *slot, const char *home, const char *name, unsigned major)
{
    free(slot->home);
    free(slot->name);
    slot->home = xstrdup(home);
    slot->name = xstrdup(name);
    slot->major = major;
}

static void jvm__scan(void)
{
    jvm__root_locked = true;
    DIR *d = opendir(jvm__root);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char home[PATH_MAX];
        char *path = xasprintf("%s/%s", jvm__root, de->d_name);
        bool found = realpath(path, home) != NULL;
        free(path);
        if (!found)
            continue;
        char *java = xasprintf("%s/bin/java", home);
        bool runs = access(java, X_OK) == 0;
        free(java);
        if (!runs)
            continue;
        unsigned major = jvm__release_major(home);
        if (major < 17)
            continue;
        if (strncmp(home, "/usr/", 5)) {
            log_warn("jvm", "JDK %u at %s is left out: sandboxes see only /usr", major, home);
            continue;
        }
        /* Debian's links (java-1.17.0-openjdk-amd64 -> java-17-openjdk-
         * amd64) lead to a JDK already seen: the resolved name wins, so
         * the archive built for a JDK is found by its directory's name. */
        const char *name = strrchr(home, '/') + 1;
        if (major == 17 && (!jvm__17.major || strcmp(name, jvm__17.name) < 0))
            jvm__take(&jvm__17, home, name, major);
        if (major >= 21 && (!jvm__21.major || major < jvm__21.major ||
                            (major == jvm__21.major && strcmp(name, jvm__21.name) < 0)))
            jvm__take(&jvm__21, home, name, major);
    }
    closedir(d);
    if (jvm__17.major)
        log_info("jvm", "java17 runs on %s", jvm__17.home);
    if (jvm__21.major)
        log_info("jvm", "java21 runs on %s (Java %u)", jvm__21.home, jvm__21.major);
}

static const jvm_jdk_t *jvm__for(const char *runtime)
{
    pthread_once(&jvm__once, jvm__scan);
    const jvm_jdk_t *j = !strcmp(runtime, "java17")   ? &jvm__17
                         : !strcmp(runtime, "java21") ? &jvm__21
                                                      : NULL;
    return j && j->major ? j : NULL;
}

const char *jvm_home(const char *runtime)
{
    const jvm_jdk_t *j = jvm__for(runtime);
    return j ? j->home : NULL;
}

unsigned jvm_major(const char *runtime)
{
    const jvm_jdk_t *j = jvm__for(runtime);
    return j ? j->major : 0;
}

unsigned jvm_heap_mb(unsigned memory_mb)
{
    unsigned heap = memory_mb / 100 * 85 + memory_mb % 100 * 85 / 100;
    return heap > 64 ? heap - 32 : 32;
}

char **jvm_argv(const char *runtime, const char *runtime_dir, unsigned memory_mb)
{
    const jvm_jdk_t *j = jvm__for(runtime);
    if (!j)
        return NULL;
    char **argv = xcalloc(24, sizeof *argv);
    size_t n = 0;
    argv[n++] = xasprintf("%s/bin/java", j->home);
    /* A quick start rather than peak speed, as Lambda's own Java
     * runtimes: C1 only, the serial collector (one thread, no
     * concurrent work to pay for on a small function), no perf-data
     * file in /tmp. */
    argv[n++] = xstrdup("-XX:+UseSerialGC");
    argv[n++] = xstrdup("-XX:TieredStopAtLevel=1");
    argv[n++] = xstrdup("-XX:-UsePerfData");
    argv[n++] = xasprintf("-Xmx%um", jvm_heap_mb(memory_mb));
    argv[n++] = xstrdup("-Xms8m");
    argv[n++] = xstrdup("-Xss512k");
    /* The runtime's and Jackson's classes, loaded and linked ahead, from
     * the archive the build made with this JDK (runtimes/java/Makefile
     * rules in the top Makefile); without one the JDK's own. A stale one
     * is ignored, silently: its warning would land in the function's
     * log. */
    char *archive = xasprintf("%s/java/cds/%s.jsa", runtime_dir ? runtime_dir : "", j->name);
    if (runtime_dir && access(archive, R_OK) == 0)
        argv[n++] = xasprintf("-XX:SharedArchiveFile=/var/runtime/java/cds/%s.jsa", j->name);
    free(archive);
    argv[n++] = xstrdup("-Xshare:auto");
    argv[n++] = xstrdup("-Xlog:disable");
    argv[n++] = xstrdup("-Xlog:all=error:stderr");
    /* A zygote takes its function's environment into System.getenv() and
     * its descriptor through java.io.FileDescriptor. */
    argv[n++] = xstrdup("--add-opens=java.base/java.lang=ALL-UNNAMED");
    argv[n++] = xstrdup("--add-opens=java.base/java.util=ALL-UNNAMED");
    argv[n++] = xstrdup("--add-opens=java.base/java.io=ALL-UNNAMED");
    /* Relative to the JVM's working directory, /var/task, exactly as the
     * build recorded them in the archive, which holds only for the same
     * class path (runtimes/java/build-cds.sh). */
    argv[n++] = xstrdup("-cp");
    argv[n++] = xstrdup("../runtime/java/mayfly-runtime.jar:../runtime/java/lambda-api.jar:"
                        "/usr/share/java/jackson-databind.jar:/usr/share/java/jackson-core.jar:"
                        "/usr/share/java/jackson-annotations.jar");
    argv[n++] = xstrdup("io.mayfly.runtime.Bootstrap");
    return argv;
}
