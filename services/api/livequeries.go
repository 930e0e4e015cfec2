package api

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/livequery"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// MaxLiveQueries is the most live queries a partition may have.
const MaxLiveQueries = 1000

// liveQueryIDLen is the length of a live query id: "LVQ" and 22 base-62 characters, the shape
// of seed 002's ids (LVQAERav1iu5vkp6Qhkmf1234).
const liveQueryIDLen = 25

// LiveQueries is the store of live queries: the definitions (proto.BucketLiveQueries) and the
// last results the matcher's evaluator recorded (proto.BucketLiveResults). The native routes
// use it, and any other API (GraphQL) can: its errors are *web.Error with the status to answer
// (400 naming the field, 404) or other errors (503). It is safe for concurrent use.
type LiveQueries struct {
	defs    jetstream.KeyValue
	results jetstream.KeyValue
}

// OpenLiveQueries opens the live-query buckets.
func OpenLiveQueries(ctx context.Context, js jetstream.JetStream) (*LiveQueries, error) {
	defs, err := js.KeyValue(ctx, proto.BucketLiveQueries)
	if err != nil {
		return nil, fmt.Errorf("live queries: %w", err)
	}
	results, err := js.KeyValue(ctx, proto.BucketLiveResults)
	if err != nil {
		return nil, fmt.Errorf("live queries: %w", err)
	}
	return &LiveQueries{defs: defs, results: results}, nil
}

// LiveQuery is a live query as the API shows it. LastResult is the result the evaluator last
// recorded (absent until the query was first evaluated).
type LiveQuery struct {
	ID          string          `json:"id"`
	Name        string          `json:"name,omitempty"`
	Query       string          `json:"query"`
	CreatedAt   time.Time       `json:"createdAt"`
	LastResult  json.RawMessage `json:"lastResult,omitempty"`
	EvaluatedAt *time.Time      `json:"evaluatedAt,omitempty"`
}

// LiveQueryInput is what Create takes. ID is optional: a migrating customer keeps its live
// queries' ids (and the filters that name them); without it one is generated.
type LiveQueryInput struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Query string `json:"query"`
}

// Create compiles and stores a new live query of partition. createdBy is the token's subject.
func (l *LiveQueries) Create(ctx context.Context, partition string, in LiveQueryInput, createdBy string) (*LiveQuery, error) {
	if in.ID != "" && !validLiveQueryID(in.ID) {
		return nil, web.BadRequest("id", "id %q is not a live query id: LVQ and 22 letters or digits", clip(in.ID))
	}
	if in.Query == "" {
		return nil, web.BadRequest("query", "query is required: a CEL expression over entities and points")
	}
	if _, err := livequery.Compile(in.Query); err != nil {
		return nil, web.BadRequest("query", "%s", err.Error())
	}
	if utf8.RuneCountInString(in.Name) > maxNameLen || !utf8.ValidString(in.Name) {
		return nil, web.BadRequest("name", "name must be valid UTF-8 of at most %d characters", maxNameLen)
	}
	keys, err := l.keys(ctx, partition)
	if err != nil {
		return nil, err
	}
	if len(keys) >= MaxLiveQueries {
		return nil, &web.Error{Status: http.StatusConflict, Code: "limit_reached", Message: fmt.Sprintf("the partition has %d live queries, the most allowed", MaxLiveQueries)}
	}
	def := &proto.LiveQuery{V: proto.Version, ID: cmp.Or(in.ID, newLiveQueryID()), Partition: partition, Name: in.Name,
		Query: in.Query, CreatedAt: time.Now().UnixNano(), CreatedBy: createdBy}
	data, err := proto.Marshal(def)
	if err != nil {
		return nil, err
	}
	if _, err := l.defs.Create(ctx, proto.StreamKey(partition, def.ID), data); errors.Is(err, jetstream.ErrKeyExists) {
		return nil, &web.Error{Status: http.StatusConflict, Code: "conflict", Message: fmt.Sprintf("live query %s exists", def.ID), Field: "id"}
	} else if err != nil {
		return nil, fmt.Errorf("store live query: %w", err)
	}
	return viewOf(def, nil), nil
}

// Get returns one live query of partition with its last result.
func (l *LiveQueries) Get(ctx context.Context, partition, id string) (*LiveQuery, error) {
	if !validLiveQueryID(id) {
		return nil, web.NotFound("live query")
	}
	def, err := l.def(ctx, partition, id)
	if err != nil {
		return nil, err
	}
	return viewOf(def, l.result(ctx, partition, id)), nil
}

// List returns the live queries of partition, oldest first, with their last results.
func (l *LiveQueries) List(ctx context.Context, partition string) ([]LiveQuery, error) {
	keys, err := l.keys(ctx, partition)
	if err != nil {
		return nil, err
	}
	out := make([]LiveQuery, 0, len(keys))
	for _, k := range keys {
		_, id, ok := proto.SplitStreamKey(k)
		if !ok {
			continue
		}
		def, err := l.def(ctx, partition, id)
		if err != nil {
			continue // deleted meanwhile
		}
		out = append(out, *viewOf(def, l.result(ctx, partition, id)))
	}
	slices.SortFunc(out, func(a, b LiveQuery) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out, nil
}

// Delete removes a live query of partition and its last result.
func (l *LiveQueries) Delete(ctx context.Context, partition, id string) error {
	if _, err := l.Get(ctx, partition, id); err != nil {
		return err
	}
	key := proto.StreamKey(partition, id)
	if err := l.defs.Purge(ctx, key); err != nil {
		return fmt.Errorf("delete live query: %w", err)
	}
	_ = l.results.Purge(context.WithoutCancel(ctx), key) // the evaluator also drops it
	return nil
}

func (l *LiveQueries) keys(ctx context.Context, partition string) ([]string, error) {
	lister, err := l.defs.ListKeysFiltered(ctx, proto.PartitionKeys(partition))
	if err != nil {
		return nil, fmt.Errorf("list live queries: %w", err)
	}
	var keys []string
	for k := range lister.Keys() {
		keys = append(keys, k)
	}
	return keys, nil
}

func (l *LiveQueries) def(ctx context.Context, partition, id string) (*proto.LiveQuery, error) {
	e, err := l.defs.Get(ctx, proto.StreamKey(partition, id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, web.NotFound("live query")
	}
	if err != nil {
		return nil, fmt.Errorf("read live query: %w", err)
	}
	var def proto.LiveQuery
	if err := proto.Unmarshal(e.Value(), &def); err != nil {
		return nil, fmt.Errorf("decode live query: %w", err)
	}
	return &def, nil
}

// result is the recorded result of a query; nil when there is none (or it cannot be read).
func (l *LiveQueries) result(ctx context.Context, partition, id string) *proto.LiveResult {
	e, err := l.results.Get(ctx, proto.StreamKey(partition, id))
	if err != nil {
		return nil
	}
	var r proto.LiveResult
	if proto.Unmarshal(e.Value(), &r) != nil {
		return nil
	}
	return &r
}

func viewOf(def *proto.LiveQuery, r *proto.LiveResult) *LiveQuery {
	v := &LiveQuery{ID: def.ID, Name: def.Name, Query: def.Query, CreatedAt: time.Unix(0, def.CreatedAt).UTC()}
	if r != nil {
		at := time.Unix(0, r.At).UTC()
		v.LastResult, v.EvaluatedAt = json.RawMessage(r.Result), &at
	}
	return v
}

const base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

func newLiveQueryID() string {
	b := make([]byte, liveQueryIDLen-3)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = base62[int(b[i])%len(base62)]
	}
	return "LVQ" + string(b)
}

func validLiveQueryID(id string) bool {
	if len(id) != liveQueryIDLen || !strings.HasPrefix(id, "LVQ") {
		return false
	}
	for i := 3; i < len(id); i++ {
		if !strings.ContainsRune(base62, rune(id[i])) {
			return false
		}
	}
	return true
}

// The native routes (routes in api.go).

func (s *Service) createLiveQuery(w http.ResponseWriter, r *http.Request, partition string) error {
	var in LiveQueryInput
	if err := web.DecodeJSON(w, r, &in); err != nil {
		return err
	}
	claims, _ := web.Authenticate(s.cfg.Verifier, r) // guard has checked it
	by := ""
	if claims != nil {
		by = claims.Subject
	}
	q, err := s.live.Create(r.Context(), partition, in, by)
	if err != nil {
		return err
	}
	s.log.Info("live query created", "partition", partition, "live_query_id", q.ID)
	web.WriteJSON(w, http.StatusCreated, q)
	return nil
}

func (s *Service) listLiveQueries(w http.ResponseWriter, r *http.Request, partition string) error {
	qs, err := s.live.List(r.Context(), partition)
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, map[string]any{"liveQueries": qs})
	return nil
}

func (s *Service) getLiveQuery(w http.ResponseWriter, r *http.Request, partition string) error {
	q, err := s.live.Get(r.Context(), partition, r.PathValue("id"))
	if err != nil {
		return err
	}
	web.WriteJSON(w, http.StatusOK, q)
	return nil
}

func (s *Service) deleteLiveQuery(w http.ResponseWriter, r *http.Request, partition string) error {
	id := r.PathValue("id")
	if err := s.live.Delete(r.Context(), partition, id); err != nil {
		return err
	}
	s.log.Info("live query deleted", "partition", partition, "live_query_id", id)
	w.WriteHeader(http.StatusNoContent)
	return nil
}
