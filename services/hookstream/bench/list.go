package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// listStats counts what the concurrent listers of a scenario (Listers) did.
type listStats struct {
	passes, pages, errors, short atomic.Int64
	maxPage                      atomic.Int64 // bytes of the largest answer
}

// startListers runs n API clients that list the bench partition's streams until the returned
// stop is called, each from the first page to the last and again, following "next", and counts
// into st. want is how many streams a whole list must hold; a pass that finds fewer counts as
// short.
func (b *bencher) startListers(ctx context.Context, st *listStats, n, want int) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				got, err := b.listAll(ctx, st)
				switch {
				case ctx.Err() != nil:
				case err != nil:
					st.errors.Add(1)
				case got < want:
					st.short.Add(1)
				default:
					st.passes.Add(1)
				}
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// listAll pages through every stream of the bench partition and returns how many it saw.
func (b *bencher) listAll(ctx context.Context, st *listStats) (int, error) {
	cursor, n := "", 0
	for {
		path := "/streaming/v1/partitions/" + url.PathEscape(b.o.Partition) + "/streams?type=point-stream&limit=" + strconv.Itoa(listPageSize)
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.apiURL+path, nil)
		if err != nil {
			return n, err
		}
		req.Header.Set("Authorization", "Bearer "+b.token)
		resp, err := b.client.Do(req)
		if err != nil {
			return n, err
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return n, err
		}
		if resp.StatusCode != http.StatusOK {
			return n, fmt.Errorf("list: %d %.200s", resp.StatusCode, data)
		}
		if int64(len(data)) > st.maxPage.Load() {
			st.maxPage.Store(int64(len(data)))
		}
		var page struct {
			Data []struct {
				ID string `json:"id"`
			} `json:"data"`
			Next string `json:"next"`
		}
		if err := json.Unmarshal(data, &page); err != nil {
			return n, err
		}
		st.pages.Add(1)
		n += len(page.Data)
		if page.Next == "" {
			return n, nil
		}
		cursor = page.Next
	}
}

// listPageSize is the page the bench's listers ask for: the API's default.
const listPageSize = 100

// report writes the listers' figures into res.
func (st *listStats) report(res *result, elapsed time.Duration) {
	res.ListPasses, res.ListErrors, res.ListShort = st.passes.Load(), st.errors.Load(), st.short.Load()
	res.ListPagesPerS = float64(st.pages.Load()) / max(elapsed.Seconds(), 1e-9)
	res.ListMaxPageKB = float64(st.maxPage.Load()) / 1024
}
