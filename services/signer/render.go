package signer

import (
	"bytes"
	"fmt"
	"strconv"
	"time"

	"hookstream/proto"
)

// Render renders events in a payload format. The point format carries exactly one event.
func Render(format string, events []proto.Event) ([]byte, error) {
	switch format {
	case "", proto.FormatPoint:
		if len(events) != 1 {
			return nil, fmt.Errorf("format point takes one event, got %d", len(events))
		}
		return renderPoint(&events[0])
	case formatEnvelope:
		return renderEnvelope(events)
	default:
		return nil, fmt.Errorf("unknown format %q", format)
	}
}

// timeLayout is seed 000's timestamp form: UTC with milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(ns int64) string { return time.Unix(0, ns).UTC().Format(timeLayout) }

// renderPoint writes seed 000's point data event, keys in the seed's order:
//
//	{"changed":1,"createdAt":"…","id":"…","lastUpdatedAt":"…","qualityOfValue":0,"value":"22"}
func renderPoint(ev *proto.Event) ([]byte, error) {
	if ev.Type != proto.EventTypePoint {
		return nil, fmt.Errorf("format point cannot render a %q event", ev.Type)
	}
	var b bytes.Buffer
	b.Grow(160 + len(ev.Subject) + len(ev.Value))
	b.WriteString(`{"changed":`)
	if ev.Changed {
		b.WriteByte('1')
	} else {
		b.WriteByte('0')
	}
	b.WriteString(`,"createdAt":"`)
	b.WriteString(formatTime(ev.CreatedAt))
	b.WriteString(`","id":`)
	b.WriteString(strconv.Quote(ev.Subject)) // point ids are validated tokens: quoting is exact JSON
	b.WriteString(`,"lastUpdatedAt":"`)
	b.WriteString(formatTime(ev.LastUpdatedAt))
	b.WriteString(`","qualityOfValue":`)
	b.WriteString(strconv.Itoa(ev.Quality))
	b.WriteString(`,"value":`)
	b.Write(ev.Value)
	b.WriteByte('}')
	return b.Bytes(), nil
}
