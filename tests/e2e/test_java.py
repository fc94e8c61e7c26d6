"""The Java runtimes (java17, java21): handlers compiled here with javac
against runtimes/java/lambda-api.jar, deployed to a real server and run in
its sandboxes (docs/runtimes.md)."""

import io
import json
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest
import requests

from conftest import (REPO, assert_error, deploy, deploy_py, get_logs, get_record, invoke,
                      invoke_error, invoke_ok, metric, metrics, run_cli, unique, wait_for)

API_JAR = REPO / "runtimes" / "java" / "lambda-api.jar"

SOURCES = {
    # A POJO handler: an event class in, a result class out.
    "example/Pojo.java": r"""
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestHandler;
import java.util.List;
public class Pojo implements RequestHandler<Pojo.Order, Pojo.Receipt> {
    public static class Order {
        private String item;
        private int quantity;
        private List<String> notes;
        public String getItem() { return item; }
        public void setItem(String item) { this.item = item; }
        public int getQuantity() { return quantity; }
        public void setQuantity(int quantity) { this.quantity = quantity; }
        public List<String> getNotes() { return notes; }
        public void setNotes(List<String> notes) { this.notes = notes; }
    }
    public static class Receipt {
        public String summary;
        public int total;
        public int notes;
    }
    @Override
    public Receipt handleRequest(Order order, Context context) {
        Receipt r = new Receipt();
        r.summary = order.getQuantity() + " x " + order.getItem();
        r.total = order.getQuantity() * 3;
        r.notes = order.getNotes() == null ? -1 : order.getNotes().size();
        return r;
    }
}
""",
    # A stream handler: bytes in, bytes out, no mapping.
    "example/Shout.java": r"""
package example;
import com.amazonaws.services.lambda.runtime.Context;
import com.amazonaws.services.lambda.runtime.RequestStreamHandler;
import java.io.*;
import java.nio.charset.StandardCharsets;
public class Shout implements RequestStreamHandler {
    @Override
    public void handleRequest(InputStream in, OutputStream out, Context context) throws IOException {
        String s = new String(in.readAllBytes(), StandardCharsets.UTF_8);
        out.write(("<" + s.toUpperCase() + ">").getBytes(StandardCharsets.UTF_8));
    }
}
""",
    # Methods named by Class::method: static and not, primitives, strings,
    # maps, void, an exception with a cause, a slow one.
    "example/Calls.java": r"""
package example;
import com.amazonaws.services.lambda.runtime.Context;
import java.util.LinkedHashMap;
import java.util.Map;
public class Calls {
    public static int twice(int n) { return 2 * n; }
    public String greet(String name, Context context) { return "hi " + name; }
    public void nothing(Map<String, Object> event) { }
    public Map<String, Object> context(Map<String, Object> event, Context c) {
        c.getLogger().log("context logger " + c.getAwsRequestId());
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("requestId", c.getAwsRequestId());
        m.put("functionName", c.getFunctionName());
        m.put("functionVersion", c.getFunctionVersion());
        m.put("logGroup", c.getLogGroupName());
        m.put("memory", c.getMemoryLimitInMB());
        m.put("remaining", c.getRemainingTimeInMillis());
        m.put("arn", c.getInvokedFunctionArn());
        m.put("env", System.getenv("GREETING"));
        m.put("taskRoot", System.getenv("LAMBDA_TASK_ROOT"));
        m.put("echo", event.get("x"));
        return m;
    }
    public String logs(Map<String, Object> event, Context c) {
        c.getLogger().log("via LambdaLogger\nsecond line of the same record");
        System.out.println("via System.out");
        System.err.println("via System.err");
        return "logged";
    }
    public String fail(Map<String, Object> event) {
        return check((String) event.get("what"));
    }
    private static String check(String what) {
        try {
            Integer.parseInt(what);
        } catch (NumberFormatException e) {
            throw new IllegalArgumentException("not a number: " + what, e);
        }
        return what;
    }
    public String sleep(Map<String, Object> event) throws InterruptedException {
        System.out.println("sleeping");
        Thread.sleep(((Number) event.get("ms")).longValue());
        return "awake";
    }
}
""",
}


def _javac(src_dir, out_dir):
    files = []
    for rel, text in SOURCES.items():
        p = src_dir / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        files.append(str(p))
    subprocess.run(["javac", "--release", "17", "-cp", str(API_JAR), "-d", str(out_dir), *files],
                   check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """The test functions' .class files, compiled here."""
    assert API_JAR.exists(), "build the Java runtime first: make"
    base = tmp_path_factory.mktemp("java")
    out = base / "classes"
    _javac(base / "src", out)
    return out


@pytest.fixture(scope="module")
def package(classes):
    """A zip with the classes in a jar under lib/, as Maven-built functions
    ship their dependencies."""
    jar = io.BytesIO()
    with zipfile.ZipFile(jar, "w") as z:
        for f in sorted(classes.rglob("*.class")):
            z.write(f, f.relative_to(classes).as_posix())
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr("lib/functions.jar", jar.getvalue())
    return out.getvalue()


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


def java(srv, package, handler, runtime="java17", **settings):
    name = unique("java")
    deploy(srv, name, package, runtime=runtime, handler=handler, **settings)
    return name


def test_pojo_handler_maps_event_and_result_classes(srv, package):
    name = java(srv, package, "example.Pojo")
    r = invoke_ok(srv, name, {"item": "tea", "QUANTITY": 4, "notes": "one", "unknown": True})
    # Names match without regard to case, unknown ones are ignored, and a
    # single value stands for a list, as with Lambda's Java runtime.
    assert r.json() == {"summary": "4 x tea", "total": 12, "notes": 1}
    # The same class through Class::method.
    name2 = java(srv, package, "example.Pojo::handleRequest")
    assert invoke_ok(srv, name2, {"item": "cake", "quantity": 1}).json() == {
        "summary": "1 x cake", "total": 3, "notes": -1}


def test_stream_handler_gets_and_writes_bytes(srv, package):
    name = java(srv, package, "example.Shout")
    r = invoke(srv, name, raw=b"not json at all")
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers, r.text
    assert r.content == b"<NOT JSON AT ALL>"


def test_methods_with_primitives_strings_and_void(srv, package):
    assert invoke_ok(srv, java(srv, package, "example.Calls::twice"), 21).json() == 42
    assert invoke_ok(srv, java(srv, package, "example.Calls::greet"), "ada").json() == "hi ada"
    r = invoke_ok(srv, java(srv, package, "example.Calls::nothing"), {"a": 1})
    assert r.json() is None


def test_exception_has_lambdas_shape_and_the_java_stack_trace(srv, package):
    name = java(srv, package, "example.Calls::fail")
    r, doc = invoke_error(srv, name, {"what": "seven"})
    assert doc["errorType"] == "java.lang.IllegalArgumentException"
    assert doc["errorMessage"] == "not a number: seven"
    # The handler's frames, innermost first, and none of the runtime's.
    trace = doc["stackTrace"]
    assert trace[0].startswith("example.Calls.check(Calls.java:"), trace
    assert trace[-1].startswith("example.Calls.fail(Calls.java:"), trace
    assert not any("io.mayfly" in f or "reflect" in f for f in trace), trace
    assert doc["cause"]["errorType"] == "java.lang.NumberFormatException"
    rid = r.headers["X-Mayfly-Request-Id"]
    rec = get_record(srv, rid)
    assert rec["status"] == "error"
    assert rec["error_type"] == "java.lang.IllegalArgumentException"
    assert rec["error_message"] == "not a number: seven"
    # The runtime's report in the log: the Java stack trace, one record.
    lines = wait_for("the error in the log", lambda: [
        l for l in get_logs(srv, name, request_id=rid)
        if "java.lang.IllegalArgumentException: not a number: seven" in l["message"]])
    assert "at example.Calls.check(Calls.java:" in lines[0]["message"]
    assert "Caused by: java.lang.NumberFormatException" in lines[0]["message"]


def zygote_ready(srv, kind="java17"):
    return metric(metrics(srv), "mayfly_sandbox_pool_ready", kind=kind)


def test_context_methods_and_environment(srv, package):
    name = java(srv, package, "example.Calls::context", memory_mb=256, timeout_s=30,
                env={"GREETING": "hello from env"})
    # Served by a JVM started before its function was known (a zygote),
    # which must take the function's environment in.
    wait_for("a java17 zygote", lambda: zygote_ready(srv))
    r = invoke_ok(srv, name, {"x": [1, 2]})
    got = r.json()
    rid = r.headers["X-Mayfly-Request-Id"]
    assert got["requestId"] == rid
    assert got["functionName"] == name
    assert got["functionVersion"] == "$LATEST"
    assert got["logGroup"] == f"/aws/lambda/{name}"
    assert got["memory"] == 256
    assert 0 < got["remaining"] <= 30000
    assert got["arn"].endswith(f":function:{name}"), got["arn"]
    # The function's own env, also in a JVM started before it was known.
    assert got["env"] == "hello from env"
    assert got["taskRoot"] == "/var/task"
    assert got["echo"] == [1, 2]


def test_logs_from_lambda_logger_and_system_out_carry_the_request_id(srv, package):
    name = java(srv, package, "example.Calls::logs")
    r = invoke_ok(srv, name)
    rid = r.headers["X-Mayfly-Request-Id"]

    def mine():
        lines = get_logs(srv, name, request_id=rid)
        text = [l["message"] for l in lines]
        want = ("via LambdaLogger", "via System.out", "via System.err")
        return lines if all(any(w in t for t in text) for w in want) else None

    lines = wait_for("the three log lines", mine)
    assert all(l["request_id"] == rid for l in lines)
    logger = [l for l in lines if "via LambdaLogger" in l["message"]]
    # One record, however many lines the message spans.
    assert len(logger) == 1 and "second line of the same record" in logger[0]["message"]
    err = [l for l in lines if "via System.err" in l["message"]]
    assert err[0]["stream"] == "stderr"


def test_timeout_is_lambdas_and_the_next_call_runs(srv, package):
    name = java(srv, package, "example.Calls::sleep", timeout_s=1)
    r, doc = invoke_error(srv, name, {"ms": 600000})
    assert doc["errorMessage"] == "Task timed out after 1.00 seconds", doc
    assert get_record(srv, r.headers["X-Mayfly-Request-Id"])["status"] == "timeout"
    # The timed-out JVM is gone; the next call starts another, whose start
    # counts in the call's time: a busy machine must not time that out.
    deploy(srv, name, package, runtime="java17", handler="example.Calls::sleep", timeout_s=60)
    assert invoke_ok(srv, name, {"ms": 1}).json() == "awake"


def test_handler_that_does_not_exist_is_an_init_error(srv, package):
    name = java(srv, package, "example.Nope")
    r, doc = invoke_error(srv, name)
    assert doc["errorType"] == "java.lang.ClassNotFoundException", doc
    assert "example.Nope" in doc["errorMessage"]
    assert get_record(srv, r.headers["X-Mayfly-Request-Id"])["status"] == "error"

    name = java(srv, package, "example.Calls::nope")
    _, doc = invoke_error(srv, name)
    assert doc["errorType"] == "java.lang.NoSuchMethodException", doc
    assert "nope" in doc["errorMessage"] and "example.Calls" in doc["errorMessage"]

    # A class that is neither handler interface needs a method.
    name = java(srv, package, "example.Calls")
    _, doc = invoke_error(srv, name)
    assert "RequestHandler" in doc["errorMessage"], doc


def test_bad_java_settings_are_refused(srv, package):
    for handler in ("example.Hello::", "1example.Hello", "example..Hello", "example.Hello::a.b",
                    "::handleRequest", ""):
        r = requests.put(f"{srv.url}/v1/functions/{unique('bad')}", timeout=60, json={
            "runtime": "java17", "handler": handler,
            "code": {"zip_base64": __import__("base64").b64encode(package).decode()}})
        assert_error(r, 400, "bad_request", "handler")
    r = requests.put(f"{srv.url}/v1/functions/{unique('bad')}", timeout=60, json={
        "runtime": "java11", "handler": "example.Pojo", "code": {"zip_base64": ""}})
    assert_error(r, 400, "bad_request", "runtime", "java17")


def test_cli_deploys_a_folder_of_classes(srv, classes, tmp_path):
    name = unique("javacli")
    r = run_cli(srv.url, "deploy", name, classes, "--runtime", "java17", "--handler",
                "example.Calls::greet")
    assert r.returncode == 0, r.stderr
    r = run_cli(srv.url, "invoke", name, "--data", '"cli"')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == "hi cli"


def test_a_function_larger_than_a_zygote_starts_its_own_jvm(srv, package):
    # Past JVM_ZYGOTE_MAX_MB the JVM is started for the function, its heap
    # sized for it.
    name = java(srv, package, "example.Calls::context", memory_mb=4096)
    assert invoke_ok(srv, name, {"x": 1}).json()["memory"] == 4096


def _jdk_home(major):
    for d in sorted(Path("/usr/lib/jvm").iterdir()):
        rel = d / "release"
        if d.is_symlink() or not rel.exists():
            continue
        m = re.search(r'^JAVA_VERSION="(\d+)', rel.read_text(), re.M)
        if m and (int(m.group(1)) == major or (major == 21 and int(m.group(1)) >= 21)):
            return d
    return None


@pytest.mark.skipif(_jdk_home(21) is None, reason="this host has no JDK 21 or newer")
def test_java21_runs_on_the_hosts_newer_jdk(srv, package):
    name = java(srv, package, "example.Pojo", runtime="java21")
    assert invoke_ok(srv, name, {"item": "x", "quantity": 2}).json()["total"] == 6
    assert requests.get(f"{srv.url}/v1/functions/{name}", timeout=60).json()["runtime"] == "java21"


def test_java21_is_refused_on_a_server_without_a_jdk_21(server, package, tmp_path):
    jdk17 = _jdk_home(17)
    assert jdk17 is not None, "the Java runtime needs Debian's openjdk-17-jdk-headless"
    jvms = tmp_path / "jvm"
    jvms.mkdir()
    os.symlink(jdk17, jvms / "only-17")
    srv = server("--jvm-dir", jvms)
    r = requests.put(f"{srv.url}/v1/functions/{unique('j21')}", timeout=60, json={
        "runtime": "java21", "handler": "example.Pojo",
        "code": {"zip_base64": __import__("base64").b64encode(package).decode()}})
    assert_error(r, 400, "bad_request", "runtime", "Java 21")
    # java17 is there, through the link.
    name = java(srv, package, "example.Pojo")
    assert invoke_ok(srv, name, {"item": "y", "quantity": 1}).json()["total"] == 3


def test_jvms_start_with_the_first_java_function_only(server, package):
    """A JVM zygote costs CPU and memory: a server without Java functions
    keeps none, and the first deploy starts them; after a restart, the
    stored Java function starts them at once."""
    srv = server()
    deploy_py(srv, unique("py"), "def handler(event, context):\n    return 1\n")
    wait_for("the python3 zygote", lambda: zygote_ready(srv, "python3"))
    assert not zygote_ready(srv)
    java(srv, package, "example.Pojo")
    wait_for("a java17 zygote after the deploy", lambda: zygote_ready(srv))
    srv.restart()
    wait_for("a java17 zygote at start", lambda: zygote_ready(srv))
