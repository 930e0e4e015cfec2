package ingest

import (
	"errors"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func TestParseEvents(t *testing.T) {
	mp, _ := msgpack.Marshal(map[string]any{"type": "DEVICE_ADDED", "subject": "dev-1", "data": map[string]any{"id": 1}})
	valid := []struct {
		name, body, defaultType string
		want                    []DeviceEvent
	}{
		{"seed 004 asset_updated", `{"type":"asset_updated","subject":"67237","occurredAt":"2021-03-03T19:20:30+01:00","data":{"asset":{"id":67237}}}`, "",
			[]DeviceEvent{{Type: "asset_updated", Subject: "67237", HasTime: true, Data: []byte(`{"asset":{"id":67237}}`)}}},
		{"array, unix ms", `[{"type":"DEVICE_ADDED","subject":"d1","occurredAt":1707244800000},{"type":"event_created","subject":"11"}]`, "",
			[]DeviceEvent{{Type: "DEVICE_ADDED", Subject: "d1", HasTime: true}, {Type: "event_created", Subject: "11"}}},
		{"type from subject", `{"subject":"e67c9edc","data":{"event_type":"202"}}`, "reset_cause",
			[]DeviceEvent{{Type: "reset_cause", Subject: "e67c9edc", Data: []byte(`{"event_type":"202"}`)}}},
		{"msgpack", string(mp), "",
			[]DeviceEvent{{Type: "DEVICE_ADDED", Subject: "dev-1", Data: []byte(`{"id":1}`)}}},
	}
	for _, tt := range valid {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseEvents([]byte(tt.body), FormatDetect, tt.defaultType)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d events, want %d", len(got), len(tt.want))
			}
			for i := range got {
				g, w := got[i], tt.want[i]
				if g.Type != w.Type || g.Subject != w.Subject || g.HasTime != w.HasTime || string(g.Data) != string(w.Data) {
					t.Fatalf("event %d = %+v, want %+v", i, g, w)
				}
			}
		})
	}
	invalid := []struct{ name, body, defaultType, want string }{
		{"empty", ``, "", "empty payload"},
		{"no type", `{"subject":"s"}`, "", "type is required"},
		{"dot in type", `{"type":"a.b","subject":"s"}`, "", "single subject token"},
		{"wildcard type", `{"type":"a*","subject":"s"}`, "", "single subject token"},
		{"space in subject", `{"type":"a","subject":"s 1"}`, "", "single subject token"},
		{"gt in subject", `{"type":"a","subject":">"}`, "", "single subject token"},
		{"reserved point", `{"type":"point","subject":"s"}`, "", "reserved"},
		{"no subject", `{"type":"a"}`, "", "subject is required"},
		{"type differs from subject", `{"type":"b","subject":"s"}`, "a", "differs"},
		{"bad time", `{"type":"a","subject":"s","occurredAt":"yesterday"}`, "", "occurredAt"},
		{"empty array", `[]`, "", "empty array"},
		{"second bad", `[{"type":"a","subject":"s"},{"type":"a"}]`, "", "event 1"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEvents([]byte(tt.body), FormatDetect, tt.defaultType)
			if !errors.Is(err, ErrInvalidEvent) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want ErrInvalidEvent mentioning %q", err, tt.want)
			}
		})
	}
}

func TestMovedBeyond(t *testing.T) {
	tests := []struct {
		prev, value string
		want        bool
	}{
		{"", "20", true},
		{"20", "20.0099", false},
		{"20", "20.0101", true},
		{"20", "19.9899", true},
		{"20", "20.01", false},
		{`"20"`, `"20.0101"`, true},
		{`"on"`, `"on"`, false},
		{`"on"`, `"off"`, true},
	}
	for _, tt := range tests {
		var prev []byte
		if tt.prev != "" {
			prev = []byte(tt.prev)
		}
		if got := movedBeyond(prev, []byte(tt.value), lastChangedDeadband); got != tt.want {
			t.Errorf("movedBeyond(%s, %s) = %v, want %v", tt.prev, tt.value, got, tt.want)
		}
	}
}
