package api

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

func TestURLPolicy(t *testing.T) {
	strict := urlPolicy{}
	httpOK := urlPolicy{AllowHTTP: true}
	dev := urlPolicy{AllowHTTP: true, AllowPrivate: true}
	tests := []struct {
		name   string
		policy urlPolicy
		url    string
		ok     bool
	}{
		{"https public host", strict, "https://hooks.example.com/in?x=1", true},
		{"https public IP", strict, "https://93.184.216.34/hook", true},
		{"https public IPv6", strict, "https://[2001:4860:4860::8888]/hook", true},
		{"https with port", strict, "https://hooks.example.com:8443/in", true},
		{"http rejected without AllowHTTP", strict, "http://hooks.example.com/in", false},
		{"http with AllowHTTP", httpOK, "http://hooks.example.com/in", true},
		{"ftp", dev, "ftp://hooks.example.com/in", false},
		{"javascript", dev, "javascript:alert(1)", false},
		{"relative", dev, "/hook", false},
		{"no scheme", dev, "hooks.example.com/in", false},
		{"no host", dev, "https:///in", false},
		{"empty", dev, "", false},
		{"too long", dev, "https://hooks.example.com/" + strings.Repeat("a", 2048), false},
		{"unparsable", dev, "https://exa mple.com/%zz", false},
		{"userinfo", strict, "https://user:pass@hooks.example.com/", false},
		{"userinfo without password", dev, "https://user@hooks.example.com/", false},
		{"fragment", strict, "https://hooks.example.com/in#frag", false},
		{"fragment in dev", dev, "http://127.0.0.1:9000/in#frag", false},
		{"loopback v4", strict, "https://127.0.0.1/hook", false},
		{"loopback v4 other", strict, "https://127.8.9.10:8443/hook", false},
		{"private 10/8", strict, "https://10.0.0.1/hook", false},
		{"private 172.16/12", strict, "https://172.16.5.4/hook", false},
		{"private 192.168/16", strict, "https://192.168.1.1/hook", false},
		{"loopback v6", strict, "https://[::1]/hook", false},
		{"loopback v6 with port", strict, "https://[::1]:8443/hook", false},
		{"v4-mapped loopback", strict, "https://[::ffff:127.0.0.1]/hook", false},
		{"unique local v6", strict, "https://[fd00::1]/hook", false},
		{"link-local metadata", strict, "https://169.254.169.254/latest/meta-data", false},
		{"link-local v6", strict, "https://[fe80::1]/hook", false},
		{"unspecified", strict, "https://0.0.0.0/hook", false},
		{"multicast", strict, "https://224.0.0.1/hook", false},
		{"localhost", strict, "https://localhost/hook", false},
		{"localhost upper-case", strict, "https://LOCALHOST:8443/hook", false},
		{"subdomain of localhost", strict, "https://api.localhost/hook", false},
		{"localhost-like public name", strict, "https://localhost.example.com/hook", true},
		{"loopback allowed in dev", dev, "http://127.0.0.1:9000/test/webhook", true},
		{"localhost allowed in dev", dev, "http://localhost:9000/test/webhook", true},
		{"metadata allowed in dev", dev, "https://169.254.169.254/", true},
		{"private allowed in dev", dev, "https://[::1]/hook", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.policy.check(tc.url)
			if tc.ok {
				if err != nil {
					t.Fatalf("check(%q) = %v", tc.url, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("check(%q) accepted", tc.url)
			}
			if err.Status != 400 || err.Field != "webhookUrl" {
				t.Errorf("error = %+v, want a 400 naming webhookUrl", err)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func ids(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("pt-%04d", i)
	}
	return out
}

func TestCheckPointIDs(t *testing.T) {
	tests := []struct {
		name       string
		ids        []string
		allowEmpty bool
		field      string // "" for success
	}{
		{"one", []string{"a"}, false, ""},
		{"uuid and punctuation", []string{"6360e1ef-18b5-457c-a488-47f4f4b60e29", "a-b_c:d", "x@y~z+1=2%3"}, false, ""},
		{"exactly MaxPointIDs", ids(MaxPointIDs), false, ""},
		{"empty allowed", []string{}, true, ""},
		{"empty", []string{}, false, "pointIds"},
		{"nil", nil, false, "pointIds"},
		{"over MaxPointIDs", ids(MaxPointIDs + 1), false, "pointIds"},
		{"over MaxPointIDs when empty is allowed", ids(MaxPointIDs + 1), true, "pointIds"},
		{"invalid second", []string{"a", "b.c"}, false, "pointIds[1]"},
		{"invalid first", []string{"*", "a"}, false, "pointIds[0]"},
		{"empty id", []string{"a", "b", ""}, false, "pointIds[2]"},
		{"space", []string{"a b"}, false, "pointIds[0]"},
		{"unicode", []string{"a", "pünkt"}, false, "pointIds[1]"},
		{"too long", []string{strings.Repeat("a", 129)}, false, "pointIds[0]"},
		{"duplicate", []string{"a", "b", "a"}, false, "pointIds[2]"},
		{"duplicate adjacent", []string{"a", "a"}, false, "pointIds[1]"},
		{"duplicates differ by case are distinct", []string{"a", "A"}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := checkPointIDs(tc.ids, tc.allowEmpty)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("checkPointIDs = %v", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tc.ids) {
					t.Errorf("checkPointIDs = %v, want %v", got, tc.ids)
				}
				if len(tc.ids) > 0 {
					tc.ids[0] = "mutated"
					if got[0] == "mutated" {
						t.Error("result shares the caller's slice")
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("checkPointIDs accepted %d ids", len(tc.ids))
			}
			if err.Status != 400 || err.Field != tc.field {
				t.Errorf("error = %+v, want a 400 naming %q", err, tc.field)
			}
		})
	}
}

// baseDef is a stream as createStream initialises it before applying the body.
func baseDef() *stream.Stream {
	return &stream.Stream{
		ID: "s1", Partition: "p1", Type: proto.TypePointStream,
		Format: proto.FormatPoint, Method: "POST", Signature: proto.SignatureHubSHA256,
		MaxRetry: 15, MaxInFlight: 16, Timeout: 10 * time.Second,
		PropagateTrace: true, Status: stream.Active,
	}
}

func validCreate() streamBody {
	return streamBody{WebhookURL: ptr("https://hooks.example.com/in"), PointIDs: &[]string{"a", "b"}}
}

func TestStreamBodyApply(t *testing.T) {
	tests := []struct {
		name   string
		create bool
		typ    string // stream type; point-stream when empty
		body   func(*streamBody)
		field  string // "" for success
		check  func(*stream.Stream) error
	}{
		{"minimal create", true, "", func(*streamBody) {}, "", func(d *stream.Stream) error {
			if d.WebhookURL != "https://hooks.example.com/in" || fmt.Sprint(d.PointIDs) != "[a b]" {
				return fmt.Errorf("url %q points %v", d.WebhookURL, d.PointIDs)
			}
			if d.MaxRetry != 15 || d.Status != proto.StatusActive || d.Method != "POST" {
				return fmt.Errorf("defaults changed: %+v", d)
			}
			return nil
		}},
		{"create without webhookUrl", true, "", func(b *streamBody) { b.WebhookURL = nil }, "webhookUrl", nil},
		{"create with empty webhookUrl", true, "", func(b *streamBody) { b.WebhookURL = ptr("") }, "webhookUrl", nil},
		{"create with private webhookUrl", true, "", func(b *streamBody) { b.WebhookURL = ptr("https://10.0.0.1/") }, "webhookUrl", nil},
		{"create without pointIds", true, "", func(b *streamBody) { b.PointIDs = nil }, "pointIds", nil},
		{"create event-stream without pointIds", true, proto.TypeEventStream, func(b *streamBody) { b.PointIDs = nil; b.EventTypes = &[]string{"asset_*"} }, "", nil},
		{"create event-stream without eventTypes or filter", true, proto.TypeEventStream, func(b *streamBody) { b.PointIDs = nil }, "eventTypes", nil},
		{"patch without anything", false, "", func(b *streamBody) { *b = streamBody{} }, "", func(d *stream.Stream) error {
			if d.WebhookURL != "" || d.PointIDs != nil {
				return fmt.Errorf("empty patch changed url %q or points %v", d.WebhookURL, d.PointIDs)
			}
			return nil
		}},
		{"empty pointIds", true, "", func(b *streamBody) { b.PointIDs = &[]string{} }, "pointIds", nil},
		{"invalid point id", true, "", func(b *streamBody) { b.PointIDs = &[]string{"a", "b c"} }, "pointIds[1]", nil},
		{"duplicate point id", true, "", func(b *streamBody) { b.PointIDs = &[]string{"a", "b", "b"} }, "pointIds[2]", nil},
		{"too many point ids", true, "", func(b *streamBody) { b.PointIDs = ptr(ids(MaxPointIDs + 1)) }, "pointIds", nil},

		{"secret", true, "", func(b *streamBody) { b.WebhookSecret = ptr("webhook-secret-key") }, "", nil},
		{"empty secret", true, "", func(b *streamBody) { b.WebhookSecret = ptr("") }, "webhookSecret", nil},
		{"secret of 512", true, "", func(b *streamBody) { b.WebhookSecret = ptr(strings.Repeat("s", 512)) }, "", nil},
		{"secret of 512 multibyte runes", true, "", func(b *streamBody) { b.WebhookSecret = ptr(strings.Repeat("ß", 512)) }, "", nil},
		{"secret of 513", true, "", func(b *streamBody) { b.WebhookSecret = ptr(strings.Repeat("s", 513)) }, "webhookSecret", nil},

		{"name", true, "", func(b *streamBody) { b.Name = ptr("Boiler room") }, "", func(d *stream.Stream) error {
			if d.Name != "Boiler room" {
				return fmt.Errorf("name %q", d.Name)
			}
			return nil
		}},
		{"name of 200", true, "", func(b *streamBody) { b.Name = ptr(strings.Repeat("n", 200)) }, "", nil},
		{"name of 201", true, "", func(b *streamBody) { b.Name = ptr(strings.Repeat("n", 201)) }, "name", nil},
		{"name invalid UTF-8", true, "", func(b *streamBody) { b.Name = ptr("a\xffb") }, "name", nil},

		{"method lower-case is normalised", true, "", func(b *streamBody) { b.Method = ptr("put") }, "", func(d *stream.Stream) error {
			if d.Method != "PUT" {
				return fmt.Errorf("method %q, want PUT", d.Method)
			}
			return nil
		}},
		{"method PATCH", true, "", func(b *streamBody) { b.Method = ptr("PATCH") }, "", nil},
		{"method GET", true, "", func(b *streamBody) { b.Method = ptr("GET") }, "", nil},
		{"method TRACE", true, "", func(b *streamBody) { b.Method = ptr("TRACE") }, "method", nil},
		{"method empty", true, "", func(b *streamBody) { b.Method = ptr("") }, "method", nil},

		{"format point", true, "", func(b *streamBody) { b.Format = ptr("point") }, "", nil},
		{"format unknown", true, "", func(b *streamBody) { b.Format = ptr("xml") }, "format", nil},
		{"signature hub-sha256", true, "", func(b *streamBody) { b.Signature = ptr("hub-sha256") }, "", nil},
		{"signature unknown", true, "", func(b *streamBody) { b.Signature = ptr("hub-md5") }, "signature", nil},

		{"maxRetry -1", true, "", func(b *streamBody) { b.MaxRetry = ptr(-1) }, "maxRetry", nil},
		{"maxRetry 0", true, "", func(b *streamBody) { b.MaxRetry = ptr(0) }, "", func(d *stream.Stream) error {
			if d.MaxRetry != 0 {
				return fmt.Errorf("maxRetry %d, want 0", d.MaxRetry)
			}
			return nil
		}},
		{"maxRetry 15", true, "", func(b *streamBody) { b.MaxRetry = ptr(15) }, "", nil},
		{"maxRetry 16", true, "", func(b *streamBody) { b.MaxRetry = ptr(16) }, "maxRetry", nil},

		{"failureLimit 0 (none)", true, "", func(b *streamBody) { b.FailureLimit = ptr(0) }, "", nil},
		{"failureLimit -1", true, "", func(b *streamBody) { b.FailureLimit = ptr(-1) }, "failureLimit", nil},
		{"failureLimit 1", true, "", func(b *streamBody) { b.FailureLimit = ptr(1) }, "", nil},
		{"failureLimit 10000", true, "", func(b *streamBody) { b.FailureLimit = ptr(10_000) }, "", nil},
		{"failureLimit 10001", true, "", func(b *streamBody) { b.FailureLimit = ptr(10_001) }, "failureLimit", nil},

		{"maxInFlight 0", true, "", func(b *streamBody) { b.MaxInFlight = ptr(0) }, "maxInFlight", nil},
		{"maxInFlight 1", true, "", func(b *streamBody) { b.MaxInFlight = ptr(1) }, "", nil},
		{"maxInFlight 256", true, "", func(b *streamBody) { b.MaxInFlight = ptr(256) }, "", func(d *stream.Stream) error {
			if d.MaxInFlight != 256 {
				return fmt.Errorf("maxInFlight %d", d.MaxInFlight)
			}
			return nil
		}},
		{"maxInFlight 257", true, "", func(b *streamBody) { b.MaxInFlight = ptr(257) }, "maxInFlight", nil},

		{"timeoutMs 99", true, "", func(b *streamBody) { b.TimeoutMs = ptr(99) }, "timeoutMs", nil},
		{"timeoutMs 100", true, "", func(b *streamBody) { b.TimeoutMs = ptr(100) }, "", nil},
		{"timeoutMs 60000", true, "", func(b *streamBody) { b.TimeoutMs = ptr(60_000) }, "", nil},
		{"timeoutMs 60001", true, "", func(b *streamBody) { b.TimeoutMs = ptr(60_001) }, "timeoutMs", nil},

		{"ordered and propagateTrace", true, "", func(b *streamBody) { b.Ordered, b.PropagateTrace = ptr(true), ptr(false) }, "", func(d *stream.Stream) error {
			if !d.Ordered || d.PropagateTrace {
				return fmt.Errorf("ordered %v propagateTrace %v", d.Ordered, d.PropagateTrace)
			}
			return nil
		}},

		{"status disabled", false, "", func(b *streamBody) { *b = streamBody{Status: ptr("disabled")} }, "", func(d *stream.Stream) error {
			if d.Status != proto.StatusDisabled {
				return fmt.Errorf("status %q", d.Status)
			}
			return nil
		}},
		{"status active", false, "", func(b *streamBody) { *b = streamBody{Status: ptr("active")} }, "", nil},
		{"status disabled_due_to_errors", false, "", func(b *streamBody) { *b = streamBody{Status: ptr(proto.StatusDisabledDueToErrors)} }, "status", nil},
		{"status empty", false, "", func(b *streamBody) { *b = streamBody{Status: ptr("")} }, "status", nil},
		{"status upper-case", false, "", func(b *streamBody) { *b = streamBody{Status: ptr("ACTIVE")} }, "status", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := validCreate()
			tc.body(&b)
			d := baseDef()
			if !tc.create {
				d.WebhookURL, d.PointIDs = "", nil
			}
			if tc.typ != "" {
				d.Type = tc.typ
			}
			err := b.apply(d, tc.create, urlPolicy{})
			if tc.field == "" {
				if err != nil {
					t.Fatalf("apply = %v", err)
				}
				if tc.check != nil {
					if err := tc.check(d); err != nil {
						t.Error(err)
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("apply accepted the body; def %+v", d)
			}
			if err.Status != 400 || err.Field != tc.field {
				t.Errorf("error = %+v, want a 400 naming %q", err, tc.field)
			}
		})
	}
}
