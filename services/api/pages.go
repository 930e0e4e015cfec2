package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Pages of the listing routes. Every list answers {"data": [...]} as seed 000 has it, plus
// "next" when there is more: an opaque cursor that ?cursor= takes to read the following page.
const (
	// defaultStreamsPage and maxStreamsPage bound the streams of one page of GET …/streams.
	defaultStreamsPage = 100
	maxStreamsPage     = 1000
	// pagePointBudget ends a streams page early once its streams hold this many point ids (the
	// stream that passes it is the page's last), so that a page's size is bounded whatever the
	// streams hold.
	pagePointBudget = 10_000
	// maxEntitiesPage is the default and the largest page of GET …/entities: a stream's every
	// point (MaxPointIDs), so a client that knows no cursor still reads all of them.
	maxEntitiesPage = MaxPointIDs
)

// Cursor kinds: a cursor of one list is refused by another.
const (
	cursorStreams    = "s"
	cursorEntities   = "e"
	cursorDLQ        = "d"
	cursorDeliveries = "o"
)

// encodeCursor makes the opaque cursor of a list's next page.
func encodeCursor(kind string, parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(kind + "1:" + strings.Join(parts, ":")))
}

// pageCursor reads ?cursor= of a list of kind; it returns nil without one, and a 400 naming
// "cursor" for one this list did not make. n is how many parts the list's cursors have.
func pageCursor(r *http.Request, kind string, n int) ([]string, error) {
	raw := r.URL.Query().Get("cursor")
	if raw == "" {
		return nil, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	rest, ok := strings.CutPrefix(string(b), kind+"1:")
	if err != nil || !ok {
		return nil, web.BadRequest("cursor", "is not a cursor of this list; pass the \"next\" of its previous page")
	}
	parts := strings.SplitN(rest, ":", n)
	if len(parts) != n {
		return nil, web.BadRequest("cursor", "is not a cursor of this list; pass the \"next\" of its previous page")
	}
	return parts, nil
}

// pageLimit reads ?limit=: def when absent, else 1 to most.
func pageLimit(r *http.Request, def, most int) (int, error) {
	l := r.URL.Query().Get("limit")
	if l == "" {
		return def, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > most {
		return 0, web.BadRequest("limit", "must be 1 to %d", most)
	}
	return n, nil
}

// page is the answer of a list.
type page[T any] struct {
	Data []T    `json:"data"`
	Next string `json:"next,omitempty"`
}

// listStreams is GET …/streams: the partition's streams in the order of their ids (which is
// creation order: stream ids are UUIDv7), a page at a time: ?limit= streams (default 100, at
// most 1,000), fewer when they hold pagePointBudget point ids or the page read maxStreamsPage
// definitions, and "next" while more follow.
func (s *Service) listStreams(w http.ResponseWriter, r *http.Request, partition string) error {
	typ, err := streamType(r)
	if err != nil {
		return err
	}
	filter := r.URL.Query().Get("type") != ""
	limit, err := pageLimit(r, defaultStreamsPage, maxStreamsPage)
	if err != nil {
		return err
	}
	cur, err := pageCursor(r, cursorStreams, 1)
	if err != nil {
		return err
	}
	after := ""
	if cur != nil {
		after = cur[0]
	}
	ctx := r.Context()
	// One more id than a page reads tells whether another page follows.
	ids, err := s.tally.idsAfter(ctx, partition, after, maxStreamsPage+1)
	if err != nil {
		return err
	}
	out := page[streamResource]{Data: []streamResource{}}
	points := 0
	for i, id := range ids {
		// A page also ends after maxStreamsPage definitions read, so that one filtered by a
		// type few streams have reads a bounded number too.
		if len(out.Data) == limit || points >= pagePointBudget || i == maxStreamsPage {
			out.Next = encodeCursor(cursorStreams, ids[i-1])
			break
		}
		d, _, err := s.load(ctx, partition, id)
		var we *web.Error
		if errors.As(err, &we) && we.Status == http.StatusNotFound {
			continue // deleted meanwhile
		}
		if err != nil {
			return err
		}
		if filter && d.Type != typ {
			continue
		}
		out.Data = append(out.Data, resource(d, s.targetState(ctx, d)))
		points += len(d.PointIDs)
	}
	web.WriteJSON(w, http.StatusOK, out)
	return nil
}

// entitiesPage is a page of a stream's points: ?limit= (default and at most maxEntitiesPage)
// and ?cursor=, which names the last point of the page before and its place.
func entitiesPage(r *http.Request, points []string) (page[map[string]string], error) {
	out := page[map[string]string]{Data: []map[string]string{}}
	limit, err := pageLimit(r, maxEntitiesPage, maxEntitiesPage)
	if err != nil {
		return out, err
	}
	cur, err := pageCursor(r, cursorEntities, 2)
	if err != nil {
		return out, err
	}
	start := 0
	if cur != nil {
		// The page starts after the point the cursor names (at is the place after it); if that
		// point was removed since, at the place it had, where the point after it is now (when
		// no other point before it was removed as well).
		at, err := strconv.Atoi(cur[0])
		if err != nil || at < 1 {
			return out, web.BadRequest("cursor", "is not a cursor of this list; pass the \"next\" of its previous page")
		}
		start = min(at-1, len(points))
		if i := slices.Index(points, cur[1]); i >= 0 {
			start = i + 1
		}
	}
	end := min(start+limit, len(points))
	for _, pid := range points[start:end] {
		out.Data = append(out.Data, map[string]string{"id": pid, "type": "point"})
	}
	if end < len(points) {
		out.Next = encodeCursor(cursorEntities, strconv.Itoa(end), points[end-1])
	}
	return out, nil
}

// checkStreamPoints checks that a partition's streams may hold add more point ids: a 429 naming
// maxStreamPoints when they may not. add ≤ 0 always may.
func (s *Service) checkStreamPoints(ctx context.Context, w http.ResponseWriter, partition string, add int64) error {
	if add <= 0 {
		return nil
	}
	l, _, err := s.limits(ctx, partition)
	if err != nil || l.MaxStreamPoints == 0 {
		return err
	}
	tot, err := s.tally.totals(ctx, partition)
	if err != nil {
		return err
	}
	if b, over := l.CheckStreamPoints(tot.points, add); over {
		return quotaError(w, partition, l, b, time.Now())
	}
	return nil
}

// recordPut tells the tally about a stream this process stored at revision rev.
func (s *Service) recordPut(d *stream.Stream, rev uint64) {
	s.tally.put(proto.StreamKey(d.Partition, d.ID), rev, int64(len(d.PointIDs)))
}

// dlqCursor reads the cursor of GET …/dead-letters: the DLQ sequence its page starts at (0:
// none; the page then starts at ?since=).
func dlqCursor(r *http.Request) (uint64, error) {
	cur, err := pageCursor(r, cursorDLQ, 1)
	if err != nil || cur == nil {
		return 0, err
	}
	seq, err := strconv.ParseUint(cur[0], 10, 64)
	if err != nil || seq == 0 {
		return 0, web.BadRequest("cursor", "is not a cursor of this list; pass the \"next\" of its previous page")
	}
	return seq, nil
}

// deliveriesCursor reads the cursor of GET …/streams/{id}/deliveries: the OUTCOMES sequence
// its page ends before (0: none, the newest records), and the since of the first page, which
// it sets in q.
func deliveriesCursor(r *http.Request, q *listQuery) (uint64, error) {
	cur, err := pageCursor(r, cursorDeliveries, 2)
	if err != nil || cur == nil {
		return 0, err
	}
	before, err1 := strconv.ParseUint(cur[0], 10, 64)
	since, err2 := strconv.ParseInt(cur[1], 10, 64)
	if err1 != nil || err2 != nil || before == 0 {
		return 0, web.BadRequest("cursor", "is not a cursor of this list; pass the \"next\" of its previous page")
	}
	q.since = time.Unix(0, since)
	return before, nil
}

// recordRing keeps the newest n records added, with their stream sequences.
type recordRing struct {
	recs    []json.RawMessage
	seqs    []uint64
	head    int // where the oldest record is, once the ring is full
	dropped bool
}

func newRecordRing(n int) *recordRing {
	return &recordRing{recs: make([]json.RawMessage, 0, n), seqs: make([]uint64, 0, n)}
}

func (g *recordRing) add(seq uint64, data []byte) {
	if len(g.recs) < cap(g.recs) {
		g.recs, g.seqs = append(g.recs, data), append(g.seqs, seq)
		return
	}
	g.recs[g.head], g.seqs[g.head] = data, seq
	g.head = (g.head + 1) % len(g.recs)
	g.dropped = true
}

// records returns the records kept, oldest first.
func (g *recordRing) records() []json.RawMessage {
	return append(append(make([]json.RawMessage, 0, len(g.recs)), g.recs[g.head:]...), g.recs[:g.head]...)
}

// oldest is the sequence of the oldest record kept (0 when none is).
func (g *recordRing) oldest() uint64 {
	if len(g.seqs) == 0 {
		return 0
	}
	return g.seqs[g.head]
}
