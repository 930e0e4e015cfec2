package signer

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"hookstream/proto"
	"hookstream/testkit"
)

// TestSecretCacheEvictsOnWrite: a signing secret is cached, and a new value written in place (a
// PATCH of webhookSecret) is used as soon as the bucket's watch reports it, not after the TTL.
func TestSecretCacheEvictsOnWrite(t *testing.T) {
	e := newEnv(t)
	key := proto.SecretKey("p1", "s9", 0)
	e.putSecret(key, &proto.Secret{Current: []byte("old")})
	s, err := New(Config{Conn: e.conn, Secrets: e.box})
	if err != nil {
		t.Fatal(err)
	}
	if s.secrets, err = e.conn.JS.KeyValue(context.Background(), proto.BucketSecrets); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := s.watchSecrets(ctx); err != nil {
		t.Fatal(err)
	}
	sec, err := s.loadSecret(ctx, key)
	if err != nil || string(sec.Current) != "old" {
		t.Fatalf("first load: %v %v", sec, err)
	}
	e.putSecret(key, &proto.Secret{Current: []byte("new")})
	testkit.CheckFor(t, 2*time.Second, func() error {
		sec, err := s.loadSecret(ctx, key)
		if err != nil {
			return err
		}
		if !bytes.Equal(sec.Current, []byte("new")) {
			return fmt.Errorf("still %q", sec.Current)
		}
		return nil
	})
}
