package signer

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"hookstream/proto"
)

// formatEnvelope is seed 004's event payload, the default of event-streams:
//
//	{"event_type":"asset_updated","occurred_at":"2021-03-03T18:20:30Z","content":{…}}
//
// content is the event's data as the matcher left it (projected to the stream's properties); for
// a point reading, seed 002's {"pointId", "timestamp", "value"}.
const formatEnvelope = "envelope"

func renderEnvelope(events []proto.Event) ([]byte, error) {
	if len(events) != 1 {
		return nil, fmt.Errorf("format envelope takes one event, got %d", len(events))
	}
	ev := &events[0]
	var b bytes.Buffer
	b.Grow(96 + len(ev.Type) + len(ev.Data))
	b.WriteString(`{"event_type":`)
	b.WriteString(strconv.Quote(ev.Type)) // event types are validated tokens: quoting is exact JSON
	b.WriteString(`,"occurred_at":"`)
	b.WriteString(time.Unix(0, ev.Time).UTC().Format(time.RFC3339))
	b.WriteString(`","content":`)
	switch {
	case ev.Type == proto.EventTypePoint:
		// A reading (an event-stream's pointIds): seed 002's time-series record.
		b.WriteString(`{"pointId":`)
		b.WriteString(strconv.Quote(ev.Subject))
		b.WriteString(`,"timestamp":"`)
		b.WriteString(time.Unix(0, ev.Time).UTC().Format(time.RFC3339Nano))
		b.WriteString(`","value":`)
		b.Write(ev.Value)
		b.WriteByte('}')
	case len(ev.Data) == 0:
		b.WriteString("{}")
	default:
		b.Write(ev.Data)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
