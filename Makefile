# mayfly — one binary, bin/mayfly. See README.md.
#
#   make          build bin/mayfly and the examples that need compiling
#   make deps     install the Debian packages the build and tests need
#   make run      deps + build + start the server with the examples deployed
#   make test     deps + build + unit tests, fuzz corpus replay, end-to-end
#   make fuzz     build the libFuzzer targets (clang) into build/fuzz/
#   make bench    the benchmark suite (never part of make test)

CC      ?= gcc
PYTHON  := /usr/bin/python3
PKGS    := libuv jansson sqlite3 libpq libzip libcurl libcrypto libseccomp libcap libnftnl libmnl
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wstrict-prototypes
CFLAGS_COMMON = -std=gnu17 -g $(WARN) -Isrc -D_GNU_SOURCE \
		$(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS  = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lhttp_parser -lresolv -lpthread -lm

RELEASE_CFLAGS := -O2 -fno-omit-frame-pointer
SAN_FLAGS      := -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_CFLAGS    := -O1 -fno-omit-frame-pointer $(SAN_FLAGS)

# The console's files (console/, hidden ones left out), embedded into the
# binary by a C source the build writes (scripts/console_embed.c): written
# again when a file changes, or one comes or goes (a folder's time changes).
CONSOLE_FILES := $(shell find console -type f ! -path '*/.*' 2>/dev/null | LC_ALL=C sort)
CONSOLE_DIRS  := $(shell find console -type d ! -path '*/.*' 2>/dev/null)
CONSOLE_GEN   := build/gen/console/assets.c
CONSOLE_EMBED := build/tools/console_embed

# Every source file but main.c goes into the library the unit tests link.
SRC     := $(shell find src -name '*.c' | sort) $(CONSOLE_GEN)
LIB_SRC := $(filter-out src/main.c,$(SRC))

REL_OBJ  := $(SRC:%.c=build/rel/%.o)
ASAN_OBJ := $(SRC:%.c=build/asan/%.o)
ASAN_LIB_OBJ := $(LIB_SRC:%.c=build/asan/%.o)

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=build/asan/tests/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=build/asan/tests/replay_%)

EXAMPLES := examples/hello-c/bootstrap examples/noop-c/bootstrap examples/hello-go/bootstrap

# Go builds offline and self-contained: no module proxy, no toolchain
# download, no user's go env file; the build cache under build/ (so a fresh
# clone, CI as root and `make clean` all see the same state); static
# binaries, which have no dynamic loading to do on a cold start.
GO      ?= go
GO_ENV  := GOCACHE=$(CURDIR)/build/go-cache GOPATH=$(CURDIR)/build/go-path GOENV=off \
	GOPROXY=off GOSUMDB=off GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0 GOOS=linux
GO_BUILD := build -trimpath -buildvcs=false -ldflags=-s\ -w
GO_RUNTIME_SRC := runtimes/go/go.mod $(wildcard runtimes/go/*.go)

# The Java runtime (runtimes/java): the Lambda interfaces functions compile
# against, the runtime, and a class-data-sharing archive per JDK; built
# with javac and jar alone, against Debian's Jackson.
JACKSON_CP := /usr/share/java/jackson-databind.jar:/usr/share/java/jackson-core.jar:/usr/share/java/jackson-annotations.jar
JAVA_API_SRC := $(shell find runtimes/java/api -name '*.java' | sort)
JAVA_RT_SRC := $(shell find runtimes/java/src -name '*.java' | sort)
JAVA_RUNTIME := runtimes/java/lambda-api.jar runtimes/java/mayfly-runtime.jar runtimes/java/cds/.stamp
JAVA_EXAMPLES := examples/hello-java/hello.jar

# Debian packages the build, the tests and the examples need.
DEB_PKGS := gcc make pkg-config libuv1-dev libhttp-parser-dev libjansson-dev \
	libsqlite3-dev postgresql libpq-dev libzip-dev libcurl4-openssl-dev libssl-dev libseccomp-dev \
	libcap-dev libnftnl-dev libmnl-dev libcmocka-dev openjdk-17-jdk-headless libjackson2-databind-java python3 python3-pytest python3-pytest-xdist python3-requests \
	zip unzip golang-go \
	iproute2 procps nodejs awscli python3-boto3 cmake g++ xz-utils e2fsprogs tzdata \
	chromium chromium-driver python3-selenium
# npm and Node's headers (for the native addon aws-lambda-ric builds) only
# when this machine's node lacks them: a NodeSource nodejs bundles both and
# conflicts with Debian's npm package.
NODE_DEB_PKGS = $$(command -v npm >/dev/null || echo npm; \
	test -f /usr/include/node/common.gypi || echo libnode-dev)
# The Node.js clients of the Lambda-compatibility tests, pinned by
# tests/e2e/js/package-lock.json; reinstalled when the lock or node changes.
JS_DIR := tests/e2e/js

.PHONY: all deps run test unit fuzz-replay e2e fuzz bench clean format

all: bin/mayfly $(EXAMPLES) runtimes/python3/__pycache__/.stamp $(JAVA_RUNTIME) $(JAVA_EXAMPLES)

# The Python runtime's module, compiled ahead: the sandbox mounts runtimes/
# read-only, and compiling it on every cold start would cost milliseconds.
runtimes/python3/__pycache__/.stamp: $(wildcard runtimes/python3/*.py)
	$(PYTHON) -m compileall -q runtimes/python3
	@touch $@

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	done); \
	missing="$$missing $(NODE_DEB_PKGS)"; missing=$$(echo $$missing); \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@stamp=$(JS_DIR)/node_modules/.mayfly-deps; \
	if [ ! -f $$stamp ] || [ $(JS_DIR)/package-lock.json -nt $$stamp ] || \
	   [ "$$(cat $$stamp)" != "$$(node --version)" ]; then \
		echo "make deps: npm ci in $(JS_DIR)"; \
		if [ -f /usr/include/node/common.gypi ]; then export npm_config_nodedir=/usr; fi; \
		(cd $(JS_DIR) && npm ci --no-audit --no-fund --loglevel=error) && \
		test -f $(JS_DIR)/node_modules/aws-lambda-ric/rapid-client.node || \
		{ echo "make deps: npm ci did not build aws-lambda-ric's native client" >&2; exit 1; }; \
		node --version > $$stamp; \
	fi

bin/mayfly: $(REL_OBJ)
	@mkdir -p $(@D)
	@echo "  LINK $@"
	@$(CC) $(RELEASE_CFLAGS) -o $@ $^ $(LDLIBS)

build/asan/mayfly: $(ASAN_OBJ)
	@mkdir -p $(@D)
	@echo "  LINK $@"
	@$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)

$(CONSOLE_EMBED): scripts/console_embed.c src/console/types.c src/console/path.c src/console/console.h
	@mkdir -p $(@D)
	@echo "  CC   $@"
	@$(CC) $(CFLAGS_COMMON) -O1 -o $@ scripts/console_embed.c src/console/types.c \
		src/console/path.c -lcrypto

$(CONSOLE_GEN): $(CONSOLE_EMBED) $(CONSOLE_FILES) $(CONSOLE_DIRS)
	@mkdir -p $(@D)
	@echo "  GEN  $@"
	@$(CONSOLE_EMBED) $@ console $(CONSOLE_FILES)

build/rel/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC   $@"
	@$(CC) $(CFLAGS_COMMON) $(RELEASE_CFLAGS) -MMD -MP -c -o $@ $<

build/asan/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC   $@"
	@$(CC) $(CFLAGS_COMMON) $(ASAN_CFLAGS) -MMD -MP -c -o $@ $<

build/asan/tests/test_%: tests/unit/test_%.c $(ASAN_LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  LINK $@"
	@$(CC) $(CFLAGS_COMMON) $(ASAN_CFLAGS) -MMD -MP -MT $@ -Itests/unit -o $@ \
		$(filter %.c %.o,$^) $(LDLIBS) -lcmocka

build/asan/tests/replay_%: tests/fuzz/%.c tests/fuzz/replay.c $(ASAN_LIB_OBJ)
	@mkdir -p $(@D)
	@echo "  LINK $@"
	@$(CC) $(CFLAGS_COMMON) $(ASAN_CFLAGS) -MMD -MP -MT $@ -o $@ $(filter %.c %.o,$^) $(LDLIBS)

build/fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(@D)
	clang -std=gnu17 -g -O1 -Isrc -D_GNU_SOURCE $(shell pkg-config --cflags $(PKGS)) \
		-fsanitize=fuzzer,address,undefined -o $@ $^ $(LDLIBS)


# A C function is its handler plus runtimes/c, built into the package's
# `bootstrap` (the `provided` runtime's entry point), linked statically: no
# dynamic loader work on a cold start.
examples/%/bootstrap: examples/%/main.c runtimes/c/mayfly_runtime.c runtimes/c/mayfly_runtime.h
	$(CC) -std=gnu17 -O2 -Wall -Wextra -Werror -static -Iruntimes/c -o $@ $< runtimes/c/mayfly_runtime.c

# A Go function is its package plus runtimes/go (go.mod's replace points
# there), built into the package's `bootstrap` for `provided.al2023`.
examples/hello-go/bootstrap: examples/hello-go/go.mod $(wildcard examples/hello-go/*.go) $(GO_RUNTIME_SRC)
	cd $(@D) && $(GO_ENV) $(GO) $(GO_BUILD) -o bootstrap .

runtimes/java/lambda-api.jar: $(JAVA_API_SRC)
	@rm -rf build/java/api && mkdir -p build/java/api
	@echo "  JAVA $@"
	@javac --release 17 -nowarn -d build/java/api $^
	@jar cf $@ -C build/java/api .

runtimes/java/mayfly-runtime.jar: $(JAVA_RT_SRC) runtimes/java/lambda-api.jar
	@rm -rf build/java/rt && mkdir -p build/java/rt
	@echo "  JAVA $@"
	@javac --release 17 -Xlint:all -Werror -cp runtimes/java/lambda-api.jar:$(JACKSON_CP) \
		-d build/java/rt $(JAVA_RT_SRC)
	@jar cf $@ -C build/java/rt .

runtimes/java/cds/.stamp: runtimes/java/mayfly-runtime.jar runtimes/java/lambda-api.jar \
		runtimes/java/build-cds.sh
	@runtimes/java/build-cds.sh runtimes build/java/cds-root
	@touch $@

# A Java function is its classes in a jar (or a zip of .class files and
# lib/*.jar), compiled against runtimes/java/lambda-api.jar.
examples/hello-java/hello.jar: $(wildcard examples/hello-java/src/*/*.java) runtimes/java/lambda-api.jar
	@rm -rf build/java/hello && mkdir -p build/java/hello
	@echo "  JAVA $@"
	@javac --release 17 -cp runtimes/java/lambda-api.jar -d build/java/hello \
		$(wildcard examples/hello-java/src/*/*.java)
	@jar cf $@ -C build/java/hello .

run: deps all
	./scripts/run.sh

test: deps all build/asan/mayfly unit fuzz-replay e2e

# The unit tests run with a throwaway PostgreSQL (tests/pg.sh) for the store
# tests that run on both backends; it is stopped and removed however the
# tests end. A MAYFLY_TEST_PG already set (a postgresql:// URL of a server
# where the tests may create and drop databases) is used instead.
unit: $(UNIT_BIN)
	@set -e; \
	if [ -z "$$MAYFLY_TEST_PG" ]; then \
		pgdir=$$(mktemp -d); \
		trap 'tests/pg.sh stop "$$pgdir"' EXIT; trap 'exit 130' INT TERM; \
		MAYFLY_TEST_PG=$$(tests/pg.sh start "$$pgdir"); export MAYFLY_TEST_PG; \
	fi; \
	for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

fuzz-replay: $(FUZZ_REPLAY)
	@set -e; for t in $(FUZZ_REPLAY); do \
		name=$${t##*/replay_}; echo "== $$t tests/fuzz/corpus/$$name"; \
		$$t tests/fuzz/corpus/$$name; done

# End-to-end test files run side by side, E2E_WORKERS at a time (pytest-xdist;
# a whole file to one worker, so a module's shared server stays in it), then
# the tests marked `serial` alone: they look at the whole machine (its
# mounts), where another file's servers would show. Every test is written to
# pass on a loaded machine, so the workers slowing each other down is fine.
E2E_WORKERS ?= 3
E2E_PYTEST = MAYFLY_BIN=$(CURDIR)/build/asan/mayfly $(PYTHON) -m pytest -q -p no:cacheprovider

e2e: bin/mayfly build/asan/mayfly $(EXAMPLES)
	@rc=0; \
	echo "$(E2E_PYTEST) -n $(E2E_WORKERS) --dist loadfile -m 'not serial' tests/e2e"; \
	$(E2E_PYTEST) -n $(E2E_WORKERS) --dist loadfile -m 'not serial' tests/e2e || rc=$$?; \
	echo "$(E2E_PYTEST) -m serial tests/e2e"; \
	$(E2E_PYTEST) -m serial tests/e2e || rc=$$?; \
	exit $$rc

fuzz: $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)

bench: deps all
	./bench/run.sh

format:
	clang-format -i $(SRC) $(shell find src -name '*.h') $(UNIT_SRC) $(FUZZ_SRC)

clean:
	rm -rf build bin $(EXAMPLES) runtimes/python3/__pycache__ $(JAVA_RUNTIME) runtimes/java/cds \
		$(JAVA_EXAMPLES)

-include $(shell find build -name '*.d' 2>/dev/null)
