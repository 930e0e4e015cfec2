package proto

// Entities and live queries (issue 25, item 3).
//
// An entity is a JSON document with an "id" and a "type" (a site, a thing, a device, …) that
// ingest takes on IngestEntitySubject and stores in EVENTS on
// EventSubject(partition, EventTypeEntity, id): the last message of that subject is the
// entity's current document. A live query is a CEL expression over a partition's current state
// (its entities and the latest reading of each point), stored in BucketLiveQueries; when its
// result changes, the matcher publishes an event of type EventTypeLiveQuery whose data is
// {"lastResult": …, "liveQueryId": …} and whose source is LiveQuerySource.

// EventTypeEntity is the event type of entity documents in EVENTS; reserved, like
// EventTypePoint, so that device events cannot pose as entities.
const EventTypeEntity = "entity"

// EventTypeLiveQuery is the event type of live-query results; reserved.
const EventTypeLiveQuery = "liveQuery"

// IngestKindEntities is the kind ParseIngestSubject gives an entity subject.
const IngestKindEntities = "entities"

// IngestEntitySubject is where a producer publishes entity documents of one type.
func IngestEntitySubject(partition, entityType string) string {
	return prefix + "ingest." + partition + "." + IngestKindEntities + "." + entityType
}

// Buckets of live queries.
const (
	// BucketLiveQueries holds live-query definitions (LiveQuery), key StreamKey(partition, id).
	// The API writes it; the matcher's evaluator watches it.
	BucketLiveQueries = "hookstream_live_queries"
	// BucketLiveResults holds the last result of each live query (LiveResult), key
	// StreamKey(partition, id). Only the evaluator writes it, by compare-and-set.
	BucketLiveResults = "hookstream_live_results"
)

// LiveQuerySource is the CloudEvents source of a live query's result events. It is the one
// place that names it, so that a per-partition source prefix can be applied here.
func LiveQuerySource(partition, id string) string {
	return "//hookstream/partitions/" + partition + "/liveQueries/" + id
}

// LiveQuery is a stored live-query definition.
type LiveQuery struct {
	V         uint8  `msgpack:"v"`
	ID        string `msgpack:"id"`
	Partition string `msgpack:"p"`
	Name      string `msgpack:"n,omitempty"`
	Query     string `msgpack:"q"`            // CEL (pkg/livequery)
	CreatedAt int64  `msgpack:"ca"`           // Unix ns
	CreatedBy string `msgpack:"cb,omitempty"` // the token's subject
}

// LiveResult is the last result of a live query, as the evaluator records it. Sent is false
// between claiming a new result (compare-and-set on the previous revision) and storing its
// event in EVENTS; an evaluator that finds it false sends the event (its id derives from the
// claiming revision, so a second send is de-duplicated) and then sets it.
type LiveResult struct {
	V      uint8  `msgpack:"v"`
	Result []byte `msgpack:"r"` // JSON
	Hash   string `msgpack:"h"` // SHA-256 of Result, hex
	Sent   bool   `msgpack:"s"`
	At     int64  `msgpack:"at"` // when it was evaluated (Unix ns)
	// Baseline marks the first result, recorded when the query was first evaluated and not sent.
	Baseline bool `msgpack:"b,omitempty"`
}
