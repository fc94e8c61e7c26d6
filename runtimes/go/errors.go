package mayfly

import (
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
)

// Error is an error with the errorType the caller sees chosen by the
// function, rather than the Go type's name: return &mayfly.Error{Type:
// "ValidationError", Message: "name is required"}.
type Error struct {
	Type    string
	Message string
}

func (e *Error) Error() string {
	if e.Type == "" {
		return e.Message
	}
	return e.Type + ": " + e.Message
}

// StackFrame is one frame of a panic's stack, as Lambda's Go runtime
// reports it.
type StackFrame struct {
	Path  string `json:"path"`
	Line  int    `json:"line"`
	Label string `json:"label"`
}

// errorDoc is the error document posted to the Runtime API: Lambda's shape,
// which the platform passes to the caller and keeps in the record.
type errorDoc struct {
	Message    string       `json:"errorMessage"`
	Type       string       `json:"errorType"`
	StackTrace []StackFrame `json:"stackTrace,omitempty"`
}

// typeName names an error or a panic's value as Lambda's Go runtime does:
// the name of its type, through one pointer ("errorString" for
// errors.New, "Error" for a *mayfly.Error whose Type is empty).
func typeName(v interface{}) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return "nil"
	}
	if t.Kind() == reflect.Ptr {
		t = t.Elem()
	}
	if t.Name() == "" {
		return t.String()
	}
	return t.Name()
}

func errorDocOf(err error) errorDoc {
	var me *Error
	if errors.As(err, &me) && me.Type != "" {
		// A wrapped *Error keeps its type; the message is the whole chain's.
		msg := me.Message
		if err != error(me) {
			msg = err.Error()
		}
		return errorDoc{Message: msg, Type: me.Type}
	}
	return errorDoc{Message: err.Error(), Type: typeName(err)}
}

// panicDoc describes a recovered panic, with the stack of the goroutine that
// panicked from the handler down (the runtime's own frames left out).
func panicDoc(value interface{}) errorDoc {
	doc := errorDoc{Message: fmt.Sprint(value), Type: typeName(value)}
	pcs := make([]uintptr, 64)
	// Skip runtime.Callers, panicDoc and the deferred function that called
	// it; what remains starts in runtime.gopanic.
	n := runtime.Callers(3, pcs)
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		pkg := f.Function
		if !strings.HasPrefix(pkg, "runtime.") && !strings.HasPrefix(pkg, "reflect.") &&
			!strings.HasPrefix(pkg, "mayfly/runtime.") {
			label := pkg
			if i := strings.LastIndex(label, "/"); i >= 0 {
				label = label[i+1:]
			}
			doc.StackTrace = append(doc.StackTrace, StackFrame{Path: f.File, Line: f.Line, Label: label})
		}
		if !more {
			break
		}
	}
	return doc
}
