package api

import (
	"net/http"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// FuzzStreamCreate feeds arbitrary bodies to the stream-create validator (JSON decoding, then
// streamBody.apply outside --dev). It never panics; a rejection is a 400 with a message; an
// accepted definition holds only what the API promises: an https URL on a public host, 1 to
// MaxPointIDs unique valid point ids, options within their ranges. Seed corpus under
// testdata/fuzz/FuzzStreamCreate.
func FuzzStreamCreate(f *testing.F) {
	f.Fuzz(func(t *testing.T, body []byte) {
		var b streamBody
		if err := web.Unmarshal(body, &b); err != nil {
			return
		}
		def := &stream.Stream{Type: proto.TypePointStream, MaxInFlight: 16, Timeout: 10 * time.Second, FailureLimit: 10}
		if werr := b.apply(def, true, urlPolicy{}); werr != nil {
			if werr.Status != http.StatusBadRequest || werr.Message == "" {
				t.Fatalf("rejection %+v is not a 400 with a message", werr)
			}
			return
		}
		checkAccepted(t, def)
	})
}

// checkAccepted fails the test unless an accepted definition holds only what the API promises.
func checkAccepted(t *testing.T, def *stream.Stream) {
	t.Helper()
	checkAcceptedURL(t, def.WebhookURL)
	if len(def.PointIDs) == 0 || len(def.PointIDs) > MaxPointIDs {
		t.Fatalf("accepted %d point ids", len(def.PointIDs))
	}
	seen := map[string]bool{}
	for _, id := range def.PointIDs {
		if !proto.ValidToken(id) || seen[id] {
			t.Fatalf("accepted point id %q", id)
		}
		seen[id] = true
	}
	// failureLimit 0 is "none" (README), so only a negative one is out of range.
	if def.MaxInFlight < 1 || def.MaxInFlight > maxInFlightCap || def.Timeout < minTimeoutMs*time.Millisecond || def.Timeout > maxTimeoutMs*time.Millisecond ||
		def.MaxRetry < 0 || def.FailureLimit < 0 {
		t.Fatalf("accepted out-of-range options %+v", def)
	}
}

// checkAcceptedURL fails the test unless an accepted webhook URL is https on a public host.
func checkAcceptedURL(t *testing.T, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || u.Hostname() == "" {
		t.Fatalf("accepted webhookUrl %q", raw)
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && (ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() || ip.IsLinkLocalUnicast()) {
		t.Fatalf("accepted internal address %q", raw)
	}
}
