// A Lambda function in Go: greets the caller by name.
//
// Built into ./bootstrap by `make` (or by hand, in this folder:
//
//	CGO_ENABLED=0 go build -trimpath -o bootstrap .
//
// with runtimes/go found through go.mod's replace) and deployed with
// --runtime provided.al2023.
package main

import (
	"context"
	"fmt"

	mayfly "mayfly/runtime"
)

type Request struct {
	Name string `json:"name"`
}

type Greeting struct {
	Message   string `json:"message"`
	RequestID string `json:"request_id"`
}

func handler(ctx context.Context, req Request) (Greeting, error) {
	if len(req.Name) > 1023 {
		return Greeting{}, &mayfly.Error{Type: "ValidationError", Message: "name is longer than 1023 bytes"}
	}
	name := req.Name
	if name == "" {
		name = "world"
	}
	lc, _ := mayfly.FromContext(ctx)
	fmt.Printf("hello-go: greeting %s (request %s)\n", name, lc.RequestID)
	return Greeting{Message: "hello, " + name + "!", RequestID: lc.RequestID}, nil
}

func main() {
	mayfly.Start(handler)
}
