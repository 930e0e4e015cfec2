package web_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/auth"
	"hookstream/pkg/web"
)

type body struct {
	Name   string   `json:"name"`
	Count  int      `json:"count"`
	Tags   []string `json:"tags"`
	Nested struct {
		X int `json:"x"`
	} `json:"nested"`
}

func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		field   string // wanted Error.Field; "-" means success
		message string // substring of Error.Message
	}{
		{"valid", `{"name":"a","count":2,"tags":["x"],"nested":{"x":1}}`, "-", ""},
		{"valid with surrounding whitespace", "\n {\"name\":\"a\"} \n", "-", ""},
		{"unknown field", `{"name":"a","colour":"red"}`, "colour", "unknown field"},
		{"wrong type", `{"count":"two"}`, "count", "must be of type int"},
		{"wrong type string", `{"name":5}`, "name", "must be of type string"},
		{"wrong type in array", `{"tags":[1]}`, "tags", "must be of type string"},
		{"wrong type nested", `{"nested":{"x":"y"}}`, "nested.x", "must be of type int"},
		{"trailing object", `{"name":"a"} {"name":"b"}`, "", "trailing data"},
		{"trailing garbage", `{"name":"a"} x`, "", ""},
		{"trailing array", `{"name":"a"}[]`, "", "trailing data"},
		{"invalid UTF-8", "{\"name\":\"\xff\xfe\"}", "", "UTF-8"},
		{"empty", ``, "", "empty"},
		{"blank", " \t\r\n ", "", "empty"},
		{"syntax error", `{"name":`, "", "invalid JSON"},
		{"not an object", `[1,2]`, "", ""},
		{"bare string", `"hello"`, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var v body
			err := web.Unmarshal([]byte(tc.in), &v)
			if tc.field == "-" {
				if err != nil {
					t.Fatalf("Unmarshal(%q) = %v", tc.in, err)
				}
				if v.Name != "a" {
					t.Errorf("Name = %q, want a", v.Name)
				}
				return
			}
			if err == nil {
				t.Fatalf("Unmarshal(%q) accepted, decoded %+v", tc.in, v)
			}
			var e *web.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T %v is not a *web.Error", err, err)
			}
			if e.Status != http.StatusBadRequest || e.Code != "invalid_request" {
				t.Errorf("status, code = %d, %q; want 400, invalid_request", e.Status, e.Code)
			}
			if e.Field != tc.field {
				t.Errorf("field = %q, want %q (message %q)", e.Field, tc.field, e.Message)
			}
			if !strings.Contains(e.Message, tc.message) {
				t.Errorf("message %q does not contain %q", e.Message, tc.message)
			}
		})
	}
}

func TestErrorString(t *testing.T) {
	if got := web.BadRequest("pointIds[1]", "bad %d", 7).Error(); got != "pointIds[1]: bad 7" {
		t.Errorf("Error() = %q", got)
	}
	if got := web.BadRequest("", "bad").Error(); got != "bad" {
		t.Errorf("Error() = %q", got)
	}
	nf := web.NotFound("stream")
	if nf.Status != http.StatusNotFound || nf.Code != "not_found" || nf.Message != "stream not found" {
		t.Errorf("NotFound = %+v", nf)
	}
}

func TestReadBody(t *testing.T) {
	tests := []struct {
		name   string
		size   int
		status int // 0: success
	}{
		{"empty", 0, 0},
		{"small", 10, 0},
		{"exactly MaxBody", web.MaxBody, 0},
		{"one byte over", web.MaxBody + 1, http.StatusRequestEntityTooLarge},
		{"far over", 3 * web.MaxBody, http.StatusRequestEntityTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(strings.Repeat("a", tc.size)))
			w := httptest.NewRecorder()
			b, err := web.ReadBody(w, r)
			if tc.status == 0 {
				if err != nil {
					t.Fatalf("ReadBody: %v", err)
				}
				if len(b) != tc.size {
					t.Errorf("read %d bytes, want %d", len(b), tc.size)
				}
				return
			}
			var e *web.Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, want *web.Error", err)
			}
			if e.Status != tc.status || e.Code != "body_too_large" {
				t.Errorf("error = %+v, want status %d code body_too_large", e, tc.status)
			}
		})
	}
}

func TestDecodeJSONTooLarge(t *testing.T) {
	big := `{"name":"` + strings.Repeat("a", web.MaxBody) + `"}`
	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(big))
	w := httptest.NewRecorder()
	var v body
	err := web.DecodeJSON(w, r, &v)
	var e *web.Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge {
		t.Fatalf("DecodeJSON of %d bytes = %v, want a 413 *web.Error", len(big), err)
	}
	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader(`{"name":"a","x":1}`))
	if err := web.DecodeJSON(httptest.NewRecorder(), r, &v); !errors.As(err, &e) || e.Field != "x" {
		t.Fatalf("DecodeJSON with unknown field = %v, want field x", err)
	}
}

// errorBody is the wire shape of every error response.
type errorBody struct {
	Error map[string]any `json:"error"`
}

// decodeErrorBody decodes an error response, which must hold one key, error, of code, message
// and field alone.
func decodeErrorBody(t *testing.T, raw string) errorBody {
	t.Helper()
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil {
		t.Fatalf("body %q is not JSON: %v", raw, err)
	}
	if len(top) != 1 || top["error"] == nil {
		t.Fatalf("body %s: want exactly one key, error", raw)
	}
	var b errorBody
	if err := json.Unmarshal([]byte(raw), &b); err != nil {
		t.Fatal(err)
	}
	for k := range b.Error {
		if k != "code" && k != "message" && k != "field" {
			t.Errorf("unexpected key %q in %s", k, raw)
		}
	}
	return b
}

func TestWriteError(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		status  int
		code    string
		field   string // absent when empty
		message string // exact when set
		leak    string // must not appear in the body
		wwwAuth bool
	}{
		{"unauthenticated", fmt.Errorf("%w: token expired", auth.ErrUnauthenticated), 401, "unauthenticated", "", "unauthenticated: token expired", "", true},
		{"bare unauthenticated", auth.ErrUnauthenticated, 401, "unauthenticated", "", "unauthenticated", "", true},
		{"forbidden", fmt.Errorf("%w: token lacks scope", auth.ErrForbidden), 403, "forbidden", "", "forbidden: token lacks scope", "", false},
		{"wrapped twice forbidden", fmt.Errorf("api: %w", fmt.Errorf("%w: p2", auth.ErrForbidden)), 403, "forbidden", "", "", "", false},
		{"bad request names field", web.BadRequest("pointIds[1]", "duplicate point id %q", "a"), 400, "invalid_request", "pointIds[1]", `duplicate point id "a"`, "", false},
		{"not found", web.NotFound("stream"), 404, "not_found", "", "stream not found", "", false},
		{"wrapped web error", fmt.Errorf("create: %w", web.BadRequest("name", "too long")), 400, "invalid_request", "name", "too long", "", false},
		{"custom status", &web.Error{Status: 409, Code: "conflict", Message: "retry"}, 409, "conflict", "", "retry", "", false},
		{"other error is 500 without detail", errors.New("kv: password=hunter2 at 10.0.0.5"), 500, "internal", "", "internal error", "hunter2", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			web.WriteError(w, tc.err)
			if w.Code != tc.status {
				t.Errorf("status = %d, want %d", w.Code, tc.status)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if got := w.Header().Get("WWW-Authenticate") != ""; got != tc.wwwAuth {
				t.Errorf("WWW-Authenticate present = %v, want %v", got, tc.wwwAuth)
			}
			raw := w.Body.String()
			if tc.leak != "" && strings.Contains(raw, tc.leak) {
				t.Errorf("body leaks %q: %s", tc.leak, raw)
			}
			b := decodeErrorBody(t, raw)
			if b.Error["code"] != tc.code {
				t.Errorf("code = %v, want %q", b.Error["code"], tc.code)
			}
			msg, ok := b.Error["message"].(string)
			if !ok || msg == "" {
				t.Errorf("message = %v, want a non-empty string", b.Error["message"])
			}
			if tc.message != "" && msg != tc.message {
				t.Errorf("message = %q, want %q", msg, tc.message)
			}
			field, has := b.Error["field"]
			if tc.field == "" && has {
				t.Errorf("field = %v, want absent", field)
			}
			if tc.field != "" && field != tc.field {
				t.Errorf("field = %v, want %q", field, tc.field)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	tok, err := auth.Mint(key, []string{"p1"}, auth.AllScopes, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	v := auth.HMACVerifier{Key: key}
	tests := []struct {
		name   string
		header string
		ok     bool
	}{
		{"valid", "Bearer " + tok, true},
		{"missing", "", false},
		{"wrong scheme", "Basic " + tok, false},
		{"bad token", "Bearer x.y.z", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.header != "" {
				r.Header.Set("Authorization", tc.header)
			}
			c, err := web.Authenticate(v, r)
			if tc.ok {
				if err != nil || c == nil || c.Allow("p1", auth.ScopeStreamsRead) != nil {
					t.Fatalf("Authenticate = %+v, %v", c, err)
				}
				return
			}
			if !errors.Is(err, auth.ErrUnauthenticated) {
				t.Fatalf("Authenticate error = %v, want ErrUnauthenticated", err)
			}
		})
	}
}

func TestHealth(t *testing.T) {
	var readyErr error
	mux := http.NewServeMux()
	web.Health(mux, func() error { return readyErr })
	tests := []struct {
		name     string
		method   string
		path     string
		ready    error
		status   int
		wantBody map[string]string
	}{
		{"healthz", "GET", "/healthz", nil, 200, map[string]string{"status": "ok"}},
		{"healthz while not ready", "GET", "/healthz", errors.New("catalog loading"), 200, map[string]string{"status": "ok"}},
		{"readyz ready", "GET", "/readyz", nil, 200, map[string]string{"status": "ready"}},
		{"readyz not ready", "GET", "/readyz", errors.New("catalog loading"), 503, map[string]string{"status": "not ready", "reason": "catalog loading"}},
		{"POST healthz", "POST", "/healthz", nil, 405, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			readyErr = tc.ready
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, httptest.NewRequest(tc.method, tc.path, nil))
			if w.Code != tc.status {
				t.Fatalf("status = %d, want %d", w.Code, tc.status)
			}
			if tc.wantBody == nil {
				return
			}
			var got map[string]string
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("body %q: %v", w.Body, err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.wantBody) {
				t.Errorf("body = %v, want %v", got, tc.wantBody)
			}
		})
	}
}

func TestServerTimeouts(t *testing.T) {
	s := web.Server("127.0.0.1:0", http.NotFoundHandler())
	if s.ReadHeaderTimeout <= 0 || s.ReadTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.MaxHeaderBytes <= 0 {
		t.Errorf("server has an unset limit: %+v", s)
	}
}
