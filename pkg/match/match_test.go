package match_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/match"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

func reading(point, value, prev string) *proto.Event {
	ev := &proto.Event{
		V: proto.Version, ID: "ev-" + point, Partition: "p1", Type: proto.EventTypePoint, Subject: point,
		Source: "//hookstream/partitions/p1/points/" + point,
		Time:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(),
		Value:  []byte(value), Quality: 0, Changed: prev != value,
	}
	if prev != "" {
		ev.PrevValue = []byte(prev)
	}
	return ev
}

func event(typ, subject, data string) *proto.Event {
	return &proto.Event{
		V: proto.Version, ID: "ev-" + typ, Partition: "p1", Type: typ, Subject: subject,
		Source: "//hookstream/partitions/p1/events/" + typ + "/" + subject,
		Time:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano(), Data: []byte(data),
	}
}

func mustFilter(t *testing.T, src string) *match.Filter {
	t.Helper()
	f, err := match.CompileFilter(src)
	if err != nil {
		t.Fatalf("CompileFilter(%q): %v", src, err)
	}
	return f
}

func TestFilterKinds(t *testing.T) {
	temp := reading("PNT1", "22.5", "21")
	str := reading("PNT2", `"22"`, `"21"`)
	updated := event("asset_updated", "67237", `{"asset":{"id":67237,"status":{"id":42}},"tags":["a","b"]}`)
	reset := event("reset_cause", "dev-1", `{"event_type":"202","value":"1","from_device":1}`)
	tests := []struct {
		name   string
		filter string
		ev     *proto.Event
		want   bool
	}{
		{"type equality", "event.type == 'asset_updated'", updated, true},
		{"type equality miss", "event.type == 'asset_created'", updated, false},
		{"type in list", "event.type in ['asset_created', 'asset_updated']", updated, true},
		{"type prefix", "event.type.startsWith('asset_')", updated, true},
		{"subject", "event.subject == 'dev-1'", reset, true},
		{"source", "event.source == '//hookstream/partitions/p1/points/PNT1'", temp, true},
		{"source miss", "event.source == '//hookstream/partitions/p1/points/PNT9'", temp, false},
		{"nested data", "event.data.asset.status.id == 42", updated, true},
		{"data int vs double", "event.data.asset.id == 67237", updated, true},
		{"data string", "event.data.event_type == '202' && event.data.from_device == 1", reset, true},
		{"presence", "has(event.data.asset.status)", updated, true},
		{"absence", "!has(event.data.asset.description)", updated, true},
		{"missing key is no match", "event.data.nope == 1", updated, false},
		{"list macro", "event.data.tags.exists(t, t == 'b')", updated, true},
		{"point value numeric", "point.value > 22", temp, true},
		{"point value numeric miss", "point.value > 30", temp, false},
		{"point value string", "point.value == '22'", str, true},
		{"point previous", "point.value - point.previous > 1.0", temp, true},
		{"point changed", "point.changed", temp, true},
		{"point fields on an event", "point.value > 1", updated, false},
		{"seed 002 data on a reading", "event.data.pointId == 'PNT1' && event.data.value >= 22.5", temp, true},
		{"time", "event.time > timestamp('2026-01-01T00:00:00Z')", temp, true},
		{"or", "event.type == 'x' || point.value > 22", temp, true},
		{"jsonpath source", "@.source == '//hookstream/partitions/p1/points/PNT1'", temp, true},
		{"jsonpath or", "@.source == '//hookstream/partitions/p1/points/PNT9' || @.source == '//hookstream/partitions/p1/points/PNT1'", temp, true},
		{"jsonpath and miss", "@.type == 'point' && @.subject == 'PNT9'", temp, false},
		{"jsonpath wrapper", "$[?(@.type == 'asset_updated')]", updated, true},
		{"non-bool dyn result", "event.data.asset", updated, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustFilter(t, tt.filter)
			if got := f.Eval(match.NewInput(tt.ev)); got != tt.want {
				v, err := f.EvalErr(match.NewInput(tt.ev))
				t.Fatalf("Eval(%q) = %v, want %v (value %v, error %v)", tt.filter, got, tt.want, v, err)
			}
		})
	}
}

func TestCompileFilterRejects(t *testing.T) {
	tests := []struct {
		name, filter, want string
	}{
		{"empty", "  ", "empty"},
		{"syntax", "event.type ==", "Syntax error"},
		{"undeclared", "evnt.type == 'x'", "undeclared reference"},
		{"unknown event field", "event.typ == 'x'", `event has no field "typ"`},
		{"unknown point field", "point.val > 1", `point has no field "val"`},
		{"not a condition", "'abc'", "must be a condition"},
		{"int result", "1 + 2", "must be a condition"},
		{"nested macros", "event.data.a.exists(x, event.data.b.exists(y, x == y))", "cannot be nested"},
		{"too long", "event.type == '" + strings.Repeat("x", match.MaxFilterLen) + "'", "longer than"},
		{"jsonpath unterminated", "@.source == '//x", "unterminated"},
		{"jsonpath regex", "@.source =~ /x/", "=~"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := match.CompileFilter(tt.filter)
			if err == nil {
				t.Fatalf("CompileFilter(%q) succeeded", tt.filter)
			}
			if !errors.Is(err, match.ErrInvalidFilter) {
				t.Fatalf("error %v does not wrap ErrInvalidFilter", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

func TestTranslateJSONPath(t *testing.T) {
	valid := []struct{ in, want string }{
		// Seed 002's two examples, verbatim.
		{"@.source == '//com.mapped/org/ORGUmvDdxfFU7UBvJ8Msx2A6J/timeseries/point/PNTJDa8aQ5LAwfHPn5iGQemwW'",
			"event.source == '//com.mapped/org/ORGUmvDdxfFU7UBvJ8Msx2A6J/timeseries/point/PNTJDa8aQ5LAwfHPn5iGQemwW'"},
		{"@.source == '//com.mapped/orgs/ORG8Si1dkzGEYZgxrR4ZYAbCD/liveQueries/LVQAERav1iu5vkp6Qhkmf1234'",
			"event.source == '//com.mapped/orgs/ORG8Si1dkzGEYZgxrR4ZYAbCD/liveQueries/LVQAERav1iu5vkp6Qhkmf1234'"},
		{"@.source == 'a' && @.type == 'b'", "event.source == 'a' && event.type == 'b'"},
		{"(@.source == 'a' || @.source == 'b') && @.data.value > 3", "(event.source == 'a' || event.source == 'b') && event.data.value > 3"},
		{"$[?(@.type == 'x')]", "event.type == 'x'"},
		{"?(@.type == 'x')", "event.type == 'x'"},
		{"$.type == 'x'", "event.type == 'x'"},
		{"@['source'] == 'a'", "event['source'] == 'a'"},
		{`@.source == "it's @ here"`, `event.source == "it's @ here"`},
		{`@.source == 'esc\'aped @'`, `event.source == 'esc\'aped @'`},
	}
	for _, tt := range valid {
		t.Run(tt.in, func(t *testing.T) {
			if !match.IsJSONPath(tt.in) {
				t.Fatalf("IsJSONPath(%q) = false", tt.in)
			}
			got, err := match.TranslateJSONPath(tt.in)
			if err != nil {
				t.Fatalf("TranslateJSONPath: %v", err)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if _, err := match.CompileFilter(tt.in); err != nil {
				t.Fatalf("CompileFilter: %v", err)
			}
		})
	}
	invalid := []string{
		"@.source == 'unterminated",
		"@source == 'a'",
		"@.source =~ /PNT.*/",
		"$[?()]",
		"@.source == ",
		"@.source = 'a'",
		"@.nosuchfield == 'a'",
	}
	for _, in := range invalid {
		t.Run("invalid "+in, func(t *testing.T) {
			if _, err := match.CompileFilter(in); !errors.Is(err, match.ErrInvalidFilter) {
				t.Fatalf("CompileFilter(%q) = %v, want ErrInvalidFilter", in, err)
			}
		})
	}
	if match.IsJSONPath("event.source == '@.source'") {
		t.Fatal("a CEL filter with @ only inside a string is not JSONPath")
	}
}

func TestFilterKeys(t *testing.T) {
	tests := []struct {
		filter string
		keyed  bool
		want   []string
	}{
		{"event.type == 'a'", true, []string{"type=a"}},
		{"'a' == event.type", true, []string{"type=a"}},
		{"event['type'] == 'a'", true, []string{"type=a"}},
		{"event.type in ['b', 'a', 'b']", true, []string{"type=a", "type=b"}},
		{"event.type.startsWith('asset_')", true, []string{"type=asset_*"}},
		{"event.subject == 'dev'", true, []string{"subject=dev"}},
		{"@.source == '//s'", true, []string{"source=//s"}},
		{"event.type == 'a' && event.data.x > 1", true, []string{"type=a"}},
		{"event.data.x > 1 && event.subject == 's'", true, []string{"subject=s"}},
		{"event.type in ['a','b','c'] && event.subject == 's'", true, []string{"subject=s"}},
		{"event.type == 'a' || event.source == '//s'", true, []string{"type=a", "source=//s"}},
		{"event.type == 'a' || event.data.x > 1", false, nil},
		{"point.value > 3", false, nil},
		{"!(event.type == 'a')", false, nil},
		{"event.type != 'a'", false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			keys, keyed := mustFilter(t, tt.filter).Keys()
			if keyed != tt.keyed {
				t.Fatalf("keyed = %v, want %v (keys %v)", keyed, tt.keyed, keys)
			}
			var got []string
			for _, k := range keys {
				got = append(got, k.String())
			}
			slices.Sort(got)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("keys = %v, want %v", got, want)
			}
		})
	}
}

func ptr(f float64) *float64 { return &f }

func TestDeadband(t *testing.T) {
	tests := []struct {
		name        string
		deadband    *float64
		changeOnly  bool
		value, prev string
		want        bool
	}{
		{"below default", nil, true, "20.0099", "20", false},
		{"above default", nil, true, "20.0101", "20", true},
		{"below default downwards", nil, true, "19.9901", "20", false},
		{"above default downwards", nil, true, "19.9899", "20", true},
		{"exactly the band is no change", nil, true, "20.01", "20", false},
		{"explicit band below", ptr(0.5), true, "20.4", "20", false},
		{"explicit band above", ptr(0.5), true, "20.6", "20", true},
		{"zero band, equal", ptr(0), true, "20", "20.0", false},
		{"zero band, any change", ptr(0), true, "20.000001", "20", true},
		{"numeric strings", nil, true, `"20.0101"`, `"20"`, true},
		{"numeric strings below", nil, true, `"20.0099"`, `"20"`, false},
		{"first reading", nil, true, "20", "", true},
		{"non-numeric same", nil, true, `"on"`, `"on"`, false},
		{"non-numeric changed", nil, true, `"off"`, `"on"`, true},
		{"not change-only passes", nil, false, "20", "20", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := &stream.Stream{ID: "s", Partition: "p1", Type: proto.TypePointStream, PointIDs: []string{"P"},
				ChangeOnly: tt.changeOnly, Deadband: tt.deadband}
			s, err := match.Compile(def)
			if err != nil {
				t.Fatal(err)
			}
			ev := reading("P", tt.value, tt.prev)
			if tt.prev != "" && tt.value == `"on"` && tt.prev == `"on"` {
				ev.Changed = false
			}
			_, got := s.Match(match.NewInput(ev))
			if got != tt.want {
				t.Fatalf("match = %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("events other than readings pass", func(t *testing.T) {
		s, _ := match.Compile(&stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"x"}, ChangeOnly: true})
		if _, ok := s.Match(match.NewInput(event("x", "s", `{}`))); !ok {
			t.Fatal("an event was dropped by the dead-band")
		}
	})
}

func TestWildcardsAndSelectors(t *testing.T) {
	def := &stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"asset_*", "DEVICE_ADDED"}, PointIDs: []string{"P1"}}
	s, err := match.Compile(def)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ev   *proto.Event
		want bool
	}{
		{event("asset_updated", "1", `{}`), true},
		{event("asset_", "1", `{}`), true},
		{event("asset", "1", `{}`), false},
		{event("assetupdated", "1", `{}`), false},
		{event("DEVICE_ADDED", "1", `{}`), true},
		{event("DEVICE_ADDED_X", "1", `{}`), false},
		{event("device_added", "1", `{}`), false},
		{reading("P1", "1", ""), true},
		{reading("P2", "1", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.ev.Type+"/"+tt.ev.Subject, func(t *testing.T) {
			if _, got := s.Match(match.NewInput(tt.ev)); got != tt.want {
				t.Fatalf("match = %v, want %v", got, tt.want)
			}
		})
	}
	all, _ := match.Compile(&stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"*"}})
	if _, ok := all.Match(match.NewInput(event("anything", "1", `{}`))); !ok {
		t.Fatal(`"*" must match every event type`)
	}
	empty, _ := match.Compile(&stream.Stream{Type: proto.TypePointStream, Filter: "true"})
	if _, ok := empty.Match(match.NewInput(reading("P1", "1", ""))); ok {
		t.Fatal("a point-stream without point ids matched a reading")
	}
	unkeyed, _ := match.Compile(&stream.Stream{Type: proto.TypeEventStream, Filter: "point.value > 5"})
	if _, all := unkeyed.Keys(); !all {
		t.Fatal("an unkeyed filter stream must be a candidate for every event")
	}
}

func testdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPropertyProjection(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		data  string
		props []string
		want  string // "" means not delivered
	}{
		{"asset_updated status changed", "asset_updated", testdata(t, "asset_updated.json"), []string{"status", "description"},
			`{"asset":{"id":67237,"href":"https://api.netilion.endress.com/v1/assets/67237","status":{"id":42,"href":"https://api.netilion.endress.com/v1/asset/status/42"}}}`},
		{"asset_updated other attribute", "asset_updated", testdata(t, "asset_updated.json"), []string{"description", "serial_number"}, ""},
		{"asset_values_created by key", "asset_values_created", testdata(t, "asset_values_created.json"), []string{"pressure", "level"},
			`{"asset":{"id":4079332,"href":"https://api.netilion.endress.com/v1/assets/4079332"},"values":[{"key":"pressure","group":"measurement","unit":{"id":222,"href":"https://api.netilion.endress.com/v1/units/222"},"data":[{"timestamp":"2020-03-04T08:38:25Z","value":"88.99"},{"timestamp":"2020-03-04T08:38:25Z","value":"90.00"}]}]}`},
		{"asset_specifications_updated", "asset_specifications_updated", testdata(t, "asset_specifications_updated.json"), []string{"my_key1", "my_key2"},
			`{"asset":{"id":23,"href":"https://api.netilion.endress.com/v1/assets/23","specifications":{"my_key2":{"unit":null,"value":"new_value2","updated_at":"2021-05-26T12:38:37.743Z","source_timestamp":null}}}}`},
		{"flat keys", "reset_cause", testdata(t, "bace_reset_cause.json"), []string{"event_type", "value", "id_event"},
			`{"id_event":299663,"event_type":"202","value":"1"}`},
		{"big ids stay exact", "x", `{"id": 12345678901234567890, "a": 1, "b": 2}`, []string{"a"}, `{"id":12345678901234567890,"a":1}`},
		{"event_created by type code", "event_created", `{"event": {"id": 11, "type": {"id": 2, "code": "device_certificate_renewal"}}}`,
			[]string{"heartbeat_verification", "device_certificate_renewal"}, `{"event": {"id": 11, "type": {"id": 2, "code": "device_certificate_renewal"}}}`},
		{"event_created other code", "event_created", `{"event": {"id": 11, "type": {"id": 2, "code": "calibration"}}}`,
			[]string{"heartbeat_verification", "device_certificate_renewal"}, ""},
		{"event_document_created without a code", "event_document_created", `{"event": {"id": 1}, "document": {"id": 2}}`,
			[]string{"heartbeat_verification"}, ""},
		{"no html escaping", "x", `{"a": "<b>&</b>", "b": 1}`, []string{"a"}, `{"a":"<b>&</b>"}`},
		{"no properties for the type", "other", `{"a": 1, "b": 2}`, nil, `{"a": 1, "b": 2}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			def := &stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{tt.typ}}
			if tt.props != nil {
				def.Properties = map[string][]string{tt.typ: tt.props}
			}
			s, err := match.Compile(def)
			if err != nil {
				t.Fatal(err)
			}
			ev := event(tt.typ, "s1", tt.data)
			out, ok := s.Match(match.NewInput(ev))
			if tt.want == "" {
				if ok {
					t.Fatalf("delivered %s, want nothing", out.Data)
				}
				return
			}
			if !ok {
				t.Fatal("not delivered")
			}
			if string(out.Data) != tt.want {
				t.Fatalf("data\n got %s\nwant %s", out.Data, tt.want)
			}
			if tt.props != nil && !json.Valid(out.Data) {
				t.Fatal("projection is not JSON")
			}
			if string(ev.Data) != tt.data {
				t.Fatal("projection modified the input event")
			}
		})
	}
}

func TestDeliveryIDStable(t *testing.T) {
	a, b := match.DeliveryID("e1", "s1"), match.DeliveryID("e1", "s1")
	if a != b || a == match.DeliveryID("e1", "s2") || a == match.DeliveryID("e2", "s1") {
		t.Fatalf("DeliveryID is not a stable function of (event, stream): %s %s", a, b)
	}
}

// Operational notifications reach only the streams that name their types.
func TestNotificationsOnlyWhereAsked(t *testing.T) {
	ev := event(proto.NotificationTypePrefix+"disabled", "s1", `{"event":"disabled"}`)
	for _, tt := range []struct {
		name string
		def  stream.Stream
		want bool
	}{
		{"every type", stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"*"}}, false},
		{"unkeyed filter", stream.Stream{Type: proto.TypeEventStream, Filter: "event.subject == 's1' || true"}, false},
		{"notification types", stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{"hookstream_stream_*"}}, true},
		{"one notification type", stream.Stream{Type: proto.TypeEventStream, EventTypes: []string{proto.NotificationTypePrefix + "disabled"}}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, err := match.Compile(&tt.def)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := s.Match(match.NewInput(ev)); ok != tt.want {
				t.Fatalf("matched %v, want %v", ok, tt.want)
			}
		})
	}
}
