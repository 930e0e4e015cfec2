package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"
)

func TestPageCursor(t *testing.T) {
	c := encodeCursor(cursorEntities, "12", "a:b")
	tests := []struct {
		name, cursor, kind string
		n                  int
		want               []string
		bad                bool
	}{
		{"none", "", cursorEntities, 2, nil, false},
		{"round trip", c, cursorEntities, 2, []string{"12", "a:b"}, false},
		{"another list's", c, cursorStreams, 1, nil, true},
		{"not base64", "%%%", cursorStreams, 1, nil, true},
		{"too few parts", encodeCursor(cursorEntities, "12"), cursorEntities, 2, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/x?cursor="+url.QueryEscape(tc.cursor), nil)
			got, err := pageCursor(r, tc.kind, tc.n)
			if (err != nil) != tc.bad || !slices.Equal(got, tc.want) {
				t.Errorf("pageCursor = %q, %v; want %q, bad %v", got, err, tc.want, tc.bad)
			}
		})
	}
}

// TestEntitiesPages pages through 25 points by 10, one of them removed between two pages.
func TestEntitiesPages(t *testing.T) {
	points := ids(25)
	var seen []string
	cursor := ""
	for page := 0; ; page++ {
		r := httptest.NewRequest("GET", "/x?limit=10&cursor="+url.QueryEscape(cursor), nil)
		p, err := entitiesPage(r, points)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Data {
			seen = append(seen, e["id"])
		}
		if page == 0 {
			points = slices.Delete(slices.Clone(points), 9, 10) // the page's last point is removed
		}
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if want := append(ids(25)[:10], ids(25)[10:]...); !slices.Equal(seen, want) {
		t.Errorf("pages held %q, want %q", seen, want)
	}
	r := httptest.NewRequest("GET", "/x", nil)
	if p, _ := entitiesPage(r, ids(1000)); len(p.Data) != 1000 || p.Next != "" {
		t.Errorf("default page of 1,000 points: %d, next %q", len(p.Data), p.Next)
	}
	r = httptest.NewRequest("GET", "/x?limit=1001", nil)
	if _, err := entitiesPage(r, ids(3)); err == nil {
		t.Error("limit 1001 accepted")
	}
}

func TestRecordRing(t *testing.T) {
	for _, tc := range []struct {
		n, add  int
		want    []string
		oldest  uint64
		dropped bool
	}{
		{3, 0, []string{}, 0, false},
		{3, 2, []string{"1", "2"}, 1, false},
		{3, 3, []string{"1", "2", "3"}, 1, false},
		{3, 7, []string{"5", "6", "7"}, 5, true},
	} {
		t.Run(fmt.Sprint(tc.n, "/", tc.add), func(t *testing.T) {
			g := newRecordRing(tc.n)
			for i := 1; i <= tc.add; i++ {
				g.add(uint64(i), []byte(fmt.Sprint(i)))
			}
			var got []string
			for _, r := range g.records() {
				got = append(got, string(r))
			}
			if !slices.Equal(got, tc.want) && !(len(got) == 0 && len(tc.want) == 0) || g.oldest() != tc.oldest || g.dropped != tc.dropped {
				t.Errorf("records %q oldest %d dropped %v; want %q %d %v", got, g.oldest(), g.dropped, tc.want, tc.oldest, tc.dropped)
			}
			if b, _ := json.Marshal(g.records()); string(b) == "null" {
				t.Error("records() encodes as null")
			}
		})
	}
}

// TestTally applies the API's own writes and the watch's reports in either order.
func TestTally(t *testing.T) {
	tl := newTally()
	close(tl.ready)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	check := func(step string, streams int, points int64) {
		t.Helper()
		if tot, err := tl.totals(ctx, "p"); err != nil || tot.streams != streams || tot.points != points {
			t.Errorf("%s: %+v %v, want %d streams, %d points", step, tot, err, streams, points)
		}
	}
	tl.put("p.a", 5, 10) // created here
	tl.put("p.a", 5, 10) // the watch reports the same revision
	check("create", 1, 10)
	tl.put("p.a", 7, 30) // points added here
	tl.put("p.a", 6, 99) // an older revision reported late
	check("update", 1, 30)
	tl.put("p.b", 8, 1)
	check("second stream", 2, 31)
	tl.forget("p.a", false) // deleted here
	tl.put("p.a", 7, 30)
	check("delete, then an older put reported", 1, 1)
	tl.forget("p.a", true) // the watch reports the delete
	if len(tl.gone) != 0 {
		t.Errorf("gone = %v after the watch reported the delete", tl.gone)
	}
	if ids, _ := tl.idsAfter(ctx, "p", "", 10); !slices.Equal(ids, []string{"b"}) {
		t.Errorf("ids = %q", ids)
	}
	tl.forget("p.b", true)
	check("all deleted", 0, 0)
	for _, id := range []string{"c", "a", "e", "b", "d"} {
		tl.put("p."+id, 1, 1)
	}
	for _, tc := range []struct {
		after string
		n     int
		want  []string
	}{{"", 2, []string{"a", "b"}}, {"b", 10, []string{"c", "d", "e"}}, {"bb", 1, []string{"c"}}, {"e", 5, nil}} {
		if ids, _ := tl.idsAfter(ctx, "p", tc.after, tc.n); !slices.Equal(ids, tc.want) {
			t.Errorf("idsAfter(%q, %d) = %q, want %q", tc.after, tc.n, ids, tc.want)
		}
	}
}
