package signer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/proto"
)

// loadSecret reads and decodes one entry of the secrets bucket. It is the only place in
// hookstream that reads a secret; encryption at rest wraps this function (and the API's
// storeSecret). A missing entry is a permanent error.
func (s *Service) loadSecret(ctx context.Context, key string) (*proto.Secret, error) {
	e, err := s.secrets.Get(ctx, key)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("%w: secret %s is missing", bus.ErrTerm, key)
		}
		return nil, fmt.Errorf("load secret: %w", err)
	}
	// Sealed with AES-256-GCM under the master key, the KV key bound as associated data. Not
	// ErrTerm when it does not open: a missing master key is a configuration error, and the job
	// waits for a signer started with the right key rather than being dropped.
	plain, err := s.cfg.Secrets.Open(e.Value(), []byte(e.Key()))
	if err != nil {
		return nil, fmt.Errorf("open secret %s: %w", key, err)
	}
	var sec proto.Secret
	if err := proto.Unmarshal(plain, &sec); err != nil {
		return nil, fmt.Errorf("%w: decode secret: %v", bus.ErrTerm, err)
	}
	return &sec, nil
}

// signingKeys returns the keys that sign now: the current generation, then the previous one
// while the rotation's overlap lasts.
func (s *Service) signingKeys(ctx context.Context, def *proto.StreamDef, now time.Time) ([][]byte, error) {
	cur, err := s.loadSecret(ctx, proto.SecretKey(def.Partition, def.ID, def.SecretGen))
	if err != nil {
		return nil, err
	}
	keys := [][]byte{cur.Current}
	if def.PrevSecretUntil > now.UnixNano() && def.PrevSecretGen != def.SecretGen {
		prev, err := s.loadSecret(ctx, proto.SecretKey(def.Partition, def.ID, def.PrevSecretGen))
		if err == nil {
			keys = append(keys, prev.Current)
		} else if !errors.Is(err, bus.ErrTerm) {
			return nil, err
		} // a purged previous generation simply stops signing
	}
	return keys, nil
}

// authSecret returns the secret halves of the stream's outbound auth.
func (s *Service) authSecret(ctx context.Context, def *proto.StreamDef) (*proto.Secret, error) {
	return s.loadSecret(ctx, proto.AuthSecretKey(def.Partition, def.ID))
}
