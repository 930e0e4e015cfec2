package ingest

import (
	"bytes"
	"compress/gzip"
	"errors"
	"net/http"
	"testing"

	"github.com/nats-io/nats.go"

	"hookstream/pkg/web"
	"hookstream/proto"
)

// FuzzEdgesAgree feeds one body, with a Content-Type (and gzip-compressed or not), to the HTTP
// edge's acceptance of readings and of events (acceptValues, acceptEvents: what a request must
// meet to be answered 202) and to the stage's acceptance (acceptInput) of what the edge would
// store, and of the same body published over NATS with that Content-Type header. They must
// agree: the stage takes everything HTTP acknowledged, with the same readings or events, and a
// reading payload one edge refuses the other refuses too. Its seed corpus (under
// testdata/fuzz/FuzzEdgesAgree) holds the inputs that once disagreed; `make fuzz` explores.
func FuzzEdgesAgree(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte, contentType string, gz bool) {
		if len(body) > MaxPayload {
			return // the edge refuses it before acceptance (413), the stage by its size check
		}
		raw, encoding := body, ""
		if gz {
			raw, encoding = gzipped(t, body), "gzip"
		}
		agreeOnReadings(t, body, raw, contentType, encoding)
		agreeOnEvents(t, body, raw, contentType, encoding)
		agreeOnBatch(t, body, raw, contentType, encoding)
		agreeOnEntities(t, body, raw, contentType, encoding)
	})
}

// agreeOnEntities checks the entities edge against the stage, as agreeOnEvents does for events:
// every group HTTP would store is accepted by the stage with the same documents.
func agreeOnEntities(t *testing.T, body, raw []byte, contentType, encoding string) {
	groups, n, httpErr := acceptEntities(contentType, encoding, raw)
	if httpErr != nil {
		checkAnswer(t, httpErr)
		return
	}
	f, _ := FormatOf(contentType)
	want, err := ParseEntities(body, f, "")
	if err != nil || len(want) != n {
		t.Fatalf("HTTP accepted %d entities of %q, which parse as %d: %v", n, clipBytes(body), len(want), err)
	}
	byType := map[string][]EntityDoc{}
	for _, e := range want {
		byType[e.Type] = append(byType[e.Type], e)
	}
	total := 0
	for _, g := range groups {
		in, err := acceptInput(proto.IngestEntitySubject("p1", g.typ), header(mediaJSON), g.data)
		if err != nil {
			t.Fatalf("HTTP accepted %q as %q (202), the stage refuses its %s group %q: %v", clipBytes(body), contentType, g.typ, clipBytes(g.data), err)
		}
		for i, e := range in.entities {
			if w := byType[g.typ][i]; e.ID != w.ID || e.Type != w.Type || !bytes.Equal(e.Doc, w.Doc) {
				t.Fatalf("group %s entity %d: HTTP read %+v, the stage %+v", g.typ, i, w, e)
			}
		}
		total += len(in.entities)
	}
	if total != n {
		t.Fatalf("HTTP accepted %d entities, its groups hold %d", n, total)
	}
}

// agreeOnBatch checks the batch edge against the stage, as agreeOnReadings does for readings.
func agreeOnBatch(t *testing.T, body, raw []byte, contentType, encoding string) {
	subject := proto.IngestBatchSubject("p1")
	stored, f, n, httpErr := acceptBatch(contentType, encoding, raw)
	_, natsErr := acceptInput(subject, header(contentType), body)
	if (httpErr == nil) != (natsErr == nil) {
		t.Fatalf("batch: HTTP says %v, the stage (over NATS) says %v, for %q as %q", httpErr, natsErr, clipBytes(body), contentType)
	}
	if httpErr != nil {
		checkAnswer(t, httpErr)
		return
	}
	in, err := acceptInput(subject, header(f.MediaType()), stored)
	if err != nil {
		t.Fatalf("batch: HTTP accepted %q as %q (202), the stage refuses what it stored: %v", clipBytes(body), contentType, err)
	}
	want, _ := ParseBatch(body, f)
	if len(in.batch) != n || len(want) != n {
		t.Fatalf("batch: HTTP accepted %d items, the stage %d", n, len(in.batch))
	}
	for i, it := range in.batch {
		if w := want[i]; it.PointID != w.PointID || !bytes.Equal(it.Reading.Value, w.Reading.Value) || !it.Reading.Time.Equal(w.Reading.Time) {
			t.Fatalf("batch item %d: HTTP read %+v, the stage %+v", i, w, it)
		}
	}
}

// agreeOnReadings checks the readings edge against the stage.
func agreeOnReadings(t *testing.T, body, raw []byte, contentType, encoding string) {
	subject := proto.IngestPointSubject("p1", "pt1")
	stored, f, n, httpErr := acceptValues(contentType, encoding, raw)
	// The same payload published over NATS, with the same Content-Type header.
	_, natsErr := acceptInput(subject, header(contentType), body)
	if (httpErr == nil) != (natsErr == nil) {
		t.Fatalf("HTTP says %v, the stage (over NATS) says %v, for %q as %q", httpErr, natsErr, clipBytes(body), contentType)
	}
	if httpErr != nil {
		checkAnswer(t, httpErr)
		return
	}
	in, err := acceptInput(subject, header(f.MediaType()), stored)
	if err != nil {
		t.Fatalf("HTTP accepted %q as %q (202), the stage refuses what it stored: %v", clipBytes(body), contentType, err)
	}
	want, _ := ParseReadings(body, f)
	if len(in.readings) != n || len(want) != n {
		t.Fatalf("HTTP accepted %d readings, the stage %d", n, len(in.readings))
	}
	for i, r := range in.readings {
		if w := want[i]; !bytes.Equal(r.Value, w.Value) || !r.Time.Equal(w.Time) || r.HasTime != w.HasTime || r.Quality != w.Quality || r.HasQualit != w.HasQualit {
			t.Fatalf("reading %d: HTTP read %+v, the stage %+v", i, w, r)
		}
	}
}

// agreeOnEvents checks the events edge against the stage: each type's group that HTTP would
// store is accepted by the stage on its subject, holding the request's events of that type.
func agreeOnEvents(t *testing.T, body, raw []byte, contentType, encoding string) {
	groups, n, httpErr := acceptEvents(contentType, encoding, raw)
	if httpErr != nil {
		checkAnswer(t, httpErr)
		return
	}
	f, _ := FormatOf(contentType)
	want, err := ParseEvents(body, f, "")
	if err != nil || len(want) != n {
		t.Fatalf("HTTP accepted %d events of %q, which parse as %d: %v", n, clipBytes(body), len(want), err)
	}
	byType := map[string][]DeviceEvent{}
	for _, e := range want {
		byType[e.Type] = append(byType[e.Type], e)
	}
	total := 0
	for _, g := range groups {
		in, err := acceptInput(proto.IngestEventSubject("p1", g.typ), header(mediaJSON), g.data)
		if err != nil {
			t.Fatalf("HTTP accepted %q as %q (202), the stage refuses its %s group %q: %v", clipBytes(body), contentType, g.typ, clipBytes(g.data), err)
		}
		if len(in.events) != len(byType[g.typ]) {
			t.Fatalf("group %s: the stage read %d events, HTTP %d", g.typ, len(in.events), len(byType[g.typ]))
		}
		for i, e := range in.events {
			w := byType[g.typ][i]
			if e.Type != w.Type || e.Subject != w.Subject || !bytes.Equal(e.Data, w.Data) || e.HasTime != w.HasTime || !e.Time.Equal(w.Time) {
				t.Fatalf("group %s event %d: HTTP read %+v, the stage %+v", g.typ, i, w, e)
			}
		}
		total += len(in.events)
	}
	if total != n {
		t.Fatalf("HTTP accepted %d events, its groups hold %d", n, total)
	}
}

// checkAnswer fails unless err is the 4xx answer the edge's contract names.
func checkAnswer(t *testing.T, err error) {
	t.Helper()
	var e *web.Error
	if !errors.As(err, &e) || e.Message == "" {
		t.Fatalf("refusal %v is not a web error with a message", err)
	}
	switch e.Status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType:
	default:
		t.Fatalf("refusal %v has status %d", err, e.Status)
	}
}

func header(contentType string) nats.Header {
	h := nats.Header{}
	if contentType != "" {
		h.Set("Content-Type", contentType)
	}
	return h
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func clipBytes(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
