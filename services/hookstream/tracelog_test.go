package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

// TestTraceLogHandler: a record logged inside a span carries its trace and span ids, also
// through With and WithGroup; one logged outside carries none.
func TestTraceLogHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(traceLogHandler(slog.NewTextHandler(&buf, nil))).With("stage", "x").WithGroup("g")
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x0a, 0xf7, 1}, SpanID: trace.SpanID{0xb7, 2}, TraceFlags: trace.FlagsSampled,
	})
	log.InfoContext(trace.ContextWithSpanContext(context.Background(), sc), "inside")
	log.InfoContext(context.Background(), "outside")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), buf.String())
	}
	if want := "trace_id=" + sc.TraceID().String(); !strings.Contains(lines[0], want) || !strings.Contains(lines[0], "span_id="+sc.SpanID().String()) || !strings.Contains(lines[0], "stage=x") {
		t.Errorf("inside a span: %q, want %s, its span id and stage=x", lines[0], want)
	}
	if strings.Contains(lines[1], "trace_id") || strings.Contains(lines[1], "span_id") {
		t.Errorf("outside a span: %q, want no ids", lines[1])
	}
}
