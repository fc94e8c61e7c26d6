package mayfly

// The platform's API from inside a function (docs/state.md): the /v1 routes
// at MAYFLY_API (http://127.0.0.1:9001/mayfly/v1), with the function itself
// as the identity, so what it may reach is its `permissions`.
//
//	cart := mayfly.KV("cart")
//	v, err := cart.Put(ctx, "alice", []byte(`{"items":3}`), &mayfly.PutOptions{TTL: time.Hour})
//	item, err := cart.Get(ctx, "alice")          // errors.Is(err, mayfly.ErrNotFound) when absent
//	n, err := cart.Incr(ctx, "visits", 1)
//	out, err := mayfly.Invoke(ctx, "resize", map[string]string{"key": k})
//	id, err := mayfly.Publish(ctx, "orders", "shipped", nil)

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// APIError is an error answer of the platform's API: its status, and the
// code and message of its {"error":{"code","message"}} document.
type APIError struct {
	Status  int
	Code    string
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Is makes errors.Is(err, ErrNotFound) (ErrForbidden, ErrPreconditionFailed)
// true for the matching status.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Status == http.StatusNotFound
	case ErrForbidden:
		return e.Status == http.StatusForbidden
	case ErrPreconditionFailed:
		return e.Status == http.StatusPreconditionFailed
	}
	return false
}

var (
	// ErrNotFound: the key (or function, or topic) is absent.
	ErrNotFound = errors.New("not found")
	// ErrForbidden: the function's permissions do not grant the request.
	ErrForbidden = errors.New("forbidden")
	// ErrPreconditionFailed: a conditional write found the key changed.
	ErrPreconditionFailed = errors.New("precondition failed")
)

// FunctionError is the failure of a function called with Invoke: its
// errorType and the whole error document it answered.
type FunctionError struct {
	Type     string
	Message  string
	Document json.RawMessage
}

func (e *FunctionError) Error() string {
	return "the function failed: " + e.Type + ": " + e.Message
}

var (
	apiOnce   sync.Once
	apiClient *http.Client
)

func apiDo(ctx context.Context, method, path string, body []byte, header http.Header) (*http.Response, []byte, error) {
	apiOnce.Do(func() { apiClient = newHTTPClient() })
	base := strings.TrimRight(os.Getenv("MAYFLY_API"), "/")
	if base == "" {
		base = "http://127.0.0.1:9001/mayfly/v1"
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	// The call making it: the server attributes the request to it on an
	// instance serving many calls at once (docs/concurrency.md).
	if lc, ok := FromContext(ctx); ok && lc.RequestID != "" {
		req.Header.Set("Lambda-Runtime-Aws-Request-Id", lc.RequestID)
	}
	resp, err := apiClient.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return resp, data, nil
}

func apiFail(resp *http.Response, data []byte) error {
	var doc struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &APIError{Status: resp.StatusCode}
	if json.Unmarshal(data, &doc) == nil && (doc.Error.Code != "" || doc.Error.Message != "") {
		e.Code, e.Message = doc.Error.Code, doc.Error.Message
	} else {
		e.Message = string(data)
	}
	return e
}

// Store is one named KV store (the function needs the permission
// kv:STORE).
type Store struct {
	path string
}

// KV returns the named store.
func KV(store string) *Store {
	return &Store{path: "/kv/" + url.PathEscape(store)}
}

// Item is a key's value with its version (for PutOptions.IfVersion).
type Item struct {
	Value       []byte
	ContentType string
	Version     uint64
	// Expires is the RFC 3339 expiry, empty for a key that does not expire.
	Expires string
}

// Get returns the key's Item; an error matching ErrNotFound when it is
// absent or expired.
func (s *Store) Get(ctx context.Context, key string) (*Item, error) {
	resp, data, err := apiDo(ctx, http.MethodGet, s.path+"/"+url.PathEscape(key), nil, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiFail(resp, data)
	}
	version, _ := strconv.ParseUint(strings.Trim(resp.Header.Get("ETag"), `"`), 10, 64)
	return &Item{Value: data, ContentType: resp.Header.Get("Content-Type"), Version: version,
		Expires: resp.Header.Get("X-Mayfly-Expires")}, nil
}

// PutOptions are Put's conditions and settings; the zero value is a plain
// write of application/octet-stream that does not expire.
type PutOptions struct {
	ContentType string
	// TTL makes the key expire (whole seconds, at least one).
	TTL time.Duration
	// IfVersion writes only if the key is at this version; IfAbsent only
	// if it does not exist. Otherwise the error matches
	// ErrPreconditionFailed.
	IfVersion uint64
	IfAbsent  bool
}

// Put stores value under key and returns its new version.
func (s *Store) Put(ctx context.Context, key string, value []byte, opts *PutOptions) (uint64, error) {
	h := http.Header{"Content-Type": {"application/octet-stream"}}
	if opts != nil {
		if opts.ContentType != "" {
			h.Set("Content-Type", opts.ContentType)
		}
		if opts.TTL > 0 {
			secs := int64((opts.TTL + time.Second - 1) / time.Second)
			h.Set("X-Mayfly-TTL", strconv.FormatInt(secs, 10))
		}
		if opts.IfVersion != 0 {
			h.Set("If-Match", `"`+strconv.FormatUint(opts.IfVersion, 10)+`"`)
		}
		if opts.IfAbsent {
			h.Set("If-None-Match", "*")
		}
	}
	if value == nil {
		value = []byte{}
	}
	resp, data, err := apiDo(ctx, http.MethodPut, s.path+"/"+url.PathEscape(key), value, h)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, apiFail(resp, data)
	}
	var out struct {
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("PUT %s: %w", s.path, err)
	}
	return out.Version, nil
}

// Incr adds by to the key's integer (0 when absent), atomically, and
// returns the sum.
func (s *Store) Incr(ctx context.Context, key string, by int64) (int64, error) {
	body := []byte(`{"by":` + strconv.FormatInt(by, 10) + `}`)
	resp, data, err := apiDo(ctx, http.MethodPost, s.path+"/"+url.PathEscape(key)+"/incr", body,
		http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, apiFail(resp, data)
	}
	var out struct {
		Value int64 `json:"value"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return 0, fmt.Errorf("POST %s incr: %w", s.path, err)
	}
	return out.Value, nil
}

// Delete removes the key (only at version ifVersion, unless it is 0):
// true when it was there, false when it was absent.
func (s *Store) Delete(ctx context.Context, key string, ifVersion uint64) (bool, error) {
	var h http.Header
	if ifVersion != 0 {
		h = http.Header{"If-Match": {`"` + strconv.FormatUint(ifVersion, 10) + `"`}}
	}
	resp, data, err := apiDo(ctx, http.MethodDelete, s.path+"/"+url.PathEscape(key), nil, h)
	if err != nil {
		return false, err
	}
	switch resp.StatusCode {
	case http.StatusNoContent:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, apiFail(resp, data)
}

// eventBytes is event as JSON: []byte and json.RawMessage as they are.
func eventBytes(event interface{}) ([]byte, error) {
	switch e := event.(type) {
	case []byte:
		return e, nil
	case json.RawMessage:
		return e, nil
	}
	return json.Marshal(event)
}

// Invoke calls the function name (permission invoke:NAME) with event and
// returns its result; a *FunctionError when the function failed.
func Invoke(ctx context.Context, name string, event interface{}) (json.RawMessage, error) {
	body, err := eventBytes(event)
	if err != nil {
		return nil, err
	}
	resp, data, err := apiDo(ctx, http.MethodPost, "/functions/"+url.PathEscape(name)+"/invoke", body,
		http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, apiFail(resp, data)
	}
	if resp.Header.Get("X-Mayfly-Function-Error") != "" {
		var doc errorDoc
		_ = json.Unmarshal(data, &doc)
		if doc.Type == "" {
			doc.Type = "Unhandled"
		}
		return nil, &FunctionError{Type: doc.Type, Message: doc.Message, Document: data}
	}
	return data, nil
}

// InvokeAsync queues event for the function name and returns the queued
// call's request id once it is durably queued.
func InvokeAsync(ctx context.Context, name string, event interface{}) (string, error) {
	body, err := eventBytes(event)
	if err != nil {
		return "", err
	}
	resp, data, err := apiDo(ctx, http.MethodPost, "/functions/"+url.PathEscape(name)+"/invoke", body,
		http.Header{"Content-Type": {"application/json"}, "X-Mayfly-Invocation-Type": {"Event"}})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", apiFail(resp, data)
	}
	var out struct {
		RequestID string `json:"request_id"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return "", fmt.Errorf("invoking %s: %w", name, err)
	}
	return out.RequestID, nil
}

// PublishOptions are a message's subject and attributes (SNS's
// {"Type","Value"} objects, or a bare string, number or list of strings).
type PublishOptions struct {
	Subject    string
	Attributes map[string]interface{}
}

// Publish publishes message to topic (permission topic:TOPIC) and returns
// its message id once it and its deliveries are durably queued.
func Publish(ctx context.Context, topic, message string, opts *PublishOptions) (string, error) {
	doc := map[string]interface{}{"message": message}
	if opts != nil {
		if opts.Subject != "" {
			doc["subject"] = opts.Subject
		}
		if len(opts.Attributes) > 0 {
			doc["attributes"] = opts.Attributes
		}
	}
	body, err := json.Marshal(doc)
	if err != nil {
		return "", err
	}
	resp, data, err := apiDo(ctx, http.MethodPost, "/topics/"+url.PathEscape(topic)+"/publish", body,
		http.Header{"Content-Type": {"application/json"}})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", apiFail(resp, data)
	}
	var out struct {
		MessageID string `json:"message_id"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		return "", fmt.Errorf("publishing to %s: %w", topic, err)
	}
	return out.MessageID, nil
}
