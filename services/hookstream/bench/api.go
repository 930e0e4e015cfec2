package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// streamSpec is one stream the scenario creates.
type streamSpec struct {
	path  string // on the receiver
	point string
}

// layout returns the scenario's streams and the points readings go to. Active points get Fanout
// healthy streams each (and one hanging stream each when Hanging); idle streams, spread among the
// active ones in creation order, each subscribe to a point of their own that never gets a reading.
func (sc scenario) layout() (specs []streamSpec, points []string) {
	active := sc.Points * sc.Fanout
	if sc.Hanging {
		active += sc.Points
	}
	idle := max(sc.Streams-active, 0)
	stride := 1
	if active > 0 {
		stride = max(1, (active+idle)/active)
	}
	var act []streamSpec
	h := 0
	for p := 0; p < sc.Points; p++ {
		pt := "pt-" + strconv.Itoa(p)
		points = append(points, pt)
		for f := 0; f < sc.Fanout; f++ {
			act = append(act, streamSpec{path: "/h/" + strconv.Itoa(h), point: pt})
			h++
		}
		if sc.Hanging {
			act = append(act, streamSpec{path: "/hang/" + strconv.Itoa(p), point: pt})
		}
	}
	for i, k := 0, 0; i < active+idle; i++ {
		if i%stride == 0 && len(act) > 0 {
			specs, act = append(specs, act[0]), act[1:]
			continue
		}
		if k < idle {
			specs = append(specs, streamSpec{path: "/h/idle-" + strconv.Itoa(k), point: "idle-" + strconv.Itoa(k)})
			k++
		}
	}
	return append(specs, act...), points
}

// pointIDs are the point ids of stream i: its point, and as many more (idle) as make
// PointsPerStream.
func (sc scenario) pointIDs(i int, point string) []string {
	ids := []string{point}
	for k := 1; k < sc.PointsPerStream; k++ {
		ids = append(ids, "s"+strconv.Itoa(i)+"-"+strconv.Itoa(k))
	}
	return ids
}

// forEach calls f for 0 ≤ i < n on up to workers goroutines, until ctx ends or f returns false.
func forEach(ctx context.Context, n, workers int, f func(i int) bool) {
	var next atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && ctx.Err() == nil && !stop.Load(); i = int(next.Add(1) - 1) {
				if !f(i) {
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
}

// createStreams creates the streams over the API, 16 at a time, and returns their ids (those
// created so far when it fails).
func (b *bencher) createStreams(ctx context.Context, specs []streamSpec) ([]string, error) {
	ids := make([]string, len(specs))
	var once sync.Once
	var first error
	forEach(ctx, len(specs), 16, func(i int) bool {
		body := map[string]any{"name": "bench " + specs[i].path, "webhookUrl": b.hookURL + specs[i].path,
			"pointIds": b.sc.pointIDs(i, specs[i].point), "webhookSecret": benchSecret}
		if b.o.MaxInFlight > 0 {
			body["maxInFlight"] = b.o.MaxInFlight
		}
		var out struct {
			ID string `json:"id"`
		}
		if err := b.api(ctx, http.MethodPost, "/streaming/v1/partitions/"+b.o.Partition+"/streams?type=point-stream", body, http.StatusCreated, &out); err != nil {
			once.Do(func() { first = fmt.Errorf("create stream %d: %w", i, err) })
			return false
		}
		ids[i] = out.ID
		return true
	})
	var created []string
	for _, id := range ids {
		if id != "" {
			created = append(created, id)
		}
	}
	if first == nil {
		first = ctx.Err()
	}
	return created, first
}

// deleteStreams removes what the bench created on an external deployment.
func (b *bencher) deleteStreams(ctx context.Context, ids []string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var failed atomic.Int64
	forEach(ctx, len(ids), 16, func(i int) bool {
		if err := b.api(ctx, http.MethodDelete, "/streaming/v1/partitions/"+b.o.Partition+"/streams/"+ids[i], nil, http.StatusNoContent, nil); err != nil {
			failed.Add(1)
		}
		return true
	})
	if n := failed.Load(); n > 0 {
		b.logf("   %d bench streams could not be deleted", n)
	}
}

// api makes one API call and decodes the answer into out when it has the wanted status.
func (b *bencher) api(ctx context.Context, method, path string, body any, want int, out any) error {
	var r io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, b.apiURL+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, bytes.TrimSpace(data))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// rcvStats fetches the receiver's report.
func (b *bencher) rcvStats(ctx context.Context, counts bool) (receiverStats, error) {
	var st receiverStats
	url := b.rcvURL + "/stats"
	if counts {
		url += "?counts=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return st, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return st, fmt.Errorf("receiver stats: %w", err)
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// pollProgress reads the receiver's counters into b.delivered and b.hang.
func (b *bencher) pollProgress(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.rcvURL+"/progress", nil)
	if err != nil {
		return err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var u, h int64
	if _, err := fmt.Fscan(resp.Body, &u, &h); err != nil {
		return fmt.Errorf("receiver progress: %w", err)
	}
	b.delivered.Store(u)
	b.hang.Store(h)
	return nil
}
