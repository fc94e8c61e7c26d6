package mayfly

import (
	"context"
	"time"
)

// Context is what the platform says about one invocation, as Lambda's
// lambdacontext.LambdaContext does: the handler reads it from its ctx with
// FromContext.
type Context struct {
	// RequestID is the invocation's id (Lambda-Runtime-Aws-Request-Id): the
	// id its record, its log lines and the caller's X-Mayfly-Request-Id
	// carry.
	RequestID string
	// InvokedFunctionArn names the function the caller invoked.
	InvokedFunctionArn string
	// Deadline is when the platform ends the call; ctx carries it too, so
	// ctx.Done() closes when it passes.
	Deadline time.Time
	// TraceID is Lambda-Runtime-Trace-Id (also in _X_AMZN_TRACE_ID while the
	// handler runs).
	TraceID string
	// Traceparent is the call's W3C trace context (Mayfly-Traceparent).
	Traceparent string
	// TenantID is Lambda-Runtime-Aws-Tenant-Id, empty unless the caller
	// named a tenant.
	TenantID string
	// ClientContext and CognitoIdentity are the raw JSON Lambda clients may
	// send (Lambda-Runtime-Client-Context, -Cognito-Identity); empty when
	// absent.
	ClientContext   string
	CognitoIdentity string
}

type contextKey struct{}

// NewContext returns a copy of parent that carries lc, for code that calls a
// handler itself (a test, say).
func NewContext(parent context.Context, lc *Context) context.Context {
	return context.WithValue(parent, contextKey{}, lc)
}

// FromContext returns the invocation's Context that the runtime put in the
// handler's ctx, and false when ctx carries none.
func FromContext(ctx context.Context) (*Context, bool) {
	lc, ok := ctx.Value(contextKey{}).(*Context)
	return lc, ok
}
