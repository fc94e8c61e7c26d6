#!/bin/sh
# Builds a class-data-sharing archive of the Java runtime for each JDK of
# the host that runs java17 or java21 (src/registry/jvm.c): the runtime's
# classes and Jackson's, loaded and linked by a training run of the
# runtime (Bootstrap --train), so that a JVM maps them from the archive
# instead of loading them class by class on every cold start.
#
# The archive records the class path as the JVM was given it, and a JVM
# uses the archive only when its own class path names the same files. In
# a sandbox the runtime's jars are at /var/runtime/java and the JVM runs
# in /var/task, so the class path is relative ("../runtime/java/…"): the
# training run runs in a scratch folder's task/, beside a runtime link to
# this runtimes folder, where the same relative names reach the same jars.
#
#   build-cds.sh RUNTIMES_DIR SCRATCH_DIR [JVM_DIR]
set -eu
runtimes=$(cd "$1" && pwd)
scratch=$2
jvm_dir=${3:-/usr/lib/jvm}
out="$runtimes/java/cds"
cp="../runtime/java/mayfly-runtime.jar:../runtime/java/lambda-api.jar"
cp="$cp:/usr/share/java/jackson-databind.jar:/usr/share/java/jackson-core.jar"
cp="$cp:/usr/share/java/jackson-annotations.jar"

rm -rf "$scratch" "$out"
mkdir -p "$scratch/task" "$out"
ln -s "$runtimes" "$scratch/runtime"

for dir in "$jvm_dir"/*/; do
	home=$(realpath "$dir")
	[ -x "$home/bin/java" ] && [ -f "$home/release" ] || continue
	version=$(sed -n 's/^JAVA_VERSION="\([0-9]*\).*/\1/p' "$home/release")
	[ -n "$version" ] && [ "$version" -ge 17 ] || continue
	name=${home##*/}
	[ -f "$out/$name.jsa" ] && continue  # a link to a JDK already done
	# The same flags the runtime starts with (jvm_argv), but the heap's.
	(cd "$scratch/task" && "$home/bin/java" -XX:ArchiveClassesAtExit="$out/$name.jsa" \
		-XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData -Xss512k \
		-Xlog:disable -Xlog:all=error:stderr \
		--add-opens=java.base/java.lang=ALL-UNNAMED \
		--add-opens=java.base/java.util=ALL-UNNAMED \
		--add-opens=java.base/java.io=ALL-UNNAMED \
		-cp "$cp" io.mayfly.runtime.Bootstrap --train)
	chmod 0644 "$out/$name.jsa"
	echo "  CDS  $out/$name.jsa (Java $version)"
done
