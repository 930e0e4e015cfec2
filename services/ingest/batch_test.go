package ingest_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"hookstream/services/ingest"
)

// seed003Batch is seed 003's "multiple measurements" example with pointId on the last item.
const seed003Batch = `[
  {"timestamp": 1655381927834, "timestamp_seconds": 1655381927.834, "timestamp_changed": 1655381927834,
   "datatype": 2185, "value": 280, "relations": {"id_group": "3f813212"}, "label": "WTW-ZehnderE300-OutletTemperature", "unit": null, "icon": null},
  {"timestamp_seconds": 1655382346.354, "datatype": 10000, "value": 165.91600036621094, "label": "Consumption_1", "unit": "kWh"},
  {"timestamp": "2022-06-16T12:25:51.594Z", "value": 5.36, "label": "Electrical Meter", "pointId": "meter-1", "unit": "kWh"}
]`

func TestParseBatch(t *testing.T) {
	got, err := ingest.ParseBatch([]byte(seed003Batch), ingest.FormatDetect)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		point, value string
		at           time.Time
	}{
		{"WTW-ZehnderE300-OutletTemperature", "280", time.UnixMilli(1655381927834)},
		{"Consumption_1", "165.91600036621094", time.UnixMilli(1655382346354)},
		{"meter-1", "5.36", time.UnixMilli(1655382351594)},
	}
	if len(got) != len(want) {
		t.Fatalf("%d items, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.PointID != w.point || string(g.Reading.Value) != w.value || !g.Reading.HasTime || !g.Reading.Time.Equal(w.at) {
			t.Errorf("item %d = %s %s %v, want %s %s %v", i, g.PointID, g.Reading.Value, g.Reading.Time, w.point, w.value, w.at)
		}
	}
	one, err := ingest.ParseBatch(mp(t, map[string]any{"id": "pt", "value": 1}), ingest.FormatMsgpack)
	if err != nil || len(one) != 1 || one[0].PointID != "pt" || one[0].Reading.HasTime {
		t.Errorf("one msgpack item = %+v, %v", one, err)
	}
}

func TestParseBatchRefuses(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"no point", `[{"value": 1, "label": "a"}, {"value": 2}]`, "item 1: invalid reading: no point: give pointId, id or label"},
		{"label not an id", `[{"value": 1, "label": "Consumption 1"}]`, `item 0: invalid reading: point id "Consumption 1"`},
		{"no value", `[{"label": "a", "value": 1}, {"label": "b"}, {"label": "c", "value": 3}]`, "item 1: invalid reading: value is required"},
		{"bad seconds", `[{"label": "a", "value": 1, "timestamp_seconds": "soon"}]`, "item 0: invalid reading: timestamp_seconds must be Unix seconds"},
		{"bad ms", `[{"label": "a", "value": 1, "timestamp": -5}]`, "item 0: invalid reading: timestamp must be RFC 3339 or Unix milliseconds"},
		{"empty", `[]`, "empty array"},
		{"not objects", `[1]`, "each measurement must be a JSON object"},
		{"too many", "[" + strings.Repeat(`{"label":"a","value":1},`, ingest.MaxReadings) + `{"label":"a","value":1}]`, "exceed the limit of 10000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ingest.ParseBatch([]byte(tc.body), ingest.FormatJSON)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ingest.ErrInvalidReading) {
				t.Errorf("err %v does not wrap ErrInvalidReading", err)
			}
		})
	}
}
