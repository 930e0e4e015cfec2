// Package telemetry sets up OpenTelemetry for a hookstream process: W3C trace context carried in
// NATS headers, spans exported over OTLP/HTTP when the standard OTEL_EXPORTER_OTLP_* variables
// ask for it, and metrics served in Prometheus format.
//
// Setup installs the global providers. Services make their instruments with the meter their
// Config passes (the global provider's by default) and their spans with otel.Tracer; a test
// passes a meter of its own, or installs its own tracer provider (an in-memory span recorder).
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// Telemetry holds a process's providers.
type Telemetry struct {
	tp       *sdktrace.TracerProvider // nil when no spans are exported
	mp       *sdkmetric.MeterProvider
	registry *prometheus.Registry
	// Exporting says whether spans leave the process (an OTLP endpoint is configured).
	Exporting bool
}

// Setup installs the global propagator, tracer provider and meter provider. serviceName is used
// unless OTEL_SERVICE_NAME is set.
func Setup(ctx context.Context, serviceName string) (*Telemetry, error) {
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	if v := os.Getenv("OTEL_SERVICE_NAME"); v != "" {
		serviceName = v
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(serviceName)))
	if err != nil {
		return nil, fmt.Errorf("telemetry resource: %w", err)
	}
	t := &Telemetry{registry: prometheus.NewRegistry()}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "" {
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp exporter: %w", err)
		}
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
		t.Exporting = true
		otel.SetTracerProvider(t.tp)
	} else if os.Getenv("OTEL_TRACES_SAMPLER") != "" {
		// A sampler of the operator's choice decides the sampled flag that traceparent headers
		// carry on: the SDK's provider reads it.
		t.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res))
		otel.SetTracerProvider(t.tp)
	} else {
		// Without an exporter spans are still created, so trace ids flow across hops, reach the
		// customer's traceparent header and stamp the logs; they record nothing.
		otel.SetTracerProvider(newIDProvider())
	}

	exp, err := promexp.New(promexp.WithRegisterer(t.registry), promexp.WithoutScopeInfo())
	if err != nil {
		return nil, fmt.Errorf("prometheus exporter: %w", err)
	}
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exp))
	otel.SetMeterProvider(t.mp)
	return t, nil
}

// MetricsHandler serves the process's metrics in Prometheus text format.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.registry, promhttp.HandlerOpts{})
}

// Shutdown flushes pending spans and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var err error
	if t.tp != nil {
		err = t.tp.Shutdown(ctx)
	}
	return errors.Join(err, t.mp.Shutdown(ctx))
}
