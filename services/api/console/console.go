// Package console serves hookstream's web console at /console: server-rendered pages (Go
// html/template, a little vanilla JavaScript, everything embedded in the binary) over the
// management API. Every page gets its data by calling the API's own handler in-process with the
// signed-in user's token, so authentication, partition and scope checks, validation and error
// messages are the API's own, never a copy of them.
package console

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/auth"
	"hookstream/proto"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Config configures the console.
type Config struct {
	// API is the management API's handler; every page's data and every change goes through it.
	API http.Handler
	// Verifier checks the token a user signs in with, as the API does.
	Verifier auth.Verifier
	// NC carries the live tail: a core subscription to the OUTCOMES stream's subjects.
	NC *nats.Conn
	// JS counts the backlog of the streams shown (backlog.go); nil shows none.
	JS jetstream.JetStream
	// Logger records failures the user is shown only as "internal error".
	Logger *slog.Logger
}

// Console is the web console. Its handler is safe for concurrent use.
type Console struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// cookieName holds the session: the user's API token itself (see NOTES, issue 26), so that any
// API replica serves any request and a restart signs nobody out.
const cookieName = "hookstream_session"

// New parses the embedded templates and returns the console.
func New(cfg Config) (*Console, error) {
	if cfg.API == nil || cfg.Verifier == nil {
		return nil, errors.New("console: API and Verifier are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c := &Console{cfg: cfg, log: cfg.Logger, pages: map[string]*template.Template{}}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	for _, n := range names {
		if n == "templates/layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console template %s: %w", n, err)
		}
		c.pages[strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")] = t
	}
	c.mux = c.routes()
	return c, nil
}

// Mount adds the console's routes (everything under /console) to mux.
func (c *Console) Mount(mux *http.ServeMux) {
	mux.Handle("/console/", c.mux)
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusSeeOther))
}

// session is a signed-in user: the token, its verified claims, and the CSRF token of its forms.
type session struct {
	token  string
	claims *auth.Claims
	csrf   string
}

// csrfOf derives a form token from the session token: unguessable without the session cookie
// (HttpOnly, so no script reads it), and the same on every replica without shared state.
func csrfOf(token string) string {
	sum := sha256.Sum256([]byte("hookstream console csrf\x00" + token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// signedIn returns the session of a request, or nil when it has none or its token is no longer
// valid (expired, or the key changed).
func (c *Console) signedIn(r *http.Request) *session {
	ck, err := r.Cookie(cookieName)
	if err != nil || ck.Value == "" {
		return nil
	}
	claims, err := c.cfg.Verifier.Verify(ck.Value)
	if err != nil {
		return nil
	}
	return &session{token: ck.Value, claims: claims, csrf: csrfOf(ck.Value)}
}

func setSession(w http.ResponseWriter, r *http.Request, token string) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: "/console", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

func clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/console", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
}

// sameOrigin refuses a form posted from another site: an Origin header, when the browser sends
// one, must name this host.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// validCSRF checks a posted form's csrf field against the session's.
func validCSRF(r *http.Request, s *session) bool {
	got := r.PostFormValue("csrf")
	return subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// apiError is an error answer of the API: its status and {"error": {code, message, field}}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field"`
}

func (e *apiError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// call runs one API request in-process as the session's user: method on path (below
// /streaming/v1/partitions/{partition}) with query q and a JSON body (nil for none). A 2xx
// answer is decoded into out (when not nil); any other is returned as an *apiError.
func (c *Console) call(r *http.Request, s *session, partition, method, path string, q url.Values, body, out any) error {
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	target := "/streaming/v1/partitions/" + url.PathEscape(partition) + path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(r.Context(), method, target, rd)
	if err != nil {
		return fmt.Errorf("api request %s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	rec := newRecorder()
	c.cfg.API.ServeHTTP(rec, req)
	if rec.status >= 300 {
		var e struct {
			Error apiError `json:"error"`
		}
		if json.Unmarshal(rec.body.Bytes(), &e) != nil || e.Error.Message == "" {
			e.Error = apiError{Code: "internal", Message: http.StatusText(rec.status)}
		}
		e.Error.Status = rec.status
		return &e.Error
	}
	if out == nil || rec.body.Len() == 0 {
		return nil
	}
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("decode %s %s: %w", method, path, err)
	}
	return nil
}

// recorder is the response writer of in-process API calls.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (w *recorder) Header() http.Header { return w.header }

func (w *recorder) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

// validPartition reports whether p can be a partition id at all (one subject token).
func validPartition(p string) bool { return proto.TokenProblem(p) == "" }
