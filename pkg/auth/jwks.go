package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// AsymmetricMethods are the only signing algorithms a production verifier accepts. HS256 is
// absent on purpose: with it, anyone holding a public key could forge tokens (algorithm
// confusion), and "none" is never accepted.
var AsymmetricMethods = []string{"RS256", "ES256", "EdDSA"}

// JWKSConfig configures a JWKSVerifier.
type JWKSConfig struct {
	// URL of the JSON Web Key Set (required).
	URL string
	// Audience and Issuer are required claims when set.
	Audience string
	Issuer   string
	// RefreshInterval is how often the key set is fetched again (default 15 min).
	RefreshInterval time.Duration
	// UnknownKIDInterval is the least time between two fetches caused by a token whose kid is
	// not in the cached set (default 1 min): a flood of made-up kids costs one fetch.
	UnknownKIDInterval time.Duration
	// Client fetches the key set (default: a client with a 10 s timeout). The URL is the
	// operator's, so it is not subject to the outbound guard.
	Client *http.Client
	// OnRefreshError is told when a fetch fails (the cached keys stay in use).
	OnRefreshError func(error)
}

// JWKSVerifier verifies tokens signed with RS256, ES256 or EdDSA by a key of a remote JWKS,
// cached and refreshed in the background. It is safe for concurrent use.
type JWKSVerifier struct {
	kf       keyfunc.Keyfunc
	audience string
	issuer   string
}

// NewJWKSVerifier fetches the key set once and keeps it fresh until ctx ends. A first fetch that
// fails is reported to OnRefreshError and retried on the next refresh or unknown kid, so that a
// key server that starts late does not stop hookstream from starting.
func NewJWKSVerifier(ctx context.Context, cfg JWKSConfig) (*JWKSVerifier, error) {
	if cfg.URL == "" {
		return nil, errors.New("jwks: URL is required")
	}
	if cfg.RefreshInterval <= 0 {
		cfg.RefreshInterval = 15 * time.Minute
	}
	if cfg.UnknownKIDInterval <= 0 {
		cfg.UnknownKIDInterval = time.Minute
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	onErr := cfg.OnRefreshError
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.URL}, keyfunc.Override{
		Client:          cfg.Client,
		HTTPTimeout:     10 * time.Second,
		RefreshInterval: cfg.RefreshInterval,
		// One refetch per interval; a token with an unknown kid that finds the limiter empty
		// fails at once instead of queueing.
		RefreshUnknownKID: rate.NewLimiter(rate.Every(cfg.UnknownKIDInterval), 1),
		RateLimitWaitMax:  50 * time.Millisecond,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				if onErr != nil {
					onErr(err)
				}
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", cfg.URL, err)
	}
	return &JWKSVerifier{kf: kf, audience: cfg.Audience, issuer: cfg.Issuer}, nil
}

// Verify implements Verifier.
func (v *JWKSVerifier) Verify(token string) (*Claims, error) {
	var c Claims
	if _, err := jwt.ParseWithClaims(token, &c, v.kf.Keyfunc, parserOptions(v.audience, v.issuer)...); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	return &c, nil
}

// parserOptions are the checks of every production verifier: asymmetric algorithms only,
// exp required, nbf and iat honoured, aud and iss when configured, 30 s of clock skew.
func parserOptions(audience, issuer string) []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(AsymmetricMethods), jwt.WithExpirationRequired(),
		jwt.WithLeeway(30 * time.Second),
	}
	if audience != "" {
		opts = append(opts, jwt.WithAudience(audience))
	}
	if issuer != "" {
		opts = append(opts, jwt.WithIssuer(issuer))
	}
	return opts
}
