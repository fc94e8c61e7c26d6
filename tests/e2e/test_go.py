"""Go functions on the `provided.al2023` runtime, written with runtimes/go
(`mayfly.Start`): the shipped example through the CLI and over HTTP, the
handler shapes Lambda's Go library accepts, errors and panics in Lambda's
error shape, the context (request id, deadline), struct events and results,
log lines, init errors, and the platform's API from inside a Go function.

The functions are built here with Debian's Go, offline, exactly as `make`
builds examples/hello-go (no module proxy; runtimes/go is found through
go.mod's replace)."""

import json
import os
import re
import shlex
import shutil
import subprocess
import time

import pytest
import requests

from conftest import (REPO, deploy, deploy_py, executable, get_logs, get_record, invoke,
                      invoke_error, invoke_ok, make_zip, unique, wait_for)

RUNTIME_DIR = REPO / "runtimes" / "go"

# The environment `make` builds Go with (the Makefile's GO_ENV): the cache
# in the build folder, shared with make, so the standard library is compiled
# once; never a network fetch.
GO_ENV = {
    "GOCACHE": str(REPO / "build" / "go-cache"),
    "GOPATH": str(REPO / "build" / "go-path"),
    "GOENV": "off",
    "GOPROXY": "off",
    "GOSUMDB": "off",
    "GOFLAGS": "-mod=mod",
    "GOTOOLCHAIN": "local",
    "CGO_ENABLED": "0",
    "GOOS": "linux",
}


def build_go_bootstrap(folder, source):
    """Builds the Go function source (package main) with runtimes/go into
    folder/bootstrap; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "main.go").write_text(source)
    (folder / "go.mod").write_text(
        "module fn\n\ngo 1.19\n\nrequire mayfly/runtime v0.0.0\n\n"
        f"replace mayfly/runtime => {RUNTIME_DIR}\n")
    env = dict(os.environ, **GO_ENV)
    p = subprocess.run(["go", "build", "-trimpath", "-buildvcs=false", "-o", "bootstrap", "."],
                       cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"go build failed:\n{p.stdout}\n{p.stderr}"
    return folder / "bootstrap"


def deploy_go(srv, name, bootstrap, **settings):
    return deploy(srv, name, {"bootstrap": executable(bootstrap.read_bytes())},
                  runtime="provided.al2023", handler=None, **settings)


# One function with many behaviours, chosen by the event's "op" (and, for
# what happens before Start, by GO_MODE in its environment): one build for
# the whole file.
GO_FN = r"""
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	mayfly "mayfly/runtime"
)

type Item struct {
	Sku string `json:"sku"`
	Qty int    `json:"qty"`
}

type Event struct {
	Op    string            `json:"op"`
	What  string            `json:"what"`
	Items []Item            `json:"items"`
	Note  *string           `json:"note"`
	Meta  map[string]any    `json:"meta"`
	Store string            `json:"store"`
	Tags  map[string]string `json:"tags"`
}

type Receipt struct {
	Total  int            `json:"total"`
	Skus   []string       `json:"skus"`
	Note   *string        `json:"note"`
	Meta   map[string]any `json:"meta"`
	Html   string         `json:"html"`
	Hidden string         `json:"-"`
}

type ValidationError struct{ Field string }

func (e *ValidationError) Error() string { return "invalid field " + e.Field }

//go:noinline
func explode(what string) {
	panic("boom: " + what)
}

func handler(ctx context.Context, ev Event) (any, error) {
	lc, ok := mayfly.FromContext(ctx)
	if !ok {
		return nil, errors.New("no mayfly.Context in ctx")
	}
	switch ev.Op {
	case "order":
		r := Receipt{Note: ev.Note, Meta: ev.Meta, Html: "<a href=\"x\">&</a>", Hidden: "no"}
		for _, it := range ev.Items {
			r.Total += it.Qty
			r.Skus = append(r.Skus, it.Sku)
		}
		return r, nil
	case "error":
		return nil, errors.New("bad input: " + ev.What)
	case "custom":
		return nil, &ValidationError{Field: ev.What}
	case "typed":
		return nil, fmt.Errorf("wrapped: %w", &mayfly.Error{Type: "Orders.Rejected", Message: ev.What})
	case "panic":
		explode(ev.What)
	case "index":
		xs := []int{1}
		return xs[len(ev.What)], nil
	case "context":
		dl, has := ctx.Deadline()
		return map[string]any{
			"request_id": lc.RequestID, "arn": lc.InvokedFunctionArn,
			"deadline_ms": lc.Deadline.UnixMilli(), "ctx_deadline_ms": dl.UnixMilli(),
			"has_deadline": has, "ctx_err": fmt.Sprint(ctx.Err()),
			"trace_id": lc.TraceID, "trace_env": os.Getenv("_X_AMZN_TRACE_ID"),
			"traceparent": lc.Traceparent,
		}, nil
	case "log":
		fmt.Println("stdout line of " + lc.RequestID)
		log.Printf("stderr line of %s", lc.RequestID)
		return "logged", nil
	case "pid":
		return os.Getpid(), nil
	case "goroutine-panic":
		done := make(chan struct{})
		go func() { defer close(done); explode(ev.What) }()
		<-done
		return "unreachable", nil
	case "kv":
		return kv(ctx, ev)
	case "nothing":
		return nil, nil
	}
	return nil, &mayfly.Error{Type: "UnknownOp", Message: "no op " + ev.Op}
}

func kv(ctx context.Context, ev Event) (any, error) {
	out := map[string]any{}
	s := mayfly.KV(ev.Store)
	v1, err := s.Put(ctx, "doc", []byte(`{"a":1}`), &mayfly.PutOptions{ContentType: "application/json"})
	if err != nil {
		return nil, err
	}
	it, err := s.Get(ctx, "doc")
	if err != nil {
		return nil, err
	}
	out["got"], out["type"], out["same_version"] = string(it.Value), it.ContentType, it.Version == v1
	_, err = s.Put(ctx, "doc", []byte("x"), &mayfly.PutOptions{IfVersion: v1 + 1000})
	out["stale"] = errors.Is(err, mayfly.ErrPreconditionFailed)
	_, err = s.Put(ctx, "doc", []byte("x"), &mayfly.PutOptions{IfAbsent: true})
	out["exists"] = errors.Is(err, mayfly.ErrPreconditionFailed)
	a, _ := s.Incr(ctx, "n", 1)
	b, _ := s.Incr(ctx, "n", 41)
	out["n"] = []int64{a, b}
	d1, _ := s.Delete(ctx, "doc", 0)
	d2, _ := s.Delete(ctx, "doc", 0)
	out["deleted"] = []bool{d1, d2}
	_, err = s.Get(ctx, "doc")
	out["missing"] = errors.Is(err, mayfly.ErrNotFound)
	_, err = mayfly.KV("not-mine").Get(ctx, "k")
	var ae *mayfly.APIError
	out["forbidden"] = errors.Is(err, mayfly.ErrForbidden) && errors.As(err, &ae) && ae.Status == 403
	res, err := mayfly.Invoke(ctx, ev.Store, map[string]string{"from": "go"})
	if err != nil {
		return nil, err
	}
	out["called"] = res
	_, err = mayfly.Invoke(ctx, ev.What, nil)
	var fe *mayfly.FunctionError
	if errors.As(err, &fe) {
		out["callee_error"] = []string{fe.Type, fe.Message}
	}
	return out, nil
}

func main() {
	switch os.Getenv("GO_MODE") {
	case "init-error":
		mayfly.InitError(&mayfly.Error{Type: "Config.Missing", Message: "DATABASE_URL is not set"})
	case "not-a-function":
		mayfly.Start("handler")
	case "three-args":
		mayfly.Start(func(ctx context.Context, a, b int) error { return nil })
	case "no-args":
		mayfly.Start(func() { fmt.Println("no-args ran") })
	case "ctx-error":
		mayfly.Start(func(ctx context.Context) error {
			lc, _ := mayfly.FromContext(ctx)
			return errors.New("ctx-error of " + lc.RequestID)
		})
	case "event-only":
		mayfly.Start(func(ev map[string]int) (int, error) { return ev["a"] + ev["b"], nil })
	case "raw":
		mayfly.StartHandler(mayfly.HandlerFunc(func(ctx context.Context, p []byte) ([]byte, error) {
			return append([]byte(`{"raw":`), append(p, '}')...), nil
		}))
	default:
		mayfly.Start(handler)
	}
}
"""


@pytest.fixture(scope="module")
def srv(module_server_factory):
    return module_server_factory()


@pytest.fixture(scope="module")
def go_fn(tmp_path_factory):
    """The bootstrap of GO_FN, built once for the file."""
    return build_go_bootstrap(tmp_path_factory.mktemp("gofn"), GO_FN)


# ---------------------------------------------------------------- the example


def example_dir(tmp_path):
    """examples/hello-go, with the bootstrap `make` builds; built here into
    a copy when it is missing."""
    src = REPO / "examples" / "hello-go"
    assert (src / "main.go").exists(), "examples/hello-go/main.go is missing"
    if (src / "bootstrap").exists():
        return src
    d = tmp_path / "hello-go"
    shutil.copytree(src, d)
    (d / "go.mod").write_text((src / "go.mod").read_text().replace(
        "../../runtimes/go", str(RUNTIME_DIR)))
    build_go_bootstrap(d, (src / "main.go").read_text())
    return d


def test_the_example_deploys_and_answers_through_the_cli_and_http(srv, tmp_path):
    folder = example_dir(tmp_path)
    args = shlex.split((REPO / "examples" / "hello-go" / "deploy.args").read_text())
    assert args == ["--runtime", "provided.al2023"]
    name = unique("hello-go")
    p = srv.cli("deploy", name, folder, *args, "--timeout", "60")
    assert p.returncode == 0, p.stderr

    p = srv.cli("invoke", name, "--data", '{"name": "Ada"}', "--verbose")
    assert p.returncode == 0, f"rc={p.returncode} stdout={p.stdout!r} stderr={p.stderr!r}"
    rid = re.search(r"request id:\s+(\S+)", p.stderr).group(1)
    assert json.loads(p.stdout) == {"message": "hello, Ada!", "request_id": rid}
    rec = get_record(srv, rid)
    assert rec["status"] == "success" and rec["function"] == name

    # The example's own line about the call is in its log, under its id.
    line = f"hello-go: greeting Ada (request {rid})"
    wait_for(f"the log line of {rid}",
             lambda: any(line in e.get("message", "") for e in get_logs(srv, name, rid)))
    p = srv.cli("logs", name, "--request", rid)
    assert p.returncode == 0 and line in p.stdout, p.stdout + p.stderr

    # Over HTTP: no name is the default, and the id is the call's.
    r = invoke_ok(srv, name, {})
    assert r.json() == {"message": "hello, world!",
                        "request_id": r.headers["X-Mayfly-Request-Id"]}
    # The example's own error type for a name it refuses.
    r, err = invoke_error(srv, name, {"name": "x" * 2000})
    assert err["errorType"] == "ValidationError"
    assert err["errorMessage"] == "name is longer than 1023 bytes"


# ---------------------------------------------------------------- errors


def test_a_handler_error_is_lambdas_error_shape_in_the_answer_and_the_record(srv, go_fn):
    name = unique("go-err")
    deploy_go(srv, name, go_fn)
    r, err = invoke_error(srv, name, {"op": "error", "what": "xyzzy"})
    # errorType is the Go error's type name, as Lambda's Go runtime says it.
    assert err["errorType"] == "errorString", err
    assert err["errorMessage"] == "bad input: xyzzy"
    rec = get_record(srv, r.headers["X-Mayfly-Request-Id"])
    assert rec["status"] == "error"
    assert rec["error_type"] == "errorString"
    assert rec["error_message"] == "bad input: xyzzy"
    # The log says so too, under the call's id.
    rid = r.headers["X-Mayfly-Request-Id"]
    wait_for("the error's line in the log",
             lambda: any("[ERROR] errorString: bad input: xyzzy" in e.get("message", "")
                         for e in get_logs(srv, name, rid)))

    # A type of the function's own, and an explicit *mayfly.Error wrapped.
    _, err = invoke_error(srv, name, {"op": "custom", "what": "qty"})
    assert (err["errorType"], err["errorMessage"]) == ("ValidationError", "invalid field qty")
    _, err = invoke_error(srv, name, {"op": "typed", "what": "out of stock"})
    assert err["errorType"] == "Orders.Rejected"
    assert err["errorMessage"] == "wrapped: Orders.Rejected: out of stock"

    # An error is no reason to end the process: the next call is warm.
    r = invoke_ok(srv, name, {"op": "nothing"})
    assert r.json() is None
    assert r.headers["X-Mayfly-Cold-Start"] == "0"


def test_a_panic_is_reported_with_its_stack_and_the_process_replaced(srv, go_fn):
    name = unique("go-panic")
    deploy_go(srv, name, go_fn)
    invoke_ok(srv, name, {"op": "pid"})
    r, err = invoke_error(srv, name, {"op": "panic", "what": "xyzzy"})
    rid = r.headers["X-Mayfly-Request-Id"]
    assert err["errorType"] == "string", err
    assert err["errorMessage"] == "boom: xyzzy"
    labels = [f["label"] for f in err["stackTrace"]]
    # The stack starts where the panic was raised, in the function's code,
    # with the runtime's own frames left out.
    assert labels[:2] == ["main.explode", "main.handler"], err["stackTrace"]
    assert all(label.startswith("main.") for label in labels), err["stackTrace"]
    assert all(f["path"].endswith("main.go") and f["line"] > 0 for f in err["stackTrace"][:2])
    rec = get_record(srv, rid)
    assert (rec["status"], rec["error_type"], rec["error_message"]) == (
        "error", "string", "boom: xyzzy")
    wait_for("the panic's stack in the log",
             lambda: any("main.explode" in e.get("message", "") for e in get_logs(srv, name, rid)))

    # As with Lambda's Go runtime, the process exits after a panic: the next
    # call gets a new one.
    r = invoke_ok(srv, name, {"op": "pid"})
    assert r.headers["X-Mayfly-Cold-Start"] == "1"

    # A runtime error is a panic too, named by its type.
    _, err = invoke_error(srv, name, {"op": "index", "what": "xyzzy"})
    assert err["errorType"] == "boundsError", err
    assert err["errorMessage"] == "runtime error: index out of range [5] with length 1"


def test_a_panic_in_another_goroutine_ends_the_process_and_fails_the_call(srv, go_fn):
    """No recover can catch it: Go ends the process, the call fails as a
    runtime that exited, and the next call starts a new one."""
    name = unique("go-gopanic")
    deploy_go(srv, name, go_fn)
    r, err = invoke_error(srv, name, {"op": "goroutine-panic", "what": "xyzzy"})
    assert err["errorType"] == "Runtime.ExitError", err
    assert "exit status 2" in err["errorMessage"], err
    rid = r.headers["X-Mayfly-Request-Id"]
    wait_for("Go's own panic report in the log",
             lambda: any("panic: boom: xyzzy" in e.get("message", "")
                         for e in get_logs(srv, name, rid)))
    assert invoke_ok(srv, name, {"op": "pid"}).headers["X-Mayfly-Cold-Start"] == "1"


def test_a_malformed_event_is_an_unmarshal_error(srv, go_fn):
    name = unique("go-unmarshal")
    deploy_go(srv, name, go_fn)
    _, err = invoke_error(srv, name, {"op": "order", "items": "not a list"})
    assert err["errorType"] == "UnmarshalTypeError", err
    assert "items" in err["errorMessage"]
    r = invoke(srv, name, raw=b'{"op": ')
    assert r.headers.get("X-Mayfly-Function-Error") == "Unhandled"
    assert r.json()["errorType"] == "SyntaxError"


def test_an_init_error_fails_the_call_with_the_functions_error(srv, go_fn):
    name = unique("go-init")
    deploy_go(srv, name, go_fn, env={"GO_MODE": "init-error"})
    r, err = invoke_error(srv, name, {})
    assert (err["errorType"], err["errorMessage"]) == ("Config.Missing", "DATABASE_URL is not set")
    assert get_record(srv, r.headers["X-Mayfly-Request-Id"])["error_type"] == "Config.Missing"
    fn = requests.get(f"{srv.url}/v1/functions/{name}", timeout=10).json()
    assert fn["start_failures"]["last_error"]["errorType"] == "Config.Missing"


@pytest.mark.parametrize("mode,mention", [
    ("not-a-function", "the handler is a string, not a function"),
    ("three-args", "the handler takes 3 arguments"),
])
def test_a_handler_of_a_shape_lambda_refuses_is_an_init_error(srv, go_fn, mode, mention):
    name = unique("go-shape")
    deploy_go(srv, name, go_fn, env={"GO_MODE": mode})
    _, err = invoke_error(srv, name, {})
    assert err["errorType"] == "Runtime.InvalidHandler", err
    assert mention in err["errorMessage"], err


# ---------------------------------------------------------------- handlers


def test_the_handler_shapes_lambdas_go_library_accepts(srv, go_fn):
    name = unique("go-shapes")
    deploy_go(srv, name, go_fn, env={"GO_MODE": "no-args"})
    r = invoke_ok(srv, name, {"ignored": True})
    assert r.json() is None
    rid = r.headers["X-Mayfly-Request-Id"]
    wait_for("no-args ran", lambda: any("no-args ran" in e.get("message", "")
                                        for e in get_logs(srv, name, rid)))

    deploy_go(srv, name, go_fn, env={"GO_MODE": "ctx-error"})
    r, err = invoke_error(srv, name, {})
    assert err == {"errorType": "errorString",
                   "errorMessage": "ctx-error of " + r.headers["X-Mayfly-Request-Id"]}

    deploy_go(srv, name, go_fn, env={"GO_MODE": "event-only"})
    assert invoke_ok(srv, name, {"a": 2, "b": 40}).json() == 42

    # A raw Handler gets the event's bytes as they were sent.
    deploy_go(srv, name, go_fn, env={"GO_MODE": "raw"})
    r = invoke(srv, name, raw=b'{ "z" : 1,"a":[ 1 ,2 ] }')
    assert r.status_code == 200 and "X-Mayfly-Function-Error" not in r.headers
    assert r.content == b'{"raw":{ "z" : 1,"a":[ 1 ,2 ] }}'


def test_a_struct_event_and_result_round_trip(srv, go_fn):
    name = unique("go-struct")
    deploy_go(srv, name, go_fn)
    event = {"op": "order", "items": [{"sku": "é✓-1", "qty": 2}, {"sku": "b", "qty": 40}],
             "note": None, "meta": {"nested": {"list": [1, "two", None, True]}, "n": 1.5}}
    out = invoke_ok(srv, name, event).json()
    assert out == {"total": 42, "skus": ["é✓-1", "b"], "note": None, "meta": event["meta"],
                   "html": '<a href="x">&</a>'}
    event["note"] = "leave at the door"
    assert invoke_ok(srv, name, event).json()["note"] == "leave at the door"
    # The result goes out as encoding/json writes it, without HTML escapes.
    r = invoke_ok(srv, name, event)
    assert b'"html":"<a href=\\"x\\">&</a>"' in r.content, r.content


def test_the_context_carries_the_request_id_and_the_deadline(srv, go_fn):
    name = unique("go-ctx")
    deploy_go(srv, name, go_fn, timeout_s=45)
    t0 = time.time()
    r = invoke_ok(srv, name, {"op": "context"})
    t1 = time.time()
    out = r.json()
    assert out["request_id"] == r.headers["X-Mayfly-Request-Id"]
    assert out["arn"].endswith(f":function:{name}"), out
    # The ctx's deadline is the platform's: the call's acceptance (between
    # sending it and its answer) plus the function's timeout.
    assert out["has_deadline"] is True and out["ctx_err"] == "<nil>"
    assert out["ctx_deadline_ms"] == out["deadline_ms"]
    assert int(t0 * 1000) + 45_000 - 1 <= out["deadline_ms"] <= int(t1 * 1000) + 45_000 + 1, (
        t0, t1, out)
    assert out["trace_id"] and out["trace_env"] == out["trace_id"]
    assert re.match(r"^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$", out["traceparent"]), out
    # Every call its own id.
    assert invoke_ok(srv, name, {"op": "context"}).json()["request_id"] != out["request_id"]


def test_log_lines_are_filed_under_their_calls_request_id(srv, go_fn):
    name = unique("go-log")
    deploy_go(srv, name, go_fn)
    rids = [invoke_ok(srv, name, {"op": "log"}).headers["X-Mayfly-Request-Id"] for _ in range(2)]
    for rid, other in (rids, rids[::-1]):
        def mine(rid=rid):
            msgs = [e.get("message", "") for e in get_logs(srv, name, rid)]
            return msgs if (any(f"stdout line of {rid}" in m for m in msgs) and
                            any(f"stderr line of {rid}" in m for m in msgs)) else None
        msgs = wait_for(f"both log lines of {rid}", mine)
        assert not any(other in m for m in msgs), msgs
        assert all(e.get("request_id") == rid for e in get_logs(srv, name, rid))


# ---------------------------------------------------------------- the API inside


def test_the_platforms_api_from_a_go_function(srv, go_fn):
    name, store, failing = unique("go-api"), unique("st"), unique("failing")
    # The callee shares the store's name: one string in the event.
    deploy_py(srv, store, "def handler(event, context):\n    return {'callee_got': event}\n")
    deploy_py(srv, failing, "def handler(e, c):\n    raise ValueError('nope')\n")
    deploy_go(srv, name, go_fn, permissions=[f"kv:{store}", f"invoke:{store}", f"invoke:{failing}"])
    out = invoke_ok(srv, name, {"op": "kv", "store": store, "what": failing}).json()
    assert out == {"got": '{"a":1}', "type": "application/json", "same_version": True,
                   "stale": True, "exists": True, "n": [1, 42], "deleted": [True, False],
                   "missing": True, "forbidden": True,
                   "called": {"callee_got": {"from": "go"}},
                   "callee_error": ["ValueError", "nope"]}, json.dumps(out)
