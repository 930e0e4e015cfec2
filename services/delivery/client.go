package delivery

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/go-retryablehttp"

	"hookstream/pkg/outbound"
)

// newHTTPClient returns the client of every attempt. It never follows redirects (a 3xx is a
// failure), never uses an environment proxy, and keeps connections alive for reuse. Retries are
// not its business: the durable schedule decides them, so go-retryablehttp runs with RetryMax 0
// and passes every response and error through.
func newHTTPClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *retryablehttp.Client {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   512,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	c := retryablehttp.NewClient()
	c.HTTPClient = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	c.RetryMax = 0
	c.Logger = nil
	c.CheckRetry = func(ctx context.Context, resp *http.Response, err error) (bool, error) { return false, err }
	c.ErrorHandler = retryablehttp.PassthroughErrorHandler
	return c
}

// result is what one attempt produced.
type result struct {
	status     int
	retryAfter string
	excerpt    string
	err        error
	latency    time.Duration
	// sent is the request's headers, credentials included (withoutCredentials before keeping
	// them); nil when the attempt failed before it had headers.
	sent map[string]string
}

func (r result) errorText() string {
	switch {
	case r.err != nil:
		return describeErr(r.err)
	case r.status != 0 && (r.status < 200 || r.status >= 300):
		msg := http.StatusText(r.status)
		if r.excerpt != "" {
			msg += ": " + r.excerpt
		}
		return msg
	}
	return ""
}

func describeErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	}
	s := err.Error()
	// Strip the URL that net/http prefixes, it may hold credentials in its query.
	if i := strings.LastIndex(s, ": "); i >= 0 && strings.Contains(s[:i], "://") {
		s = s[i+2:]
	}
	return s
}

// send performs one HTTP attempt.
func send(ctx context.Context, c *retryablehttp.Client, method, url string, headers map[string]string, body []byte, timeout time.Duration) result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := retryablehttp.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return result{err: err}
	}
	if len(req.Header) == 0 {
		req.Header = make(http.Header, len(headers)+2) // sized once: a delivery sets 5-10 headers
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := c.Do(req)
	lat := time.Since(start)
	if err != nil {
		return result{err: err, latency: lat}
	}
	defer resp.Body.Close()
	var excerpt string
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		// A failure's answer is shown in its error (errorText); a success's is never read.
		excerpt = outbound.Excerpt(resp.Body)
	}
	// Drain a little more so the connection can be reused; give up on huge bodies. An answer
	// without a body (a 204, Content-Length: 0) has nothing to drain.
	if resp.ContentLength != 0 {
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	}
	return result{
		status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"),
		excerpt: excerpt, latency: lat,
	}
}
