package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// prober measures the receiver's bare HTTP ceiling: workers keep-alive clients of this process
// POST a webhook-sized body to the receiver's /bare, which only counts it, as fast as it
// answers. Each run is one slice of the measurement (load.go); the ceiling is every slice's
// answered requests over every slice's time.
type prober struct {
	url     string
	workers int
	tr      *http.Transport
	client  *http.Client

	answered int64
	elapsed  time.Duration
	slices   int
	min, max float64 // requests/s of the slowest and the fastest slice
}

func newProber(rcvURL string, workers int) *prober {
	tr := &http.Transport{Proxy: nil, MaxIdleConns: workers, MaxIdleConnsPerHost: workers}
	return &prober{url: rcvURL + "/bare", workers: workers, tr: tr, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// close closes the probe's connections.
func (p *prober) close() { p.tr.CloseIdleConnections() }

// bareBody is the probe's request body: the size of a bench delivery.
var bareBody = []byte(`{"changed":1,"createdAt":"2026-01-01T00:00:00.000Z","id":"pt-0","lastUpdatedAt":"2026-01-01T00:00:00.000Z","qualityOfValue":0,"value":"0-0"}`)

// run measures one slice of d. More failed requests than workers fail it.
func (p *prober) run(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var n, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range p.workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				switch ok, err := p.post(ctx); {
				case err != nil && ctx.Err() == nil:
					failed.Add(1)
				case ok:
					n.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if f := failed.Load(); f > int64(p.workers) {
		return fmt.Errorf("bare HTTP: %d requests failed", f)
	}
	rate := float64(n.Load()) / elapsed.Seconds()
	if p.slices == 0 || rate < p.min {
		p.min = rate
	}
	p.max = max(p.max, rate)
	p.answered += n.Load()
	p.elapsed += elapsed
	p.slices++
	return nil
}

// post sends one request and says whether it was answered 2xx.
func (p *prober) post(ctx context.Context) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(bareBody))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hookstream-bench")
	req.Header.Set("webhook-id", "bare")
	resp, err := p.client.Do(req)
	if err != nil {
		return false, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode/100 == 2, nil
}

// report writes the ceiling and its slices into res.
func (p *prober) report(res *result) {
	if p.elapsed > 0 {
		res.BareHTTPPerS = float64(p.answered) / p.elapsed.Seconds()
	}
	res.BareHTTPS = p.elapsed.Seconds()
	res.BareHTTPSlices = p.slices
	res.BareHTTPMinPerS, res.BareHTTPMaxPerS = p.min, p.max
}
