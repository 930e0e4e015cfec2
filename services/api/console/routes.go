package console

import (
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"hookstream/pkg/auth"
)

const prefix = "/console/p/{partition}"

func (c *Console) routes() *http.ServeMux {
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /console/static/", http.StripPrefix("/console/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /console/{$}", c.home)
	mux.HandleFunc("POST /console/signin", c.signIn)
	mux.HandleFunc("POST /console/signout", c.signOut)
	mux.HandleFunc("GET /console/go", c.goPartition)
	mux.HandleFunc("GET "+prefix+"/{$}", c.page(func(w http.ResponseWriter, r *http.Request, _ *session, p string) error {
		http.Redirect(w, r, streamsPath(p), http.StatusSeeOther)
		return nil
	}))
	mux.HandleFunc("GET "+prefix+"/streams", c.page(c.streamList))
	mux.HandleFunc("GET "+prefix+"/streams/new", c.page(c.newStream))
	mux.HandleFunc("POST "+prefix+"/streams", c.page(c.createStream))
	mux.HandleFunc("GET "+prefix+"/streams/{id}", c.page(c.streamPage))
	mux.HandleFunc("GET "+prefix+"/streams/{id}/edit", c.page(c.editStream))
	mux.HandleFunc("POST "+prefix+"/streams/{id}/edit", c.page(c.saveStream))
	mux.HandleFunc("POST "+prefix+"/streams/{id}/status", c.page(c.setStatus))
	mux.HandleFunc("POST "+prefix+"/streams/{id}/delete", c.page(c.deleteStream))
	mux.HandleFunc("POST "+prefix+"/streams/{id}/test", c.page(c.testStream))
	mux.HandleFunc("POST "+prefix+"/streams/{id}/secret", c.page(c.rotateSecret))
	mux.HandleFunc("GET "+prefix+"/dead-letters", c.page(c.deadLetters))
	mux.HandleFunc("GET "+prefix+"/dead-letters/{id}", c.page(c.deadLetter))
	mux.HandleFunc("POST "+prefix+"/dead-letters/resend", c.page(c.resend))
	mux.HandleFunc("GET "+prefix+"/usage", c.page(c.usage))
	mux.HandleFunc("GET "+prefix+"/tail", c.page(c.tailPage))
	mux.HandleFunc("GET "+prefix+"/tail/events", c.page(c.tailEvents))
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.render(w, r, http.StatusNotFound, "error", view{Title: "Not found", Session: c.signedIn(r)},
			&apiError{Status: http.StatusNotFound, Code: "not_found", Message: "no page " + r.Method + " " + r.URL.Path})
	})
	return mux
}

func streamsPath(p string) string { return "/console/p/" + url.PathEscape(p) + "/streams" }

func streamPath(p, id string) string { return streamsPath(p) + "/" + url.PathEscape(id) }

// pageHandler serves one page for a signed-in user in partition.
type pageHandler func(w http.ResponseWriter, r *http.Request, s *session, partition string) error

// page checks what every page needs before h runs: a session (else the sign-in page), a valid
// partition the token may read, and for a POST the same origin and the form's CSRF token. An
// error h returns is shown as a page with the API's status and message.
func (c *Console) page(h pageHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secure(w)
		s := c.signedIn(r)
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/events") {
				http.Redirect(w, r, "/console/", http.StatusSeeOther)
				return
			}
			c.fail(w, r, nil, &apiError{Status: http.StatusUnauthorized, Code: "unauthenticated", Message: "sign in first"})
			return
		}
		partition := r.PathValue("partition")
		if !validPartition(partition) {
			c.fail(w, r, s, &apiError{Status: http.StatusBadRequest, Code: "invalid_request", Field: "partition", Message: "not a partition id"})
			return
		}
		if err := s.claims.Allow(partition, auth.ScopeStreamsRead); err != nil {
			c.fail(w, r, s, &apiError{Status: http.StatusForbidden, Code: "forbidden", Message: err.Error()})
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if !sameOrigin(r) || !validCSRF(r, s) {
				c.fail(w, r, s, &apiError{Status: http.StatusForbidden, Code: "csrf", Message: "the form is stale or came from another site; reload the page and try again"})
				return
			}
		}
		if err := h(w, r, s, partition); err != nil {
			c.fail(w, r, s, err)
		}
	}
}

// secure sets the headers of every console answer: nothing loads from elsewhere, no framing,
// nothing cached (pages show a tenant's data).
func secure(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
}

// fail shows err as an error page: an API error with its status, anything else as a 500.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		c.log.Error("console request failed", "method", r.Method, "path", r.URL.Path, "error", err.Error())
		ae = &apiError{Status: http.StatusInternalServerError, Code: "internal", Message: "internal error"}
	}
	c.render(w, r, ae.Status, "error", view{Title: http.StatusText(ae.Status), Session: s, Partition: r.PathValue("partition")}, ae)
}

// home is the sign-in page, or for a signed-in user the streams of the token's partition.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	secure(w)
	s := c.signedIn(r)
	if s == nil {
		c.render(w, r, http.StatusOK, "signin", view{Title: "Sign in"}, signInData{})
		return
	}
	if p := s.partitions(); len(p) > 0 {
		http.Redirect(w, r, streamsPath(p[0]), http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "choose", view{Title: "Choose a partition", Session: s}, nil)
}

// partitions are the partitions the token names (none for an operator's "*").
func (s *session) partitions() []string {
	return slices.DeleteFunc(slices.Clone(s.claims.Partitions), func(p string) bool { return p == "*" || !validPartition(p) })
}

type signInData struct {
	Error string
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	secure(w)
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !sameOrigin(r) {
		c.fail(w, r, nil, &apiError{Status: http.StatusForbidden, Code: "csrf", Message: "the form came from another site"})
		return
	}
	token := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(r.PostFormValue("token")), "Bearer "))
	if token == "" {
		c.render(w, r, http.StatusBadRequest, "signin", view{Title: "Sign in"}, signInData{Error: "paste an API token"})
		return
	}
	if _, err := c.cfg.Verifier.Verify(token); err != nil {
		c.render(w, r, http.StatusUnauthorized, "signin", view{Title: "Sign in"}, signInData{Error: "this token is not accepted: " + err.Error()})
		return
	}
	setSession(w, r, token)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	secure(w)
	if s := c.signedIn(r); s != nil && (!sameOrigin(r) || !validCSRF(r, s)) {
		c.fail(w, r, s, &apiError{Status: http.StatusForbidden, Code: "csrf", Message: "the form is stale or came from another site"})
		return
	}
	clearSession(w, r)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

// goPartition opens the partition an operator's token ("*") names in the chooser.
func (c *Console) goPartition(w http.ResponseWriter, r *http.Request) {
	secure(w)
	p := r.URL.Query().Get("partition")
	if !validPartition(p) {
		c.render(w, r, http.StatusBadRequest, "choose", view{Title: "Choose a partition", Session: c.signedIn(r)},
			"partition: not a partition id (1-128 of A-Z a-z 0-9 - _ : @ ~ + = %, no dots or spaces)")
		return
	}
	http.Redirect(w, r, streamsPath(p), http.StatusSeeOther)
}
