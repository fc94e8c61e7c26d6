package mayfly

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Handler is the shape every handler is turned into: the event's bytes in,
// the result's bytes out. Start wraps a typed function into one; a function
// that wants the raw bytes implements it and calls StartHandler.
type Handler interface {
	Invoke(ctx context.Context, payload []byte) ([]byte, error)
}

// HandlerFunc adapts an ordinary function to Handler.
type HandlerFunc func(ctx context.Context, payload []byte) ([]byte, error)

// Invoke calls f.
func (f HandlerFunc) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	return f(ctx, payload)
}

var (
	contextType = reflect.TypeOf((*context.Context)(nil)).Elem()
	errorType   = reflect.TypeOf((*error)(nil)).Elem()
)

// NewHandler checks that handler has one of the shapes Lambda's Go library
// accepts and wraps it:
//
//	func()
//	func(context.Context)
//	func(TIn)
//	func(context.Context, TIn)
//
// returning nothing, error, or (TOut, error). TIn and TOut are anything
// encoding/json reads and writes. The event is decoded into a new TIn (a
// malformed event is the invocation's error, of type "UnmarshalTypeError"
// or "SyntaxError" as encoding/json names it) and the result is encoded as
// JSON ("null" when there is none).
func NewHandler(handler interface{}) (Handler, error) {
	if handler == nil {
		return nil, errors.New("the handler is nil")
	}
	fn := reflect.ValueOf(handler)
	t := fn.Type()
	if t.Kind() != reflect.Func {
		return nil, fmt.Errorf("the handler is a %s, not a function", t.Kind())
	}
	takesContext, takesEvent := false, false
	switch t.NumIn() {
	case 0:
	case 1:
		if t.In(0).Implements(contextType) {
			takesContext = true
		} else {
			takesEvent = true
		}
	case 2:
		if !t.In(0).Implements(contextType) {
			return nil, fmt.Errorf("the handler takes two arguments, but the first, %s, is not a context.Context", t.In(0))
		}
		takesContext, takesEvent = true, true
	default:
		return nil, fmt.Errorf("the handler takes %d arguments; it may take at most two (a context.Context and the event)", t.NumIn())
	}
	if t.IsVariadic() {
		return nil, errors.New("the handler may not be variadic")
	}
	switch t.NumOut() {
	case 0:
	case 1:
		if !t.Out(0).Implements(errorType) {
			return nil, fmt.Errorf("the handler returns one value, %s, which is not an error", t.Out(0))
		}
	case 2:
		if !t.Out(1).Implements(errorType) {
			return nil, fmt.Errorf("the handler returns two values, but the second, %s, is not an error", t.Out(1))
		}
	default:
		return nil, fmt.Errorf("the handler returns %d values; it may return at most two (a result and an error)", t.NumOut())
	}

	var eventType reflect.Type
	if takesEvent {
		eventType = t.In(t.NumIn() - 1)
	}
	return HandlerFunc(func(ctx context.Context, payload []byte) ([]byte, error) {
		args := make([]reflect.Value, 0, 2)
		if takesContext {
			args = append(args, reflect.ValueOf(ctx))
		}
		if takesEvent {
			event := reflect.New(eventType)
			if err := json.Unmarshal(payload, event.Interface()); err != nil {
				return nil, err
			}
			args = append(args, event.Elem())
		}
		out := fn.Call(args)
		if n := len(out); n > 0 {
			if err, _ := out[n-1].Interface().(error); err != nil {
				return nil, err
			}
		}
		var result interface{}
		if len(out) == 2 {
			result = out[0].Interface()
		}
		return marshal(result)
	}), nil
}

// marshal encodes a result as encoding/json does, without the HTML escaping
// a JSON answer has no use for.
func marshal(v interface{}) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, &Error{Type: "Runtime.MarshalError", Message: err.Error()}
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
