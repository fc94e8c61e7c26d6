package mayfly

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"
)

// Logf writes one record to the function's log in Lambda's text format,
//
//	TIMESTAMP\tREQUEST_ID\tINFO\tMESSAGE
//
// with the request id of the call ctx belongs to (empty when ctx carries
// none), in one write to stdout. The message's own line breaks are kept in
// the record as "\r", so a record of many lines stays one line of the log.
//
// The platform files a log line under the call whose request id it
// carries. With one call at a time per instance any line the handler
// prints (fmt.Println, the log package) is filed under it; with
// instance_concurrency above 1 the calls of an instance share its stdout,
// and only lines that name their call are filed under it: write them with
// Logf (or include the request id of FromContext yourself).
func Logf(ctx context.Context, format string, args ...interface{}) {
	writeRecord(os.Stdout, ctx, "INFO", fmt.Sprintf(format, args...))
}

// Log is Logf with the message formatted as fmt.Sprint does.
func Log(ctx context.Context, args ...interface{}) {
	writeRecord(os.Stdout, ctx, "INFO", fmt.Sprint(args...))
}

func writeRecord(f *os.File, ctx context.Context, level, msg string) {
	id := ""
	if lc, ok := FromContext(ctx); ok {
		id = lc.RequestID
	}
	msg = strings.TrimSuffix(msg, "\n")
	var b strings.Builder
	b.Grow(len(msg) + len(id) + 40)
	b.WriteString(time.Now().UTC().Format("2006-01-02T15:04:05.000Z"))
	b.WriteByte('\t')
	b.WriteString(id)
	b.WriteByte('\t')
	b.WriteString(level)
	b.WriteByte('\t')
	b.WriteString(strings.ReplaceAll(msg, "\n", "\r"))
	b.WriteByte('\n')
	// One write: lines of calls side by side never mix on the pipe.
	f.WriteString(b.String())
}
