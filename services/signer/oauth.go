package signer

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// tokens caches one OAuth2 client-credentials token source per stream. A source reuses its token
// until shortly before it expires (oauth2.ReuseTokenSource); a changed configuration or secret,
// or a refresh after a 401, replaces it.
type tokens struct {
	base   context.Context // outlives requests: token sources keep it for later fetches
	client *http.Client
	mu     sync.Mutex
	m      map[string]*tokenSource
}

type tokenSource struct {
	fingerprint [32]byte
	src         oauth2.TokenSource
}

// newTokens returns the token cache; client makes the token endpoint calls (nil: a client with
// no proxy that does not follow redirects; the binary passes the SSRF-guarded one).
func newTokens(base context.Context, client *http.Client) *tokens {
	if client == nil {
		client = &http.Client{
			Timeout:       10 * time.Second,
			Transport:     &http.Transport{Proxy: nil, TLSHandshakeTimeout: 5 * time.Second},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &tokens{base: base, client: client, m: map[string]*tokenSource{}}
}

// token returns a valid access token for the stream.
func (t *tokens) token(ctx context.Context, def *stream.Stream, clientSecret string, refresh bool) (string, error) {
	key := proto.StreamKey(def.Partition, def.ID)
	fp := sha256.Sum256([]byte(strings.Join(append([]string{def.OAuth2TokenURL, def.OAuth2ClientID, clientSecret}, def.OAuth2Scopes...), "\x00")))
	t.mu.Lock()
	ts := t.m[key]
	if ts == nil || ts.fingerprint != fp || refresh {
		cfg := clientcredentials.Config{
			ClientID: def.OAuth2ClientID, ClientSecret: clientSecret, TokenURL: def.OAuth2TokenURL, Scopes: def.OAuth2Scopes,
		}
		ts = &tokenSource{fingerprint: fp, src: cfg.TokenSource(context.WithValue(t.base, oauth2.HTTPClient, t.client))}
		t.m[key] = ts
	}
	t.mu.Unlock()
	type res struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan res, 1)
	go func() { tok, err := ts.src.Token(); ch <- res{tok, err} }()
	select {
	case r := <-ch:
		if r.err != nil {
			return "", redactOAuth2(fmt.Errorf("oauth2 token: %w", r.err), def.OAuth2ClientID, clientSecret)
		}
		return r.tok.AccessToken, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
