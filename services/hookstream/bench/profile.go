package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// startProfile, when a profile was asked for, starts a CPU profile of hookstream once the first
// slice's warm-up is over, for the rest of the planned slices (the probes' time included, when
// hookstream is idle), and returns where its outcome will come.
func (b *bencher) startProfile(ctx context.Context, slices []slice) chan error {
	if b.profile == "" || b.pprof == "" {
		return nil
	}
	var rest time.Duration
	for _, s := range slices {
		rest += s.load + s.probe
	}
	rest -= slices[0].skip
	secs := max(1, int(rest.Seconds()))
	done := make(chan error, 1)
	time.AfterFunc(slices[0].skip, func() { done <- b.cpuProfile(ctx, secs) })
	return done
}

// finishProfile waits for the profile started by startProfile and records it in res.
func (b *bencher) finishProfile(done chan error, res *result) {
	if done == nil {
		return
	}
	if err := <-done; err != nil {
		b.logf("   cpu profile: %v", err)
		return
	}
	res.CPUProfile = b.profile
	b.logf("   cpu profile of hookstream written to %s", b.profile)
}

// cpuProfile fetches a CPU profile of hookstream over its pprof endpoint into b.profile.
func (b *bencher) cpuProfile(ctx context.Context, secs int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", b.pprof, secs), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", resp.Status)
	}
	if dir := filepath.Dir(b.profile); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.Create(b.profile)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
