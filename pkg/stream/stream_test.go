package stream_test

import (
	"errors"
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"
	"time"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Every field of the wire type survives FromWire and Wire: a field added to proto.StreamDef and
// not to Stream (or not converted) fails here.
func TestWireRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for range 200 {
		v, ok := quick.Value(reflect.TypeFor[proto.StreamDef](), rng)
		if !ok {
			t.Fatal("quick.Value failed")
		}
		d := v.Interface().(proto.StreamDef)
		d.V = proto.Version
		// Fields FromWire gives defaults when empty, and the units it converts, as stored.
		d.Type, d.Method, d.Format, d.Status = "t"+d.Type, "m"+d.Method, "f"+d.Format, "s"+d.Status
		d.MaxInFlight = 1 + rng.Intn(256)
		d.TimeoutMs = 1 + rng.Intn(60_000)
		d.DLQRetentionMs = rng.Int63n(1 << 40)
		for _, ns := range []*int64{&d.CreatedAt, &d.UpdatedAt, &d.PrevSecretUntil} {
			*ns = 1 + rng.Int63n(1<<62)
		}
		d.Extensions = nil // quick cannot make map[string]any values
		if got := stream.FromWire(&d).Wire(); !reflect.DeepEqual(got, &d) {
			t.Fatalf("round trip changed the definition:\n got %+v\nwant %+v", got, &d)
		}
	}
	if n, m := reflect.TypeFor[proto.StreamDef]().NumField()-1, reflect.TypeFor[stream.Stream]().NumField(); n != m {
		t.Errorf("proto.StreamDef has %d fields besides V, Stream %d", n, m)
	}
}

// A definition stored with fields left empty reads with the defaults.
func TestFromWireDefaults(t *testing.T) {
	s := stream.FromWire(&proto.StreamDef{ID: "s", Partition: "p"})
	if s.Type != proto.TypePointStream || s.Method != "POST" || s.Format != proto.FormatPoint || s.Status != stream.Active ||
		s.MaxInFlight != stream.DefaultMaxInFlight || s.Timeout != 10*time.Second || !s.CreatedAt.IsZero() {
		t.Errorf("defaults: %+v", s)
	}
	if s.Slots() != 16 || s.Attempts() != 1 || s.HasAuth() {
		t.Errorf("rules: slots %d, attempts %d, auth %v", s.Slots(), s.Attempts(), s.HasAuth())
	}
	s.Ordered = true
	if s.Slots() != 1 {
		t.Errorf("an ordered stream has %d slots", s.Slots())
	}
}

func TestStatusRules(t *testing.T) {
	for _, c := range []struct {
		s                                  stream.Status
		delivers, holds, matches, settable bool
	}{
		{stream.Active, true, false, true, true},
		{stream.Paused, false, true, true, true},
		{stream.Disabled, false, false, false, true},
		{stream.DisabledDueToErrors, false, true, true, false},
	} {
		if c.s.Delivers() != c.delivers || c.s.Holds() != c.holds || c.s.Matches() != c.matches || c.s.Settable() != c.settable {
			t.Errorf("%s: delivers %v holds %v matches %v settable %v", c.s, c.s.Delivers(), c.s.Holds(), c.s.Matches(), c.s.Settable())
		}
	}
}

// A Stream handed to proto.Marshal by mistake is refused, not stored as an empty definition.
func TestStreamIsNoWireType(t *testing.T) {
	if _, err := proto.Marshal(&stream.Stream{ID: "s"}); !errors.Is(err, stream.ErrNotWire) {
		t.Fatalf("proto.Marshal of a Stream: %v", err)
	}
	data, err := (&stream.Stream{ID: "s", Partition: "p"}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := stream.Decode(data); err != nil || s.ID != "s" || s.Partition != "p" {
		t.Fatalf("Decode(Encode) = %+v, %v", s, err)
	}
}
