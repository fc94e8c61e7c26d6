"""Many calls per instance ("instance_concurrency": N) on the runtimes that
are compiled: the Java runtime (threads), the C library of runtimes/c (a
thread pool) and the Go package of runtimes/go (goroutines). Each test
function reports a token its process drew at start, so that calls that
name the same token ran in the same instance.

For each runtime: 8 slow calls at once run in one instance and overlap in
time, each with its own result and its own log lines (what the handler
prints in the language's plain way, and its logger's lines), and metering
per call; a call that times out fails alone, and the instance goes on."""

import io
import subprocess
import zipfile

import pytest

from conftest import (REPO, build_c_bootstrap, deploy, executable, get_record, invoke_all, unique,
                      wait_for)
from test_concurrency_python import SLOTS, check_late_call_fails_alone, messages, warm
from test_go import build_go_bootstrap

API_JAR = REPO / "runtimes" / "java" / "lambda-api.jar"

# Each handler: logs "stdout line TAG", "stderr line TAG" and its logger's
# "logger line TAG" (TAG from the event, not an id: a line is filed under a
# call only if the runtime tagged it), sleeps sleep_ms, logs "slept TAG",
# and answers {rid, tag, token, start, end}.

C_FN = r"""
#include "mayfly_runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static char token[33];

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int handler(const mayfly_event_t *ev, mayfly_response_t *res)
{
    char tag[64], sleep_ms[32];
    if (mayfly_json_get_string(ev->body, ev->body_len, "tag", tag, sizeof tag) < 0)
        strcpy(tag, "none");
    long ms = 0;
    if (mayfly_json_get_string(ev->body, ev->body_len, "sleep_ms", sleep_ms, sizeof sleep_ms) > 0)
        ms = atol(sleep_ms);
    double start = now_s();
    printf("stdout line ");
    printf("%s\n", tag);
    fprintf(stderr, "stderr line %s\n", tag);
    mayfly_log("logger line %s", tag);
    struct timespec d = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&d, &d) < 0)
        ;
    printf("slept %s", tag); /* unfinished: the library ends it with the call */
    return mayfly_response_printf(res,
                                  "{\"rid\":\"%s\",\"tag\":\"%s\",\"token\":\"%s\","
                                  "\"start\":%.6f,\"end\":%.6f}",
                                  ev->request_id, tag, token, start, now_s());
}

int main(void)
{
    FILE *f = fopen("/dev/urandom", "rb");
    unsigned char b[16];
    if (!f || fread(b, 1, sizeof b, f) != sizeof b)
        return mayfly_runtime_init_error("Token", "no /dev/urandom"), 1;
    fclose(f);
    for (int i = 0; i < 16; i++)
        sprintf(token + 2 * i, "%02x", b[i]);
    return mayfly_runtime_run(handler);
}
"""

JAVA_FN = """
package slow;

import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;

public class Slow implements RequestHandler<Map<String, Object>, Map<String, Object>> {
    private static final String TOKEN = UUID.randomUUID().toString().replace("-", "");

    @Override
    public Map<String, Object> handleRequest(Map<String, Object> event, Context context) {
        String tag = String.valueOf(event.get("tag"));
        double start = System.currentTimeMillis() / 1000.0;
        System.out.println("stdout line " + tag);
        System.err.println("stderr line " + tag);
        context.getLogger().log("logger line " + tag);
        try {
            Thread.sleep(Long.parseLong(String.valueOf(event.get("sleep_ms"))));
        } catch (InterruptedException e) {
            throw new RuntimeException(e);
        }
        System.out.print("slept " + tag);
        Map<String, Object> r = new LinkedHashMap<>();
        r.put("rid", context.getAwsRequestId());
        r.put("tag", tag);
        r.put("token", TOKEN);
        r.put("start", start);
        r.put("end", System.currentTimeMillis() / 1000.0);
        return r;
    }
}
"""

GO_FN = """
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"

	mayfly "mayfly/runtime"
)

var token string

type Event struct {
	Tag     string `json:"tag"`
	SleepMs string `json:"sleep_ms"`
}

func now() float64 { return float64(time.Now().UnixNano()) / 1e9 }

func handler(ctx context.Context, ev Event) (map[string]interface{}, error) {
	lc, _ := mayfly.FromContext(ctx)
	start := now()
	// Plain prints are filed by the request id in them; Logf names it itself.
	fmt.Printf("stdout line %s (%s)\\n", ev.Tag, lc.RequestID)
	fmt.Fprintf(os.Stderr, "stderr line %s (%s)\\n", ev.Tag, lc.RequestID)
	mayfly.Logf(ctx, "logger line %s", ev.Tag)
	ms, _ := strconv.Atoi(ev.SleepMs)
	time.Sleep(time.Duration(ms) * time.Millisecond)
	mayfly.Logf(ctx, "slept %s", ev.Tag)
	return map[string]interface{}{"rid": lc.RequestID, "tag": ev.Tag, "token": token,
		"start": start, "end": now()}, nil
}

func main() {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		mayfly.InitError(err)
	}
	token = hex.EncodeToString(b)
	mayfly.Start(handler)
}
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    """Each runtime's test function: (runtime, handler, zip or files)."""
    base = tmp_path_factory.mktemp("concurrency")
    (base / "c").mkdir()
    c = build_c_bootstrap(C_FN, base / "c" / "bootstrap")
    go = build_go_bootstrap(base / "go", GO_FN)
    assert API_JAR.exists(), "build the Java runtime first: make"
    src = base / "java" / "src" / "slow" / "Slow.java"
    src.parent.mkdir(parents=True)
    src.write_text(JAVA_FN)
    classes = base / "java" / "classes"
    subprocess.run(["javac", "--release", "17", "-cp", str(API_JAR), "-d", str(classes), str(src)],
                   check=True, capture_output=True, text=True, timeout=300)
    jar = io.BytesIO()
    with zipfile.ZipFile(jar, "w") as z:
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
    return {
        "c": ("provided", None, {"bootstrap": executable(c.read_bytes())}),
        "go": ("provided.al2023", None, {"bootstrap": executable(go.read_bytes())}),
        "java": ("java17", "slow.Slow", jar.getvalue()),
    }


def deploy_slow(srv, packages, kind, **settings):
    runtime, handler, files = packages[kind]
    name = unique(f"conc-{kind}")
    deploy(srv, name, files, runtime=runtime, handler=handler, instance_concurrency=SLOTS,
           **settings)
    return name








KINDS = ["c", "java", "go"]


@pytest.mark.parametrize("kind", KINDS)
def test_eight_slow_calls_share_one_instance_and_overlap_each_with_its_own_result_and_logs(
        srv, packages, kind):
    name = deploy_slow(srv, packages, kind)
    token = warm(srv, name)
    tags = [f"call{i}x" for i in range(SLOTS)]
    responses = invoke_all(srv, name, [{"tag": t, "sleep_ms": "1000"} for t in tags])

    results = []
    for tag, r in zip(tags, responses):
        assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, (
            tag, r.status_code, r.text)
        out = r.json()
        assert out["tag"] == tag, out  # its own result
        assert out["rid"] == r.headers["X-Mayfly-Request-Id"], out
        results.append(out)
    # One instance: the one the first call started.
    assert {out["token"] for out in results} == {token}, results
    assert len({out["rid"] for out in results}) == SLOTS
    # They ran side by side: each started before another one ended.
    for out in results:
        assert any(o is not out and o["start"] < out["end"] and out["start"] < o["end"]
                   for o in results), (out, results)

    for tag, out in zip(tags, results):
        rid = out["rid"]
        others = [t for t in tags if t != tag]

        def all_lines(rid=rid, tag=tag):
            msgs = messages(srv, name, rid)
            want = [f"stdout line {tag}", f"stderr line {tag}", f"logger line {tag}",
                    f"slept {tag}"]
            return msgs if all(any(w in m for m in msgs) for w in want) else None
        msgs = wait_for(f"the log lines of {tag}", all_lines)
        assert not any(o in m for m in msgs for o in others), (tag, msgs)

        rec = get_record(srv, rid)
        assert rec["status"] == "success", rec
        assert rec["billed_ms"] >= 1 and rec["billed_ms"] >= rec["duration_ms"], rec
        assert isinstance(rec["cpu_ms"], (int, float)) and rec["cpu_ms"] >= 0, rec
        assert isinstance(rec["max_rss_kb"], int) and rec["max_rss_kb"] > 0, rec


@pytest.mark.parametrize("kind", KINDS)
def test_a_call_past_its_deadline_fails_alone_and_the_instance_goes_on(srv, packages, kind):
    timeout_s = 15
    check_late_call_fails_alone(srv, deploy_slow(srv, packages, kind, timeout_s=timeout_s),
                                timeout_s)
