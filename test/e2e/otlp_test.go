package e2e

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace collector on 127.0.0.1: it decodes every export request
// (protobuf, gzip when Content-Encoding says so) and keeps the spans and the decoded bytes.
type otlpReceiver struct {
	*httptest.Server
	mu    sync.Mutex
	raw   bytes.Buffer // every request body, decompressed
	spans []otlpSpan
	bad   []string // requests that could not be decoded
}

// otlpSpan is one exported span with its resource, flattened for assertions.
type otlpSpan struct {
	Name     string
	Attrs    map[string]string
	Resource map[string]string
	Status   *tracepb.Status
	Events   []*tracepb.Span_Event
	proto    *tracepb.Span
	scope    *commonpb.InstrumentationScope
}

func newOTLPReceiver(t testing.TB) *otlpReceiver {
	t.Helper()
	o := &otlpReceiver{}
	o.Server = httptest.NewServer(http.HandlerFunc(o.serve))
	t.Cleanup(o.Close)
	return o
}

// env returns the environment that makes hookstream export its spans here, quickly.
func (o *otlpReceiver) env() []string {
	return []string{
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=" + o.URL + "/v1/traces",
		"OTEL_EXPORTER_OTLP_COMPRESSION=gzip",
		"OTEL_BSP_SCHEDULE_DELAY=100", // ms; the SDK's default is 5 s
	}
}

func (o *otlpReceiver) serve(w http.ResponseWriter, r *http.Request) {
	fail := func(format string, args ...any) {
		o.mu.Lock()
		o.bad = append(o.bad, fmt.Sprintf(format, args...))
		o.mu.Unlock()
		http.Error(w, fmt.Sprintf(format, args...), http.StatusBadRequest)
	}
	if r.Method != http.MethodPost || r.URL.Path != "/v1/traces" {
		fail("%s %s", r.Method, r.URL.Path)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
		fail("content type %q", ct)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			fail("gzip: %v", err)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		fail("read: %v", err)
		return
	}
	var req coltrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		fail("decode: %v", err)
		return
	}
	o.mu.Lock()
	o.raw.Write(b)
	for _, rs := range req.ResourceSpans {
		res := attrMap(rs.GetResource().GetAttributes())
		for _, ss := range rs.ScopeSpans {
			for _, sp := range ss.Spans {
				o.spans = append(o.spans, otlpSpan{Name: sp.Name, Attrs: attrMap(sp.Attributes), Resource: res,
					Status: sp.Status, Events: sp.Events, proto: sp, scope: ss.Scope})
			}
		}
	}
	o.mu.Unlock()
	out, _ := proto.Marshal(&coltrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

// received returns the spans so far, the decoded bytes and the requests that failed to decode.
func (o *otlpReceiver) received() ([]otlpSpan, []byte, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]otlpSpan(nil), o.spans...), bytes.Clone(o.raw.Bytes()), append([]string(nil), o.bad...)
}

// text renders every string a span carries — name, ids, attributes, events and their
// attributes, links, status message, resource and scope — one per line, for a secret scan that
// does not depend on how protobuf lays the bytes out.
func (s otlpSpan) text() string {
	var b strings.Builder
	line := func(k, v string) { fmt.Fprintf(&b, "%s=%s\n", k, v) }
	line("name", s.Name)
	line("trace_id", hex.EncodeToString(s.proto.TraceId))
	line("trace_state", s.proto.TraceState)
	writeAttrs(&b, "attr", s.proto.Attributes)
	for _, e := range s.proto.Events {
		line("event", e.Name)
		writeAttrs(&b, "event."+e.Name, e.Attributes)
	}
	for _, l := range s.proto.Links {
		line("link.trace_state", l.TraceState)
		writeAttrs(&b, "link", l.Attributes)
	}
	line("status", s.proto.GetStatus().GetMessage())
	for k, v := range s.Resource {
		line("resource."+k, v)
	}
	line("scope", s.scope.GetName()+" "+s.scope.GetVersion())
	writeAttrs(&b, "scope", s.scope.GetAttributes())
	return b.String()
}

func writeAttrs(b *strings.Builder, prefix string, kvs []*commonpb.KeyValue) {
	for _, kv := range kvs {
		fmt.Fprintf(b, "%s.%s=%s\n", prefix, kv.Key, anyString(kv.Value))
	}
}

func attrMap(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		m[kv.Key] = anyString(kv.Value)
	}
	return m
}

// anyString renders an attribute value; arrays and maps element by element, bytes as is.
func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BytesValue:
		return string(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		parts := make([]string, 0, len(x.ArrayValue.Values))
		for _, e := range x.ArrayValue.Values {
			parts = append(parts, anyString(e))
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *commonpb.AnyValue_KvlistValue:
		parts := make([]string, 0, len(x.KvlistValue.Values))
		for _, kv := range x.KvlistValue.Values {
			parts = append(parts, kv.Key+":"+anyString(kv.Value))
		}
		sort.Strings(parts)
		return "{" + strings.Join(parts, ",") + "}"
	}
	return ""
}
