// Package web holds the HTTP conventions shared by hookstream's HTTP surfaces: JSON errors of the
// form {"error": {"code", "message", "field"}}, bounded JSON bodies, bearer authentication, and
// the health endpoints.
package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"hookstream/pkg/auth"
	"hookstream/proto"
)

// MaxBody is the largest request body accepted (1 MiB).
const MaxBody = 1 << 20

// Error is an API error with its HTTP status.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func (e *Error) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// BadRequest is a 400 naming the offending field.
func BadRequest(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Field: field, Message: fmt.Sprintf(format, args...)}
}

// NotFound is a 404.
func NotFound(what string) *Error {
	return &Error{Status: http.StatusNotFound, Code: "not_found", Message: what + " not found"}
}

// WriteJSON writes v as JSON with status.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError writes err as a JSON error; errors that are not *Error become 500 without detail,
// except the auth package's errors, which become 401 and 403.
func WriteError(w http.ResponseWriter, err error) {
	var e *Error
	switch {
	case errors.As(err, &e):
	case errors.Is(err, auth.ErrUnauthenticated):
		w.Header().Set("WWW-Authenticate", `Bearer realm="hookstream"`)
		e = &Error{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: err.Error()}
	case errors.Is(err, auth.ErrForbidden):
		e = &Error{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()}
	default:
		e = &Error{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	WriteJSON(w, e.Status, map[string]*Error{"error": e})
}

// ReadBody reads a request body of at most MaxBody bytes.
func ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, &Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: fmt.Sprintf("request body exceeds %d bytes", MaxBody)}
		}
		return nil, BadRequest("", "reading body: %v", err)
	}
	return b, nil
}

// DecodeJSON reads a bounded body into v, rejecting unknown fields and trailing data. Errors
// name the offending field.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := ReadBody(w, r)
	if err != nil {
		return err
	}
	return Unmarshal(b, v)
}

// Unmarshal decodes JSON into v, rejecting unknown fields and trailing data, with errors that name
// the offending field.
func Unmarshal(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return BadRequest("", "request body is empty")
	}
	if !utf8.Valid(b) {
		return BadRequest("", "request body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			f = strings.Trim(f, `"`)
			return BadRequest(f, "unknown field %q", f)
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return BadRequest(te.Field, "must be of type %s, not %s", te.Type.String(), te.Value)
		}
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return BadRequest("", "invalid JSON at byte %d: %v", se.Offset, err)
		}
		return BadRequest("", "invalid JSON: %v", err)
	}
	// dec.More reports false before a stray '}' or ']', so look at the rest of the input.
	if len(bytes.TrimSpace(b[dec.InputOffset():])) > 0 {
		return BadRequest("", "invalid JSON: trailing data after the value")
	}
	return nil
}

// Authenticate returns the verified claims of a request's bearer token.
func Authenticate(v auth.Verifier, r *http.Request) (*auth.Claims, error) {
	tok, err := auth.BearerToken(r.Header.Get("Authorization"))
	if err != nil {
		return nil, err
	}
	return v.Verify(tok)
}

// Server returns an http.Server with every timeout set. When h is a ServeMux, a request whose
// path leaves a wildcard of the pattern it is for empty ("/points//values") is answered 400
// naming the wildcard, where the mux would redirect to the cleaned path, another resource.
func Server(addr string, h http.Handler) *http.Server {
	if mux, ok := h.(*http.ServeMux); ok {
		h = emptyWildcards(mux)
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
	}
}

// Health serves /healthz (alive) and /readyz (ready() returns nil).
func Health(mux *http.ServeMux, ready func() error) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := ready(); err != nil {
			WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready", "reason": err.Error()})
			return
		}
		WriteJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// emptyWildcards serves mux, answering 400 for a path with an empty segment where the pattern
// it would match has a wildcard. The wildcards of hookstream's routes are all ids.
func emptyWildcards(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "//") {
			if name := emptyWildcard(mux, r); name != "" {
				WriteError(w, BadRequest(name, "%s is empty in the path; it must be %s", name, proto.TokenRule))
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// emptyWildcard names the wildcard that an empty segment of r's path stands in, in the pattern
// the path matches with its empty segments filled; "" when there is none.
func emptyWildcard(mux *http.ServeMux, r *http.Request) string {
	segs := strings.Split(r.URL.Path, "/")
	var empty []int
	for i := 1; i < len(segs)-1; i++ { // not the root, nor a trailing slash
		if segs[i] == "" {
			segs[i] = "~" // a wildcard matches it; no literal segment of a route is "~"
			empty = append(empty, i)
		}
	}
	filled := r.Clone(r.Context())
	filled.URL.Path, filled.URL.RawPath = strings.Join(segs, "/"), ""
	_, pattern := mux.Handler(filled)
	i := strings.IndexByte(pattern, '/') // after "METHOD " and any host
	if i < 0 {
		return ""
	}
	psegs := strings.Split(pattern[i:], "/")
	for _, i := range empty {
		if i < len(psegs) && strings.HasPrefix(psegs[i], "{") {
			return strings.TrimSuffix(strings.Trim(psegs[i], "{}"), "...")
		}
	}
	return ""
}
