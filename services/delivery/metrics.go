package delivery

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"hookstream/pkg/bus"
	"hookstream/pkg/retry"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// tracer is looked up per use so that a provider installed later (a test's) takes effect.
func tracer() trace.Tracer { return otel.Tracer("hookstream") }

// metrics are delivery's instruments. Labels stay low-cardinality: results and status classes,
// never stream, point or partition ids.
type metrics struct {
	meter          metric.Meter
	deliveries     metric.Int64Counter
	attemptSeconds metric.Float64Histogram
	e2eSeconds     metric.Float64Histogram
	parked         metric.Int64Counter
	// attribute sets of measurements, built once per label combination: an attempt records
	// two, and building a set per call allocated more than the attempt's span.
	attemptAttrs, deliveryAttrs attrSets
}

// newMetrics creates delivery's instruments on meter.
func newMetrics(meter metric.Meter) (*metrics, error) {
	m := &metrics{meter: meter}
	var err error
	if m.deliveries, err = meter.Int64Counter("hookstream_deliveries",
		metric.WithDescription("Delivery attempts by result (delivered, retrying, dead_lettered, disabled, held) and status class (2xx … 5xx, error, none).")); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if m.attemptSeconds, err = meter.Float64Histogram("hookstream_attempt_duration_seconds", metric.WithUnit("s"),
		metric.WithDescription("Duration of one HTTP attempt, by status class."),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if m.e2eSeconds, err = meter.Float64Histogram("hookstream_end_to_end_latency_seconds", metric.WithUnit("s"),
		metric.WithDescription("From ingest accepting a reading to its endpoint answering 2xx."),
		metric.WithExplicitBucketBoundaries(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 60, 600, 3600, 86400)); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	if m.parked, err = meter.Int64Counter("hookstream_delivery_parked",
		metric.WithDescription("Deliveries moved to their target's held subject (a slow, ordered, paused or auto-disabled target).")); err != nil {
		return nil, fmt.Errorf("delivery metrics: %w", err)
	}
	return m, nil
}

// statusClass maps a status to its class label; 0 (no response) is "error".
func statusClass(status int) string {
	if c := status / 100; status > 0 && c < len(statusClasses) {
		return statusClasses[c]
	}
	if status == 0 {
		return "error"
	}
	return strconv.Itoa(status/100) + "xx"
}

var statusClasses = [...]string{"0xx", "1xx", "2xx", "3xx", "4xx", "5xx"}

// attrSets holds measurement options by label combination.
type attrSets struct {
	mu sync.RWMutex
	m  map[[2]string]metric.MeasurementOption
}

// get returns the option for labels k, built by mk the first time.
func (a *attrSets) get(k [2]string, mk func() []attribute.KeyValue) metric.MeasurementOption {
	a.mu.RLock()
	o, ok := a.m[k]
	a.mu.RUnlock()
	if ok {
		return o
	}
	o = metric.WithAttributeSet(attribute.NewSet(mk()...))
	a.mu.Lock()
	if a.m == nil {
		a.m = map[[2]string]metric.MeasurementOption{}
	}
	a.m[k] = o
	a.mu.Unlock()
	return o
}

// countDelivery counts an attempt (or a delivery settled without one) in hookstream_deliveries.
func (m *metrics) countDelivery(ctx context.Context, result, class string) {
	m.deliveries.Add(ctx, 1, m.deliveryAttrs.get([2]string{result, class}, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("result", result), attribute.String("status_class", class)}
	}))
}

// record puts an attempt's result on its span and in the metrics.
func (s *Service) record(ctx context.Context, span trace.Span, d *proto.Delivery, res result, kind retry.Kind) {
	class := statusClass(res.status)
	m := s.metrics
	m.attemptSeconds.Record(ctx, res.latency.Seconds(), m.attemptAttrs.get([2]string{class}, func() []attribute.KeyValue {
		return []attribute.KeyValue{attribute.String("status_class", class)}
	}))
	if res.status != 0 {
		span.SetAttributes(attribute.Int("http.response.status_code", res.status))
	}
	span.SetAttributes(attribute.String("hookstream.result", kind.String()))
	if kind == retry.Delivered {
		m.e2eSeconds.Record(ctx, time.Since(time.Unix(0, d.IngestedAt)).Seconds())
		return
	}
	span.SetStatus(codes.Error, res.errorText())
}

// registerGauges reports the backlog, the dead-letter count and the streams by status until the
// returned unregister is called.
func (s *Service) registerGauges() (unregister func(), err error) {
	meter := s.metrics.meter
	backlog, err := meter.Int64ObservableGauge("hookstream_outbox_backlog",
		metric.WithDescription("Messages waiting in OUTBOX, including scheduled retries (all targets); a delivery group counts once."))
	if err != nil {
		return nil, err
	}
	dlq, err := meter.Int64ObservableGauge("hookstream_dlq_size", metric.WithDescription("Entries in the dead-letter stream."))
	if err != nil {
		return nil, err
	}
	streams, err := meter.Int64ObservableGauge("hookstream_streams", metric.WithDescription("Streams known to delivery, by status."))
	if err != nil {
		return nil, err
	}
	reg, err := meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		if n, err := bus.Backlog(ctx, s.js, proto.StreamOutbox); err == nil {
			o.ObserveInt64(backlog, int64(n))
		}
		if st, err := s.js.Stream(ctx, proto.StreamDLQ); err == nil {
			o.ObserveInt64(dlq, int64(st.CachedInfo().State.Msgs))
		}
		counts := map[stream.Status]int64{stream.Active: 0, stream.Paused: 0, stream.Disabled: 0, stream.DisabledDueToErrors: 0}
		for _, d := range s.cat.All() {
			counts[d.Status]++
		}
		for status, n := range counts {
			o.ObserveInt64(streams, n, metric.WithAttributes(attribute.String("status", string(status))))
		}
		return nil
	}, backlog, dlq, streams)
	if err != nil {
		return nil, err
	}
	return func() { _ = reg.Unregister() }, nil
}
