package livequery

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/proto"
)

// MaxStateSubjects bounds the entities and points Load reads for one partition.
const MaxStateSubjects = 200_000

// ErrStateTooLarge means a partition holds more than MaxStateSubjects entities and points: its
// queries cannot be evaluated until it holds fewer.
var ErrStateTooLarge = errors.New("live query state too large")

// State is a partition's current state: what a query reads.
type State struct {
	Partition string
	Entities  []Entity
	Points    []Point
}

// Entity is the latest document of an entity.
type Entity struct {
	ID        string
	CreatedAt int64 // when ingest first saw it (Unix ns)
	Doc       map[string]any
}

// Point is the latest reading of a point.
type Point struct {
	ID      string
	Value   any
	Time    time.Time
	Quality int
}

// entityRows returns the entities' documents in order of first sight, then id.
func (st *State) entityRows() []any {
	slices.SortStableFunc(st.Entities, func(a, b Entity) int {
		return cmp.Or(cmp.Compare(a.CreatedAt, b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	rows := make([]any, len(st.Entities))
	for i, e := range st.Entities {
		rows[i] = e.Doc
	}
	return rows
}

// pointRows returns the points by id, each over the document of the entity of the same id.
func (st *State) pointRows() []any {
	byID := make(map[string]map[string]any, len(st.Entities))
	for _, e := range st.Entities {
		byID[e.ID] = e.Doc
	}
	slices.SortFunc(st.Points, func(a, b Point) int { return cmp.Compare(a.ID, b.ID) })
	rows := make([]any, len(st.Points))
	for i, p := range st.Points {
		doc := byID[p.ID]
		row := make(map[string]any, len(doc)+4)
		for k, v := range doc {
			row[k] = v
		}
		row["id"], row["value"], row["time"], row["quality"] = p.ID, p.Value, p.Time, int64(p.Quality)
		rows[i] = row
	}
	return rows
}

// Load reads the partition's current state from EVENTS: the last message of each entity's and
// (when deps.Points) each point's subject. It reads with an ordered consumer, so what it returns
// includes every event stored before it was called.
func Load(ctx context.Context, js jetstream.JetStream, partition string, deps Deps) (*State, error) {
	st := &State{Partition: partition}
	subjects := []string{proto.EventSubject(partition, proto.EventTypeEntity, "*")}
	if deps.Points {
		subjects = append(subjects, proto.EventSubject(partition, proto.EventTypePoint, "*"))
	}
	cons, err := js.OrderedConsumer(ctx, proto.StreamEvents, jetstream.OrderedConsumerConfig{
		FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("load state of %s: %w", partition, err)
	}
	info, err := cons.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("load state of %s: %w", partition, err)
	}
	pending := info.NumPending
	if pending > MaxStateSubjects {
		return nil, fmt.Errorf("%w: load state of %s: %d entities and points exceed the limit of %d", ErrStateTooLarge, partition, pending, MaxStateSubjects)
	}
	for pending > 0 {
		batch, err := cons.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("load state of %s: %w", partition, err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			md, err := msg.Metadata()
			if err != nil {
				return nil, fmt.Errorf("load state of %s: %w", partition, err)
			}
			pending = md.NumPending
			st.add(msg.Data())
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("load state of %s: %w", partition, err)
		}
		if n == 0 {
			return nil, fmt.Errorf("load state of %s: no messages within 5 s, %d expected", partition, pending)
		}
	}
	return st, nil
}

// add adds one EVENTS message to the state; one that does not decode is left out.
func (st *State) add(data []byte) {
	var ev proto.Event
	if proto.Unmarshal(data, &ev) != nil {
		return
	}
	switch ev.Type {
	case proto.EventTypeEntity:
		var doc map[string]any
		if json.Unmarshal(ev.Data, &doc) == nil && doc != nil {
			st.Entities = append(st.Entities, Entity{ID: ev.Subject, CreatedAt: ev.CreatedAt, Doc: doc})
		}
	case proto.EventTypePoint:
		var v any
		if json.Unmarshal(ev.Value, &v) == nil {
			st.Points = append(st.Points, Point{ID: ev.Subject, Value: v, Time: time.Unix(0, ev.Time).UTC(), Quality: ev.Quality})
		}
	}
}
