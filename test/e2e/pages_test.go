package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listPage is a page of any list: seed 000's {"data": [...]} and the cursor of the next page.
type listPage struct {
	Data []json.RawMessage `json:"data"`
	Next string            `json:"next"`
	More *bool             `json:"more"`
}

// pages reads every page of a list, following "next", and returns them.
func (in *instance) pages(path, token string) []listPage {
	in.t.Helper()
	var out []listPage
	cursor := ""
	for range 100 {
		p := path
		if cursor != "" {
			sep := "?"
			if strings.Contains(p, "?") {
				sep = "&"
			}
			p += sep + "cursor=" + url.QueryEscape(cursor)
		}
		code, body := in.call("GET", p, token, nil)
		var pg listPage
		if err := json.Unmarshal(body, &pg); code != 200 || err != nil {
			in.t.Fatalf("GET %s: %d %.300s", p, code, body)
		}
		out = append(out, pg)
		if pg.Next == "" {
			return out
		}
		cursor = pg.Next
	}
	in.t.Fatalf("GET %s: more than 100 pages", path)
	return nil
}

func pointIDs(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + strconv.Itoa(i)
	}
	return out
}

// TestListsArePaged pages through every list: 135 streams (120 of one point, then 15 of 1,000,
// so the second page ends at its 10,000-point budget), a stream's 1,000 entities by 300, five
// dead letters by 2, five deliveries by 2 (newest first page); a foreign cursor is a 400.
func TestListsArePaged(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{})
	const p = "pg"
	tok := in.token(p)
	base := "/streaming/v1/partitions/" + p
	var created []string
	for i := range 135 {
		points := []string{"small-" + strconv.Itoa(i)}
		if i >= 120 {
			points = pointIDs("big"+strconv.Itoa(i)+"-", 1000)
		}
		code, out := in.call("POST", base+"/streams?type=point-stream", tok, map[string]any{"webhookUrl": "http://127.0.0.1:1/x", "pointIds": points})
		var s streamResp
		if err := json.Unmarshal(out, &s); code != http.StatusCreated || err != nil {
			t.Fatalf("create %d: %d %.300s", i, code, out)
		}
		created = append(created, s.ID)
	}

	pages := in.pages(base+"/streams?type=point-stream", tok)
	var listed []string
	var sizes []int
	for _, pg := range pages {
		sizes = append(sizes, len(pg.Data))
		for _, raw := range pg.Data {
			var s streamResp
			_ = json.Unmarshal(raw, &s)
			listed = append(listed, s.ID)
		}
	}
	if !slices.Equal(sizes, []int{100, 30, 5}) {
		t.Errorf("stream pages of %v, want [100 30 5] (100 a page, the second ending at 10,000 points)", sizes)
	}
	if !slices.Equal(listed, created) {
		t.Errorf("pages listed %d streams, not the %d created in creation order", len(listed), len(created))
	}
	var sizes50 []int
	for _, pg := range in.pages(base+"/streams?limit=50", tok) {
		sizes50 = append(sizes50, len(pg.Data))
	}
	if !slices.Equal(sizes50, []int{50, 50, 30, 5}) {
		t.Errorf("?limit=50: pages of %v, want [50 50 30 5]", sizes50)
	}

	big := created[134]
	var entities []string
	for _, pg := range in.pages(base+"/streams/"+big+"/entities?limit=300", tok) {
		for _, raw := range pg.Data {
			var e struct{ ID, Type string }
			_ = json.Unmarshal(raw, &e)
			entities = append(entities, e.ID)
		}
	}
	if !slices.Equal(entities, pointIDs("big134-", 1000)) {
		t.Errorf("entities by 300: %d, not the stream's 1,000 in order", len(entities))
	}
	if got := in.pages(base+"/streams/"+big+"/entities", tok); len(got) != 1 || len(got[0].Data) != 1000 {
		t.Errorf("entities without a limit: %d pages, want all 1,000 in one", len(got))
	}

	for _, q := range []string{"/streams?cursor=bogus", "/dead-letters?cursor=" + url.QueryEscape(pages[0].Next)} {
		if code, out := in.call("GET", base+q, tok, nil); code != 400 || !strings.Contains(string(out), `"field":"cursor"`) {
			t.Errorf("GET %s: %d %.300s, want a 400 on cursor", q, code, out)
		}
	}
	testDeadLetterAndDeliveryPages(t, in)
}

func testDeadLetterAndDeliveryPages(t *testing.T, in *instance) {
	const p = "pg2"
	tok := in.token(p)
	base := "/streaming/v1/partitions/" + p
	refuse := newReceiver(t, func(int, received) int { return http.StatusBadRequest }) // permanent: dead-lettered at once
	ok := newReceiver(t, nil)
	bad := in.createStream(p, map[string]any{"webhookUrl": refuse.URL + "/no", "pointIds": []string{"pt-bad"}})
	good := in.createStream(p, map[string]any{"webhookUrl": ok.URL + "/yes", "pointIds": []string{"pt-good"}})
	nc := in.connect()
	for i := range 5 {
		publishReading(t, nc, p, "pt-bad", map[string]any{"value": i})
		publishReading(t, nc, p, "pt-good", map[string]any{"value": i})
	}
	ok.waitFor(t, 5, 20*time.Second)
	checkFor(t, 20*time.Second, func() error {
		if n := len(in.deadLetters(p, "").Data); n != 5 {
			return fmt.Errorf("%d dead letters", n)
		}
		return nil
	})
	var dl []string
	dlPages := in.pages(base+"/dead-letters?streamId="+bad+"&limit=2", tok)
	for i, pg := range dlPages {
		for _, raw := range pg.Data {
			var e struct{ ID string }
			_ = json.Unmarshal(raw, &e)
			dl = append(dl, e.ID)
		}
		if want := i < len(dlPages)-1; pg.More == nil || *pg.More != want {
			t.Errorf("dead-letter page %d of %d: more is not %v", i+1, len(dlPages), want)
		}
	}
	if len(dlPages) != 3 || len(dl) != 5 || !slices.IsSortedFunc(dl, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y }) {
		t.Errorf("dead letters by 2: %d pages, ids %v", len(dlPages), dl)
	}

	// Deliveries: each page is the newest records before the previous page's.
	delPages := in.pages(base+"/streams/"+good+"/deliveries?status=delivered&limit=2", tok)
	var paged []string
	for _, pg := range slices.Backward(delPages) {
		for _, raw := range pg.Data {
			paged = append(paged, string(raw))
		}
	}
	var all []string
	for _, raw := range in.pages(base+"/streams/"+good+"/deliveries?status=delivered", tok)[0].Data {
		all = append(all, string(raw))
	}
	if len(delPages) != 3 || len(delPages[0].Data) != 2 || len(all) != 5 || !slices.Equal(paged, all) {
		t.Errorf("deliveries by 2: %d pages, %d records; want 3 pages holding the 5 records newest first", len(delPages), len(paged))
	}
}

// TestStreamPointsCeiling runs with --quota-stream-points 2500: streams may hold 2,500 point ids
// together; a create or an entities PUT past it is a 429 naming maxStreamPoints, nothing stored;
// a delete frees its points. An instance without the flag has the default ceilings.
func TestStreamPointsCeiling(t *testing.T) {
	t.Parallel()
	in := startAllInOne(t, options{extra: []string{"--quota-stream-points", "2500"}})
	const p = "ceil"
	tok := in.token(p)
	base := "/streaming/v1/partitions/" + p
	create := func(n int, prefix string) (int, apiError, string) {
		code, out := in.call("POST", base+"/streams?type=point-stream", tok, map[string]any{"webhookUrl": "http://127.0.0.1:1/x", "pointIds": pointIDs(prefix, n)})
		var e apiError
		var s streamResp
		_ = json.Unmarshal(out, &e)
		_ = json.Unmarshal(out, &s)
		return code, e, s.ID
	}
	_, _, first := create(1000, "a")
	if code, _, _ := create(1000, "b"); code != http.StatusCreated {
		t.Fatalf("second stream of 1,000: %d", code)
	}
	code, e, _ := create(1000, "c")
	if code != http.StatusTooManyRequests || e.Error.Field != "maxStreamPoints" ||
		e.Error.Message != "partition ceil has 2000 point ids in its streams and this would add 1000; its limit maxStreamPoints is 2500" {
		t.Errorf("third stream of 1,000: %d %+v", code, e)
	}
	_, _, last := create(500, "d")
	if last == "" {
		t.Fatal("a stream of 500 within the ceiling was refused")
	}
	code, out := in.call("PUT", base+"/streams/"+last+"/entities", tok, map[string]any{"pointIds": []string{"one-more"}})
	if code != http.StatusTooManyRequests || !strings.Contains(string(out), "maxStreamPoints") {
		t.Errorf("PUT entities past the ceiling: %d %s", code, out)
	}
	u := in.usage(p)
	if u.Streams.Used != 3 || u.StreamPoints.Used != 2500 || u.StreamPoints.Limit == nil || *u.StreamPoints.Limit != 2500 {
		t.Errorf("usage %+v", u)
	}
	if code, _ := in.call("DELETE", base+"/streams/"+first, tok, nil); code != http.StatusNoContent {
		t.Fatalf("delete: %d", code)
	}
	if code, e, _ := create(1000, "e"); code != http.StatusCreated {
		t.Errorf("a stream of 1,000 after deleting one: %d %+v", code, e)
	}

	plain := startAllInOne(t, options{})
	if u := plain.usage("any"); u.Streams.Limit == nil || *u.Streams.Limit != 10000 || u.StreamPoints.Limit == nil || *u.StreamPoints.Limit != 250000 {
		t.Errorf("default ceilings: streams %v, streamPoints %v; want 10000 and 250000", u.Streams.Limit, u.StreamPoints.Limit)
	}
}
