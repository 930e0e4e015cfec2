package telemetry

import "testing"

// NATS header names are case-sensitive, but publishers write traceparent in any case.
func TestHeaderCarrierAnyCase(t *testing.T) {
	for _, name := range []string{"traceparent", "Traceparent", "TRACEPARENT"} {
		h := HeaderCarrier{name: {"v"}, "Nats-Msg-Id": {"x"}}
		if got := h.Get("traceparent"); got != "v" {
			t.Errorf("Get(traceparent) with %q = %q", name, got)
		}
		if got := h.Get("tracestate"); got != "" {
			t.Errorf("Get(tracestate) with only %q = %q", name, got)
		}
	}
}
