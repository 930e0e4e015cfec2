package signer

import (
	"net/url"

	"hookstream/pkg/outbound"
)

// redactedError is an error whose text has had secrets removed. Unwrap still reaches the cause,
// whose own text must not be shown.
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactOAuth2 removes an OAuth2 client's secret from err's text. A token endpoint that refuses
// a client often echoes the request (golang.org/x/oauth2 puts the answer's body in its error),
// and that request carries the secret in a form body or a Basic header; the text reaches the
// delivery's outcomes, dead letters, span and the logs.
func redactOAuth2(err error, clientID, clientSecret string) error {
	if err == nil || clientSecret == "" {
		return err
	}
	return &redactedError{err: err, msg: outbound.Redact(err.Error(), clientSecret,
		clientID+":"+clientSecret, url.QueryEscape(clientID)+":"+url.QueryEscape(clientSecret))}
}
