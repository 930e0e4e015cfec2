package proto_test

import (
	"bytes"
	"math/rand"
	"reflect"
	"strings"
	"testing"
	"testing/quick"

	"github.com/vmihailenco/msgpack/v5"

	"hookstream/proto"
)

// Types with the same fields and tags as the hand-written ones but without their methods, so
// msgpack encodes and decodes them by reflection: what every earlier build wrote and read. Their
// nested types (Job's events, a delivery's history) are the hand-written ones, each pinned by its
// own case.
type (
	eventR         proto.Event
	jobR           proto.Job
	jobGroupR      proto.JobGroup
	deliveryGroupR proto.DeliveryGroup
	groupItemR     proto.GroupItem
	attemptR       proto.Attempt
	deliveryR      proto.Delivery
)

// codecCase is one hand-written type and its reflection twin.
type codecCase struct {
	name    string
	typ     reflect.Type // the hand-written type
	twin    reflect.Type // its reflection twin
	maxMaps int          // maps are cut to this many entries: msgpack writes a map's entries in random order
}

var codecCases = []codecCase{
	{"event", reflect.TypeFor[proto.Event](), reflect.TypeFor[eventR](), 0},
	{"job", reflect.TypeFor[proto.Job](), reflect.TypeFor[jobR](), 0},
	{"job group", reflect.TypeFor[proto.JobGroup](), reflect.TypeFor[jobGroupR](), 0},
	{"delivery group", reflect.TypeFor[proto.DeliveryGroup](), reflect.TypeFor[deliveryGroupR](), 0},
	{"group item", reflect.TypeFor[proto.GroupItem](), reflect.TypeFor[groupItemR](), 0},
	{"attempt", reflect.TypeFor[proto.Attempt](), reflect.TypeFor[attemptR](), 0},
	{"delivery", reflect.TypeFor[proto.Delivery](), reflect.TypeFor[deliveryR](), 1},
}

// randomValue is a random value of typ in which about a third of the fields (at any depth) are
// zero, so nil, empty and omitted fields all occur.
func randomValue(t *testing.T, typ reflect.Type, rng *rand.Rand, maxMaps int) reflect.Value {
	t.Helper()
	v, ok := quick.Value(typ, rng)
	if !ok {
		t.Fatalf("quick.Value(%v) failed", typ)
	}
	p := reflect.New(typ)
	p.Elem().Set(v)
	thin(p.Elem(), rng, maxMaps)
	return p.Elem()
}

func thin(v reflect.Value, rng *rand.Rand, maxMaps int) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Field(i)
			if rng.Intn(3) == 0 {
				f.SetZero()
				continue
			}
			thin(f, rng, maxMaps)
		}
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Struct {
			if v.Len() > 3 {
				v.Set(v.Slice(0, 3)) // nested slices of 50 make cases slow, not better
			}
			for i := range v.Len() {
				thin(v.Index(i), rng, maxMaps)
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys()[min(v.Len(), maxMaps):] {
			v.SetMapIndex(k, reflect.Value{})
		}
	}
}

// TestCodecsMatchReflection pins the hand-written codecs to msgpack's reflection: the same bytes
// out for random values, and the same value back from reflection's bytes, so messages written
// before them (and by any other build) read the same.
func TestCodecsMatchReflection(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	for _, tc := range codecCases {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := reflect.New(tc.typ).Interface().(msgpack.CustomDecoder); !ok {
				t.Fatalf("%v has no hand-written decoder", tc.typ)
			}
			if _, ok := reflect.New(tc.twin).Interface().(msgpack.CustomDecoder); ok {
				t.Fatalf("%v is not decoded by reflection", tc.twin)
			}
			for i := range 300 {
				v := randomValue(t, tc.typ, rng, tc.maxMaps)
				if ver := v.FieldByName("V"); ver.IsValid() {
					ver.SetUint(uint64(rng.Intn(proto.Version + 1))) // proto.Unmarshal refuses newer ones
				}
				twin := v.Convert(tc.twin)

				got, err := proto.Marshal(v.Addr().Interface())
				if err != nil {
					t.Fatalf("Marshal: %v", err)
				}
				want, err := msgpack.Marshal(twin.Interface())
				if err != nil {
					t.Fatalf("reflection Marshal: %v", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("value %d: hand-written encoding differs from reflection's\n value %#v\n got  %x\n want %x", i, v.Interface(), got, want)
				}
				// msgpack.Marshal of the value itself (not a pointer) takes the same codec.
				if b, err := msgpack.Marshal(v.Interface()); err != nil || !bytes.Equal(b, want) {
					t.Fatalf("msgpack.Marshal(value) = %x, %v; want %x", b, err, want)
				}

				// Decoding reflection's bytes gives what reflection decodes.
				fromTwin := reflect.New(tc.twin)
				if err := msgpack.Unmarshal(want, fromTwin.Interface()); err != nil {
					t.Fatalf("reflection Unmarshal: %v", err)
				}
				out := reflect.New(tc.typ)
				if err := msgpack.Unmarshal(want, out.Interface()); err != nil {
					t.Fatalf("Unmarshal: %v", err)
				}
				if !reflect.DeepEqual(out.Elem().Interface(), fromTwin.Elem().Convert(tc.typ).Interface()) {
					t.Fatalf("value %d: decoded\n %#v\nreflection decoded\n %#v", i, out.Elem().Interface(), fromTwin.Elem().Interface())
				}
				// proto.Unmarshal's way in (one chunk of the input's size) decodes the same.
				out = reflect.New(tc.typ)
				if err := proto.Unmarshal(want, out.Interface()); err != nil {
					t.Fatalf("proto.Unmarshal: %v", err)
				}
				if !reflect.DeepEqual(out.Elem().Interface(), fromTwin.Elem().Convert(tc.typ).Interface()) {
					t.Fatalf("value %d: proto.Unmarshal decoded\n %#v\nreflection decoded\n %#v", i, out.Elem().Interface(), fromTwin.Elem().Interface())
				}
			}
		})
	}
}

// TestCodecDecodeTolerant: fields in another order, unknown fields (short, long, of any type), nil
// values and other integer widths decode as reflection decoded them, and a decoder overwrites
// what the value held before.
func TestCodecDecodeTolerant(t *testing.T) {
	in := map[string]any{
		"rf":                       uint8(7), // a uint64 field in one byte
		"unknown":                  map[string]any{"x": []any{1, "two", nil}},
		strings.Repeat("long", 10): "a field name longer than any of ours",
		"hist":                     []map[string]any{{"lat": 1, "st": int64(503), "at": int16(-3)}},
		"b":                        nil,
		"h":                        map[string]string{"A": "1", "B": "2"},
		"eids":                     []string{"e1"},
		"id":                       "d1",
		"v":                        1,
		"sa":                       nil,
		"fr":                       true,
	}
	b, err := msgpack.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	got := proto.Delivery{URL: "left over", Body: []byte("left over")}
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatalf("Unmarshal: %v", err)
	}
	want := proto.Delivery{V: 1, ID: "d1", EventIDs: []string{"e1"}, Headers: map[string]string{"A": "1", "B": "2"},
		Fresh: true, History: []proto.Attempt{{At: -3, Status: 503, LatencyMs: 1}}, ResentFrom: 7}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decoded\n %#v\nwant\n %#v", got, want)
	}
	var twin deliveryR
	if err := msgpack.Unmarshal(b, &twin); err != nil || !reflect.DeepEqual(proto.Delivery(twin), want) {
		t.Errorf("reflection decoded %#v, %v", twin, err)
	}

	// nil as a whole decodes to the zero value.
	var ev proto.Event
	if err := proto.Unmarshal([]byte{0xc0}, &ev); err != nil || !reflect.DeepEqual(ev, proto.Event{}) {
		t.Errorf("nil decoded to %#v, %v", ev, err)
	}
}

// TestCodecDecodeErrors: truncated or mistyped input is an error naming the type (and field),
// never a panic or a huge allocation.
func TestCodecDecodeErrors(t *testing.T) {
	good, err := proto.Marshal(&proto.Job{V: 1, ID: "j", Events: []proto.Event{{V: 1, ID: "e", Value: []byte("1")}}})
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(good) {
		var j proto.Job
		if err := proto.Unmarshal(good[:n], &j); err == nil {
			t.Errorf("Unmarshal of %d of %d bytes: no error", n, len(good))
		}
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"not a map", []byte{0x93, 1, 2, 3}, "decoding job"},
		{"string for an int", mustMarshal(t, map[string]any{"v": "one"}), `job field "v"`},
		{"field name of 2^32-1 bytes", []byte{0x81, 0xdb, 0xff, 0xff, 0xff, 0xff}, "a field name of 4294967295 bytes"},
		{"array of 2^32-1 events", append(mustMarshal(t, map[string]any{"ev": nil})[:4], 0xdd, 0xff, 0xff, 0xff, 0xff), `job field "ev"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var j proto.Job
			err := proto.Unmarshal(tc.in, &j)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Unmarshal(%x) = %v, want an error containing %q", tc.in, err, tc.want)
			}
		})
	}
}

func mustMarshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := msgpack.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkUnmarshalDelivery compares the hand-written decoder with reflection's.
func BenchmarkUnmarshalDelivery(b *testing.B) {
	data, err := proto.Marshal(benchDelivery())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("hand-written", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out proto.Delivery
			if err := proto.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("reflection", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var out deliveryR
			if err := msgpack.Unmarshal(data, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkMarshalDeliveryReflection is BenchmarkMarshalDelivery by reflection.
func BenchmarkMarshalDeliveryReflection(b *testing.B) {
	d := deliveryR(*benchDelivery())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := proto.Marshal(&d); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDecodedPartsIndependent: a decoded value's byte slices share memory with its strings, so
// appending to one must not write over the others.
func TestDecodedPartsIndependent(t *testing.T) {
	in := proto.Event{V: proto.Version, ID: "e1", Partition: "p", Value: []byte("22"), PrevValue: []byte("21"),
		Source: "//hookstream/partitions/p/points/pt", Data: []byte(`{"a":1}`)}
	b, err := proto.Marshal(&in)
	if err != nil {
		t.Fatal(err)
	}
	for _, decode := range []func([]byte, any) error{proto.Unmarshal, msgpack.Unmarshal} {
		var ev proto.Event
		if err := decode(b, &ev); err != nil {
			t.Fatal(err)
		}
		want := in
		_ = append(ev.Value, "xxxxxxxx"...)
		_ = append(ev.PrevValue, "xxxxxxxx"...)
		_ = append(ev.Data, "xxxxxxxx"...)
		if !reflect.DeepEqual(ev, want) {
			t.Errorf("after appending to its byte slices the event is\n %#v\nwant\n %#v", ev, want)
		}
	}
}
