package signer

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"hookstream/pkg/identity"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func ns(t *testing.T, s string) int64 {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UnixNano()
}

func msNs(ms int64) int64 { return time.UnixMilli(ms).UnixNano() }

func i64(n int64) *int64 { return &n }

// goldenCase renders events and compares the body byte for byte with testdata/golden/NAME.json,
// and as JSON with the seed's own example in testdata/seed/SEED.json after the documented
// substitutions (fix), so the golden file cannot drift from the seed.
type goldenCase struct {
	name, seed string
	def        *stream.Stream
	events     []proto.Event
	fix        func(seed map[string]any) // the seed fields hookstream fills differently, by design
	seedArray  bool
}

func runGolden(t *testing.T, tc goldenCase) *Payload {
	t.Helper()
	p, err := Render(tc.def, "delivery-1", tc.events)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	golden := filepath.Join("testdata", "golden", tc.name+".json")
	if *update {
		if err := os.WriteFile(golden, append(p.Body, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Body, bytes.TrimSuffix(want, []byte("\n"))) {
		t.Errorf("body differs from %s\n got: %s\nwant: %s", golden, p.Body, want)
	}
	if tc.seed == "" {
		return p
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "seed", tc.seed+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var seed, got any
	if err := json.Unmarshal(raw, &seed); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(p.Body, &got); err != nil {
		t.Fatalf("body is not JSON: %v", err)
	}
	if tc.fix != nil {
		if m, ok := seed.(map[string]any); ok {
			tc.fix(m)
		}
	}
	if !reflect.DeepEqual(seed, got) {
		s, _ := json.Marshal(seed)
		t.Errorf("body is not the seed's example field for field\n got: %s\nseed: %s", p.Body, s)
	}
	return p
}

func TestGoldenPoint(t *testing.T) {
	runGolden(t, goldenCase{name: "point", seed: "point", def: &stream.Stream{Format: proto.FormatPoint},
		events: []proto.Event{{Type: "point", Subject: "6360e1ef-18b5-457c-a488-47t4f4b60e29", Changed: true,
			CreatedAt: ns(t, "2025-12-03T06:09:21.915Z"), LastUpdatedAt: ns(t, "2025-12-03T06:09:28.077Z"), Value: []byte(`"22"`)}}})
}

func TestGoldenTimeseries(t *testing.T) {
	runGolden(t, goldenCase{name: "timeseries", seed: "timeseries", def: &stream.Stream{Format: proto.FormatTimeseries},
		events: []proto.Event{{Type: "point", Subject: "PNTJDa8aQ5LAwfHPn5iGQemwW", Time: ns(t, "2023-10-16T17:44:42.83269Z"), Value: []byte(`100`)}}})
}

func ceDef(format string) *stream.Stream {
	return &stream.Stream{Format: format, Extensions: map[string]any{
		"myint": int64(1234), "mystring": "hello world", "orgid": "ORGFEdBM93rarcXPD3hjMAbcD", "traceid": "7459950403562181516",
		"span": "cl6h4b21k0qc73e2hlsg", "mybool": true, "spanparent": "cl6h4aolhvcc73f79cq0", "correlationid": "cl6h4aolhvcc73f79cpg",
	}}
}

func ceEvent(t *testing.T) proto.Event {
	return proto.Event{ID: "bfc542e4-bf7e-4917-b4ee-f6b144e81aaa", Type: "point", Subject: "PNTDvmfigSEemZWpdCWatABcd",
		Source: "//com.mapped/org/ORGFEdBM93rarcXPD3hjMHxnD/timeseries/point/PNTDvmfigSEemZWpdCWatABcd",
		Time:   ns(t, "2023-11-09T17:23:54.111069Z"), IngestedAt: ns(t, "2023-11-09T17:08:59.818217392Z"), Value: []byte(`0`)}
}

func TestGoldenCloudEvents(t *testing.T) {
	p := runGolden(t, goldenCase{name: "cloudevents", seed: "cloudevents", def: ceDef(proto.FormatCloudEvents),
		events: []proto.Event{ceEvent(t)},
		fix:    func(m map[string]any) { m["type"] = identity.DefaultPointType }})
	if p.Headers["Content-Type"] != "application/cloudevents+json" {
		t.Errorf("Content-Type = %q", p.Headers["Content-Type"])
	}
}

func TestGoldenCloudEventsBinary(t *testing.T) {
	def := ceDef(proto.FormatCloudEventsBinary)
	def.Extensions["mystring"] = "hello world % \"ü\""
	p := runGolden(t, goldenCase{name: "cloudevents-binary", def: def, events: []proto.Event{ceEvent(t)}})
	want := map[string]string{
		"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "bfc542e4-bf7e-4917-b4ee-f6b144e81aaa",
		"ce-source": "//com.mapped/org/ORGFEdBM93rarcXPD3hjMHxnD/timeseries/point/PNTDvmfigSEemZWpdCWatABcd",
		"ce-type":   identity.DefaultPointType, "ce-time": "2023-11-09T17:08:59.818217392Z", "ce-myint": "1234", "ce-mybool": "true",
		"ce-mystring": "hello%20world%20%25%20%22%C3%BC%22", "ce-orgid": "ORGFEdBM93rarcXPD3hjMAbcD", "ce-traceid": "7459950403562181516",
		"ce-span": "cl6h4b21k0qc73e2hlsg", "ce-spanparent": "cl6h4aolhvcc73f79cq0", "ce-correlationid": "cl6h4aolhvcc73f79cpg",
	}
	if !reflect.DeepEqual(p.Headers, want) {
		t.Errorf("headers\n got %v\nwant %v", p.Headers, want)
	}
}

func TestGoldenMeasurements(t *testing.T) {
	group := "3f813212-63aa-49b5-aa71-c95acbf14ad6"
	container := "e3ebb57a-d1b3-49ef-a5f3-f84307822b78"
	def := &stream.Stream{Format: proto.FormatMeasurements, PointMeta: map[string]proto.PointMeta{
		"outlet":  {Datatype: i64(2185), Label: "WTW-ZehnderE300-OutletTemperature", Group: group, Container: container, Device: "1d551a5c-36e7-400c-a6ed-490bcc3815fa"},
		"consume": {Datatype: i64(10000), Label: "Consumption 1", Unit: "kWh", Group: group, Container: container, Device: "1d551a5c-36e7-400c-a6ed-490bcc3815fa"},
		"meter":   {Datatype: i64(10007), Label: "Electrical Meter", Unit: "kWh", Group: group, Container: container, Device: "6667e971-af9d-4027-8b49-2c5ca2e725b9"},
	}}
	runGolden(t, goldenCase{name: "measurements", seed: "measurements", def: def, events: []proto.Event{
		{ID: "379c101e-0e40-4f55-8f09-d5f94d1ab2ec", Type: "point", Subject: "outlet", Time: msNs(1655381927834), LastChangedAt: msNs(1655381927834), Value: []byte(`280`)},
		{ID: "543afeaa-8258-4129-8840-951e301b00eb", Type: "point", Subject: "consume", Time: msNs(1655382346354), LastChangedAt: msNs(1655358046192), Value: []byte(`165.91600036621094`)},
		{ID: "10c0eb14-18fe-48aa-a1ab-c90a9348c45a", Type: "point", Subject: "meter", Time: msNs(1655382351594), LastChangedAt: msNs(1655382351594), Value: []byte(`5.359999656677246`)},
	}})
	def = &stream.Stream{Format: proto.FormatMeasurements, PointMeta: map[string]proto.PointMeta{
		"temp": {Datatype: i64(5000), Label: "Temperature", Unit: "°C", Icon: "fas fa-thermometer-three-quarters",
			Group: "3cf26834-777e-4c46-ae0c-352de3509871", Container: "caff51ce-d6e4-4329-abde-8b2a0dbc733d", Device: "16d7706e-b429-4778-8f8c-cfd6e2050649"},
	}}
	runGolden(t, goldenCase{name: "measurements-one", seed: "measurements-one", def: def, events: []proto.Event{
		{ID: "46e6afab-f9d5-446d-bc75-c31b47e49be4", Type: "point", Subject: "temp", Time: msNs(1634730271645), LastChangedAt: msNs(1634730271645), Value: []byte(`29.5489501953125`)},
	}})
}

func TestGoldenMeasurementsCompact(t *testing.T) {
	def := &stream.Stream{Format: proto.FormatMeasurementsCompact, PointMeta: map[string]proto.PointMeta{
		"volt": {Datatype: i64(2100), Label: "Voltage", Group: "b85dda65-1a26-49ac-a049-5e37e3dd3cf7", Device: "fac7670d-a64d-4071-a4c0-a01e23d4c8e3"},
	}}
	runGolden(t, goldenCase{name: "measurements-compact", seed: "measurements-compact", def: def, events: []proto.Event{
		{ID: "d75b196e-da34-4886-a2b3-9aa7ac7b6928", Type: "point", Subject: "volt", Time: msNs(1692781843650), Value: []byte(`230.5`)},
	}})
}

var (
	asset    = []byte(`{"id":4079332,"href":"https://api.netilion.endress.com/v1/assets/4079332"}`)
	unit8594 = []byte(`{"id":8594,"href":"https://api.netilion.endress.com/v1/units/8594"}`)
)

func fixOccurredAt(m map[string]any) { m["occurred_at"] = m["occurred_at"].(string) + "Z" }

func TestGoldenEnvelope(t *testing.T) {
	def := &stream.Stream{Format: proto.FormatEnvelope, PointMeta: map[string]proto.PointMeta{
		"lvl": {Key: "level", Asset: asset, UnitRef: unit8594},
	}}
	runGolden(t, goldenCase{name: "envelope", seed: "envelope", def: def, fix: fixOccurredAt, events: []proto.Event{
		{Type: "point", Subject: "lvl", Time: ns(t, "2020-03-04T08:38:25Z"), IngestedAt: ns(t, "2020-03-04T09:15:00Z"), Value: []byte(`"96.45"`)},
	}})
}

func TestGoldenEnvelopeGrouped(t *testing.T) {
	def := &stream.Stream{Format: proto.FormatEnvelope, Grouped: true, PointMeta: map[string]proto.PointMeta{
		"vf": {Key: "volumeflow", Asset: asset, UnitRef: unit8594},
		"pr": {Key: "pressure", Asset: asset, UnitRef: []byte(`{"id":222,"href":"https://api.netilion.endress.com/v1/units/222"}`)},
	}}
	at, in := ns(t, "2020-03-04T08:38:25Z"), ns(t, "2020-03-04T09:15:00Z")
	runGolden(t, goldenCase{name: "envelope-grouped", seed: "envelope-grouped", def: def, fix: fixOccurredAt, events: []proto.Event{
		{Type: "point", Subject: "vf", Time: at, IngestedAt: in, Value: []byte(`"88.99"`)},
		{Type: "point", Subject: "pr", Time: at, IngestedAt: in, Value: []byte(`"88.99"`)},
		{Type: "point", Subject: "vf", Time: at, IngestedAt: in - 1, Value: []byte(`"90.00"`)},
		{Type: "point", Subject: "pr", Time: at, IngestedAt: in, Value: []byte(`"90.00"`)},
	}})
}

func TestGoldenTemplate(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "seed", "template.json"))
	if err != nil {
		t.Fatal(err)
	}
	def := &stream.Stream{ID: "s1", Format: proto.FormatTemplate, BodyTemplate: string(bytes.TrimSpace(raw)),
		WebhookURL: "https://example.com/webhook/{device_id}?point={point_id}",
		PointMeta:  map[string]proto.PointMeta{"p/1": {Device: `dev "7"`}}}
	p := runGolden(t, goldenCase{name: "template", def: def, events: []proto.Event{{Type: "point", Subject: "p/1", Value: []byte(`1`)}}})
	if want := "https://example.com/webhook/dev%20%227%22?point=p%2F1"; p.URL != want {
		t.Errorf("URL = %s, want %s", p.URL, want)
	}
}

// Device events: envelope content and CloudEvents data are the event's payload.
func TestGoldenDeviceEvents(t *testing.T) {
	ev := proto.Event{ID: "e1", Partition: "p1", Type: "DEVICE_ADDED", Subject: "dev-7", Time: ns(t, "2024-01-02T03:04:05Z"),
		IngestedAt: ns(t, "2024-01-02T03:04:06Z"), Data: []byte(`{"device":{"id":"dev-7","name":"<Boiler>"}}`)}
	runGolden(t, goldenCase{name: "envelope-device-event", def: &stream.Stream{Format: proto.FormatEnvelope}, events: []proto.Event{ev}})
	runGolden(t, goldenCase{name: "cloudevents-device-event", def: &stream.Stream{Format: proto.FormatCloudEvents}, events: []proto.Event{ev}})
	runGolden(t, goldenCase{name: "measurements-device-event", def: &stream.Stream{Format: proto.FormatMeasurements}, events: []proto.Event{ev}})
	for _, f := range []string{proto.FormatPoint, proto.FormatTimeseries, proto.FormatMeasurementsCompact} {
		if _, err := Render(&stream.Stream{Format: f}, "d", []proto.Event{ev}); err == nil {
			t.Errorf("format %s rendered a device event", f)
		}
	}
}

// A partition with seed 002's identity: the seed's type, and the extension attributes filled
// from the identity and the delivery's trace, overriding a stream's of the same name; a
// partition without one renders exactly as before (TestGoldenCloudEvents).
func TestCloudEventIdentity(t *testing.T) {
	def := &stream.Stream{Format: proto.FormatCloudEvents, Extensions: map[string]any{"myint": int64(1234), "orgid": "mine"}}
	ce := &CEContext{
		Identity: &identity.Identity{OrgID: "ORGFEdBM93rarcXPD3hjMAbcD", PointTypeName: "com.mapped.timeseries.point.record.v1"},
		TraceID:  "4bf92f3577b34da6a3ce929d0e0e4736", Span: "00f067aa0ba902b7", SpanParent: "00f067aa0ba902b6",
	}
	ev := ceEvent(t)
	p, err := RenderCE(def, "delivery-1", []proto.Event{ev}, ce)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(p.Body, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"type": "com.mapped.timeseries.point.record.v1", "source": ev.Source, "myint": float64(1234),
		"orgid": "ORGFEdBM93rarcXPD3hjMAbcD", "traceid": ce.TraceID, "span": ce.Span, "spanparent": ce.SpanParent,
		"correlationid": "delivery-1",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	ce.TraceID, ce.Span, ce.SpanParent = "", "", ""
	p, err = RenderCE(def, "delivery-1", []proto.Event{ev}, ce)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"traceid"`, `"span"`, `"spanparent"`} {
		if bytes.Contains(p.Body, []byte(k)) {
			t.Errorf("untraced delivery has %s: %s", k, p.Body)
		}
	}
}
