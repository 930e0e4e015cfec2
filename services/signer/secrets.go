package signer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// loadSecret reads and decodes one entry of the secrets bucket. It is the only place in
// hookstream that reads a secret; encryption at rest wraps this function (and the API's
// storeSecret). A missing entry is a permanent error.
func (s *Service) loadSecret(ctx context.Context, key string) (*proto.Secret, error) {
	now := time.Now()
	if v, ok := s.secretCache.Load(key); ok {
		if c := v.(cachedSecret); now.Before(c.until) {
			return c.sec, nil
		}
	}
	sec, err := s.readSecret(ctx, key)
	if err != nil {
		return nil, err
	}
	s.secretCache.Store(key, cachedSecret{sec: sec, until: now.Add(secretCacheTTL)})
	return sec, nil
}

// secretCacheTTL bounds how long an opened secret is reused without a look at the bucket:
// reading it per job cost a KV round trip and an AES-GCM open per delivery (a fifth of the
// signer's CPU). Every write to the bucket also evicts its key at once (watchSecrets); the TTL
// only covers a watch that fell behind.
const secretCacheTTL = 30 * time.Second

// watchSecrets evicts cached secrets as soon as their key is written, rotated or purged.
func (s *Service) watchSecrets(ctx context.Context) error {
	w, err := s.secrets.WatchAll(ctx, jetstream.UpdatesOnly(), jetstream.MetaOnly())
	if err != nil {
		return fmt.Errorf("watch secrets: %w", err)
	}
	go func() {
		defer w.Stop()
		for e := range w.Updates() {
			if e != nil {
				s.secretCache.Delete(e.Key())
			}
		}
	}()
	return nil
}

type cachedSecret struct {
	sec   *proto.Secret
	until time.Time
}

func (s *Service) readSecret(ctx context.Context, key string) (*proto.Secret, error) {
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
func (s *Service) signingKeys(ctx context.Context, def *stream.Stream, now time.Time) ([][]byte, error) {
	cur, err := s.loadSecret(ctx, proto.SecretKey(def.Partition, def.ID, def.SecretGen))
	if err != nil {
		return nil, err
	}
	keys := [][]byte{cur.Current}
	if def.PrevSecretUntil.After(now) && def.PrevSecretGen != def.SecretGen {
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
// It is read fresh, not cached: it is needed per attempt of auth streams only, and a changed
// password must apply to the very next attempt.
func (s *Service) authSecret(ctx context.Context, def *stream.Stream) (*proto.Secret, error) {
	return s.readSecret(ctx, proto.AuthSecretKey(def.Partition, def.ID))
}
