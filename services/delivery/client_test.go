package delivery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A failed attempt's error names the endpoint's answer; a successful one's body is not read
// into the result (only drained, so the connection is reused).
func TestSendExcerpt(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/busy" {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("busy, try later"))
			return
		}
		_, _ = w.Write([]byte("thanks"))
	}))
	t.Cleanup(srv.Close)
	c := newHTTPClient(nil)
	for path, want := range map[string]struct {
		status  int
		excerpt string
		errText string
	}{
		"/busy": {http.StatusServiceUnavailable, "busy, try later", "Service Unavailable: busy, try later"},
		"/ok":   {http.StatusOK, "", ""},
	} {
		res := send(context.Background(), c, http.MethodPost, srv.URL+path, nil, []byte("{}"), 5*time.Second)
		if res.err != nil || res.status != want.status || res.excerpt != want.excerpt || res.errorText() != want.errText {
			t.Errorf("%s: status %d, excerpt %q, error %q, err %v; want %d, %q, %q",
				path, res.status, res.excerpt, res.errorText(), res.err, want.status, want.excerpt, want.errText)
		}
	}
}
