package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/web"
)

// Numbers: seeds 001 and 004 name webhooks by positive int32 ids where hookstream has stream
// ids. A stream gets its number from the ids bucket the first time another platform's API shows
// it (created there, or listed there after the native API made it), 1, 2, 3 … per partition,
// and keeps it until it is deleted; a number is never given twice.

func numberKey(partition string, n int32) string {
	return partition + ".n." + strconv.FormatInt(int64(n), 10)
}
func streamNumberKey(partition, id string) string { return partition + ".s." + id }
func nextNumberKey(partition string) string       { return partition + ".next" }

// number returns the stream's number, giving it the next free one when it has none.
func (s *Service) number(ctx context.Context, partition, id string) (int32, error) {
	if e, err := s.ids.Get(ctx, streamNumberKey(partition, id)); err == nil {
		return parseNumber(e.Value())
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, fmt.Errorf("read stream number: %w", err)
	}
	n, err := s.nextNumber(ctx, partition)
	if err != nil {
		return 0, err
	}
	if _, err := s.ids.Put(ctx, numberKey(partition, n), []byte(id)); err != nil {
		return 0, fmt.Errorf("store stream number: %w", err)
	}
	if _, err := s.ids.Create(ctx, streamNumberKey(partition, id), []byte(strconv.FormatInt(int64(n), 10))); err != nil {
		// Numbered concurrently by another request: keep that number, drop ours.
		_ = s.ids.Purge(context.WithoutCancel(ctx), numberKey(partition, n))
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("store stream number: %w", err)
		}
		e, gerr := s.ids.Get(ctx, streamNumberKey(partition, id))
		if gerr != nil {
			return 0, fmt.Errorf("read stream number: %w", gerr)
		}
		return parseNumber(e.Value())
	}
	return n, nil
}

// nextNumber takes the partition's next number (compare-and-set on its counter).
func (s *Service) nextNumber(ctx context.Context, partition string) (int32, error) {
	key := nextNumberKey(partition)
	for range 10 {
		var last int32
		var rev uint64
		e, err := s.ids.Get(ctx, key)
		switch {
		case err == nil:
			if last, err = parseNumber(e.Value()); err != nil {
				return 0, err
			}
			rev = e.Revision()
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return 0, fmt.Errorf("read number counter: %w", err)
		}
		if last == math.MaxInt32 {
			return 0, &web.Error{Status: http.StatusConflict, Code: "numbers_exhausted", Message: "this partition has used every int32 webhook id"}
		}
		next := []byte(strconv.FormatInt(int64(last)+1, 10))
		if rev == 0 {
			_, err = s.ids.Create(ctx, key, next)
		} else {
			_, err = s.ids.Update(ctx, key, next, rev)
		}
		if err == nil {
			return last + 1, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return 0, fmt.Errorf("store number counter: %w", err)
		}
	}
	return 0, &web.Error{Status: http.StatusConflict, Code: "conflict", Message: "webhook ids given concurrently; retry"}
}

// streamOf returns the stream id numbered n; an unknown number is a 404 naming it.
func (s *Service) streamOf(ctx context.Context, partition string, n int64) (string, error) {
	if n <= 0 || n > math.MaxInt32 {
		return "", web.NotFound(fmt.Sprintf("webhook %d", n))
	}
	e, err := s.ids.Get(ctx, numberKey(partition, int32(n)))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", web.NotFound(fmt.Sprintf("webhook %d", n))
	}
	if err != nil {
		return "", fmt.Errorf("read stream number: %w", err)
	}
	return string(e.Value()), nil
}

// forgetNumber drops a deleted stream's number (idempotent; the number is not given again).
func (s *Service) forgetNumber(ctx context.Context, partition, id string) {
	e, err := s.ids.Get(ctx, streamNumberKey(partition, id))
	if err != nil {
		return
	}
	if n, err := parseNumber(e.Value()); err == nil {
		_ = s.ids.Purge(ctx, numberKey(partition, n))
	}
	_ = s.ids.Purge(ctx, streamNumberKey(partition, id))
}

func parseNumber(b []byte) (int32, error) {
	n, err := strconv.ParseInt(string(b), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("stored webhook number %q: %w", b, err)
	}
	return int32(n), nil
}
