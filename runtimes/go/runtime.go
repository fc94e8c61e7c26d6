// Package mayfly writes a Lambda function in Go for mayfly's `provided`
// runtime (and AWS Lambda's provided.al2023): one call in main,
//
//	func handler(ctx context.Context, event Order) (Receipt, error) { … }
//
//	func main() { mayfly.Start(handler) }
//
// built into an executable named bootstrap:
//
//	CGO_ENABLED=0 go build -trimpath -o bootstrap .
//
// Start speaks the Lambda Runtime API at AWS_LAMBDA_RUNTIME_API: a long poll
// on GET …/invocation/next, the handler, then POST …/response or …/error,
// one invocation at a time on one kept-alive connection. The handler's ctx
// carries the invocation's deadline (ctx.Done() closes when the platform
// ends the call) and its Context (FromContext). A handler's error reaches
// the caller as Lambda's {"errorMessage","errorType"} with the Go type's
// name as errorType (or *Error's Type); a panic is reported with its stack,
// and then the process exits, as Lambda's Go runtime does, since the
// function's state can no longer be trusted.
//
// Only the standard library is used; the platform's own API from inside a
// function (KV, invoking, publishing) is in api.go.
package mayfly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

const apiPrefix = "/2018-06-01/runtime"

// Start runs handler (any of the shapes NewHandler accepts) for every
// invocation, and never returns. A handler of another shape is reported as
// the function's init error (Runtime.InvalidHandler) and the process exits.
func Start(handler interface{}) {
	h, err := NewHandler(handler)
	if err != nil {
		InitError(&Error{Type: "Runtime.InvalidHandler", Message: err.Error()})
	}
	StartHandler(h)
}

// StartHandler runs h for every invocation, and never returns.
//
// With AWS_LAMBDA_MAX_CONCURRENCY=N above 1 (a function deployed with
// "instance_concurrency": N) it serves N invocations at once: N goroutines,
// each polling for its next invocation and answering it on an HTTP
// connection of its own, so h must be safe for concurrent use. Each
// invocation's ctx is its own; _X_AMZN_TRACE_ID is not set then (the
// environment is the process's, shared by the calls), the trace is in
// FromContext's TraceID. The instance's stdout is shared by the calls
// too: lines written with Logf carry their call's request id, which is
// how the platform files them under it. A call past its deadline is failed
// by the platform while the others go on; its late answer's refusal is
// expected and not reported. A panic still ends the process, and with it
// the calls beside the one that panicked.
func StartHandler(h Handler) {
	n := maxConcurrency()
	if n == 1 {
		serve(newRuntimeClient(), h)
	}
	for i := 0; i < n; i++ {
		c := newRuntimeClient()
		c.concurrent = true
		go serve(c, h)
	}
	select {}
}

// serve runs the loop of one worker until the Runtime API fails, and then
// ends the process: the platform starts another.
func serve(c *runtimeClient, h Handler) {
	for {
		inv, err := c.next()
		if err != nil {
			fmt.Fprintf(os.Stderr, "mayfly runtime: %v\n", err)
			os.Exit(1)
		}
		if exit := c.handle(h, inv); exit {
			os.Exit(1)
		}
	}
}

// maxConcurrency is AWS_LAMBDA_MAX_CONCURRENCY: 1 when absent or not a
// number from 1 on.
func maxConcurrency() int {
	n, err := strconv.Atoi(os.Getenv("AWS_LAMBDA_MAX_CONCURRENCY"))
	if err != nil || n < 1 || n > 100000 {
		return 1
	}
	return n
}

// InitError reports err as the function's init error (what a caller waiting
// for this instance gets, with errorType the Go type's name or *Error's
// Type) and exits: for a function whose setup in main fails before Start.
func InitError(err error) {
	c := newRuntimeClient()
	doc := errorDocOf(err)
	fmt.Fprintf(os.Stderr, "[ERROR] %s: %s\n", doc.Type, doc.Message)
	if perr := c.postError(apiPrefix+"/init/error", doc); perr != nil {
		fmt.Fprintf(os.Stderr, "mayfly runtime: cannot report the init error: %v\n", perr)
	}
	os.Exit(1)
}

type runtimeClient struct {
	base string // http://HOST:PORT
	http *http.Client
	// concurrent: one of N workers (AWS_LAMBDA_MAX_CONCURRENCY above 1),
	// each with its own client and so its own connection.
	concurrent bool
}

type invocation struct {
	payload []byte
	lc      Context
	// deadlineOK is false when the server sent no deadline.
	deadlineOK bool
}

func newRuntimeClient() *runtimeClient {
	addr := os.Getenv("AWS_LAMBDA_RUNTIME_API")
	if addr == "" {
		addr = "127.0.0.1:9001"
	}
	return &runtimeClient{base: "http://" + addr, http: newHTTPClient()}
}

// newHTTPClient is a client for the platform's listeners on loopback: never
// through a proxy from the environment, no compression, no timeout (the
// long poll waits as long as it takes; the platform bounds every call).
//
// It keeps up to 4 idle connections, or one per call the instance serves
// at once when that is more (the platform's API, used by every call).
func newHTTPClient() *http.Client {
	idle := 4
	if n := maxConcurrency(); n > idle {
		idle = n
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: idle,
		IdleConnTimeout:     50 * time.Second,
	}}
}

func (c *runtimeClient) next() (*invocation, error) {
	resp, err := c.http.Get(c.base + apiPrefix + "/invocation/next")
	if err != nil {
		return nil, fmt.Errorf("GET invocation/next: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET invocation/next: reading the event: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET invocation/next: HTTP %d: %.200s", resp.StatusCode, body)
	}
	h := resp.Header
	inv := &invocation{payload: body, lc: Context{
		RequestID:          h.Get("Lambda-Runtime-Aws-Request-Id"),
		InvokedFunctionArn: h.Get("Lambda-Runtime-Invoked-Function-Arn"),
		TraceID:            h.Get("Lambda-Runtime-Trace-Id"),
		Traceparent:        h.Get("Mayfly-Traceparent"),
		TenantID:           h.Get("Lambda-Runtime-Aws-Tenant-Id"),
		ClientContext:      h.Get("Lambda-Runtime-Client-Context"),
		CognitoIdentity:    h.Get("Lambda-Runtime-Cognito-Identity"),
	}}
	if inv.lc.RequestID == "" {
		return nil, errors.New("GET invocation/next: the answer has no Lambda-Runtime-Aws-Request-Id")
	}
	if ms, err := strconv.ParseInt(h.Get("Lambda-Runtime-Deadline-Ms"), 10, 64); err == nil {
		inv.lc.Deadline = time.UnixMilli(ms)
		inv.deadlineOK = true
	}
	return inv, nil
}

// handle runs one invocation and posts its outcome; it returns true when
// the process should exit (the handler panicked).
func (c *runtimeClient) handle(h Handler, inv *invocation) (exit bool) {
	ctx := NewContext(context.Background(), &inv.lc)
	cancel := context.CancelFunc(func() {})
	if inv.deadlineOK {
		ctx, cancel = context.WithDeadline(ctx, inv.lc.Deadline)
	}
	defer cancel()
	if !c.concurrent {
		if inv.lc.TraceID != "" {
			os.Setenv("_X_AMZN_TRACE_ID", inv.lc.TraceID)
		} else {
			os.Unsetenv("_X_AMZN_TRACE_ID")
		}
	}

	out, doc, panicked := call(ctx, h, inv.payload)
	path := apiPrefix + "/invocation/" + url.PathEscape(inv.lc.RequestID)
	var err error
	if doc == nil {
		err = c.post(path+"/response", out, nil)
	} else {
		// The error goes to the function's log too, as mayfly's other
		// runtimes write it; a panic's with its stack.
		if c.concurrent {
			// One record that names its call, as the calls share stdout.
			var b strings.Builder
			fmt.Fprintf(&b, "[ERROR] %s: %s", doc.Type, doc.Message)
			for _, f := range doc.StackTrace {
				fmt.Fprintf(&b, "\n\t%s (%s:%d)", f.Label, f.Path, f.Line)
			}
			writeRecord(os.Stderr, ctx, "ERROR", b.String())
		} else {
			fmt.Fprintf(os.Stderr, "[ERROR] %s: %s\n", doc.Type, doc.Message)
			for _, f := range doc.StackTrace {
				fmt.Fprintf(os.Stderr, "\t%s (%s:%d)\n", f.Label, f.Path, f.Line)
			}
		}
		err = c.postError(path+"/error", *doc)
	}
	var refused *refusedError
	if err != nil && c.concurrent && errors.As(err, &refused) && refused.status < 500 &&
		inv.deadlineOK && !time.Now().Before(inv.lc.Deadline) {
		// The platform failed the call at its deadline and went on with
		// the instance: the late answer's refusal is expected.
		err = nil
	}
	if err != nil {
		if c.concurrent {
			writeRecord(os.Stderr, ctx, "ERROR",
				fmt.Sprintf("mayfly runtime: reporting %s: %v", inv.lc.RequestID, err))
		} else {
			fmt.Fprintf(os.Stderr, "mayfly runtime: reporting %s: %v\n", inv.lc.RequestID, err)
		}
	}
	return panicked
}

// refusedError is an answer the Runtime API refused.
type refusedError struct {
	path   string
	status int
	msg    []byte
}

func (e *refusedError) Error() string {
	return fmt.Sprintf("POST %s: HTTP %d: %.200s", e.path, e.status, e.msg)
}

// call runs the handler, turning its error or panic into an error document.
func call(ctx context.Context, h Handler, payload []byte) (out []byte, doc *errorDoc, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			d := panicDoc(v)
			doc, panicked = &d, true
		}
	}()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		d := errorDocOf(err)
		return nil, &d, false
	}
	if out == nil {
		out = []byte("null")
	}
	return out, nil, false
}

func (c *runtimeClient) postError(path string, doc errorDoc) error {
	body, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	// The header carries the type for runtimes that read it without the
	// body; it must be one line of visible ASCII.
	typ := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return '?'
		}
		return r
	}, doc.Type)
	return c.post(path, body, http.Header{"Lambda-Runtime-Function-Error-Type": {typ}})
}

// post sends one answer. A kept connection the server closed while the
// handler ran fails before any answer; it is sent again, once, on a new
// one (a duplicate the server already took is refused, harmlessly).
func (c *runtimeClient) post(path string, body []byte, header http.Header) error {
	var lastErr error
	for attempt := 0; attempt < 2; attempt++ {
		req, err := http.NewRequest(http.MethodPost, c.base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header[k] = v
		}
		resp, err := c.http.Do(req)
		if err != nil {
			lastErr = err
			continue
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode >= 300 {
			return &refusedError{path: path, status: resp.StatusCode, msg: msg}
		}
		return nil
	}
	return fmt.Errorf("POST %s: %w", path, lastErr)
}
