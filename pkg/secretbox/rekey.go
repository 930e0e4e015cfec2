package secretbox

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// RekeyStats counts what Rekey did.
type RekeyStats struct {
	Resealed  int // values sealed under a previous key, now under the primary
	Sealed    int // plaintext values (written before encryption), now sealed
	Unchanged int // values already under the primary key
}

// Rekey re-encrypts every value of kv under b's primary key, with each value's KV key as its
// associated data. Values already under the primary key are left alone; plaintext values are
// sealed. Each write is conditional on the revision read, so a value changed concurrently (by
// the API, which seals under the primary key) is read again. It stops at the first value it
// cannot open, leaving the rest for a later run: nothing is lost, as old keys still open them.
func Rekey(ctx context.Context, kv jetstream.KeyValue, b *Box) (RekeyStats, error) {
	var st RekeyStats
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return st, fmt.Errorf("rekey: list: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	for _, k := range keys {
		if err := rekeyOne(ctx, kv, b, k, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func rekeyOne(ctx context.Context, kv jetstream.KeyValue, b *Box, k string, st *RekeyStats) error {
	for range 5 {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil // deleted meanwhile
		}
		if err != nil {
			return fmt.Errorf("rekey %s: %w", k, err)
		}
		v := e.Value()
		plain := !IsSealed(v)
		if !plain && SealedBy(v) == b.PrimaryID() {
			st.Unchanged++
			return nil
		}
		pt := v
		if !plain {
			if pt, err = b.Open(v, []byte(k)); err != nil {
				return fmt.Errorf("rekey %s: %w", k, err)
			}
		}
		sealed, err := b.Seal(pt, []byte(k))
		if err != nil {
			return err
		}
		if _, err := kv.Update(ctx, k, sealed, e.Revision()); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue
			}
			return fmt.Errorf("rekey %s: %w", k, err)
		}
		if plain {
			st.Sealed++
		} else {
			st.Resealed++
		}
		return nil
	}
	return fmt.Errorf("rekey %s: changed concurrently 5 times; run again", k)
}
