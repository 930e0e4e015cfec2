package api

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"hookstream/pkg/match"
	"hookstream/pkg/stream"
	"hookstream/pkg/web"
	"hookstream/proto"
)

// Limits on what a stream subscribes to.
const (
	maxEventTypes    = 100
	maxPropertyTypes = 100
	maxPropertyKeys  = 100
	maxPropertyLen   = 128
	maxDeadband      = 1e12
)

// applyMatch validates and applies what a stream subscribes to: eventTypes, properties, filter,
// deadband and changeOnly. It runs last in streamBody.apply, on a def that already holds the
// other fields, so it can check the stream as a whole.
func (b *streamBody) applyMatch(def *stream.Stream, create bool) *web.Error {
	if werr := b.applyEventKeys(def); werr != nil {
		return werr
	}
	if b.Filter != nil {
		if werr := checkFilter(*b.Filter); werr != nil {
			return werr
		}
		def.Filter = *b.Filter
	}
	if b.Deadband != nil {
		d := *b.Deadband
		if math.IsNaN(d) || d < 0 || d > maxDeadband {
			return web.BadRequest("deadband", "must be a number from 0 to %g", maxDeadband)
		}
		def.Deadband = &d
	}
	set(&def.ChangeOnly, b.ChangeOnly)
	if def.Type == proto.TypeEventStream {
		if len(def.EventTypes) == 0 && def.Filter == "" {
			return web.BadRequest("eventTypes", "an event-stream needs eventTypes or a filter")
		}
		if create && b.Format == nil {
			def.Format = proto.FormatEnvelope
		}
	}
	return nil
}

// applyEventKeys validates and applies the options only event-streams have: eventTypes and
// properties.
func (b *streamBody) applyEventKeys(def *stream.Stream) *web.Error {
	eventOnly := func(field string) *web.Error {
		return web.BadRequest(field, "applies only to event-streams (?type=event-stream)")
	}
	if b.EventTypes != nil {
		if def.Type != proto.TypeEventStream {
			return eventOnly("eventTypes")
		}
		types, werr := checkEventTypes(*b.EventTypes)
		if werr != nil {
			return werr
		}
		def.EventTypes = types
	}
	if b.Properties != nil {
		if def.Type != proto.TypeEventStream {
			return eventOnly("properties")
		}
		props, werr := checkProperties(*b.Properties)
		if werr != nil {
			return werr
		}
		def.Properties = props
	}
	return nil
}

// checkFilter compiles a filter ("" is none), answering a 400 with the compiler's message.
func checkFilter(filter string) *web.Error {
	if filter == "" {
		return nil
	}
	if _, err := match.CompileFilter(filter); err != nil {
		msg := err.Error()
		if errors.Is(err, match.ErrInvalidFilter) {
			msg = strings.TrimPrefix(msg, match.ErrInvalidFilter.Error()+": ")
		}
		return web.BadRequest("filter", "%s", msg)
	}
	return nil
}

// checkEventTypes validates event types: single subject tokens, or a prefix ending in "*"
// ("asset_*"; "*" alone is every type), without duplicates.
func checkEventTypes(types []string) ([]string, *web.Error) {
	if len(types) == 0 {
		return nil, web.BadRequest("eventTypes", "must be a non-empty array of event types")
	}
	if len(types) > maxEventTypes {
		return nil, web.BadRequest("eventTypes", "has %d entries; at most %d are allowed", len(types), maxEventTypes)
	}
	seen := make(map[string]struct{}, len(types))
	for i, t := range types {
		field := fmt.Sprintf("eventTypes[%d]", i)
		prefix, wild := strings.CutSuffix(t, "*")
		if !(wild && prefix == "") && !proto.ValidToken(prefix) {
			return nil, web.BadRequest(field, "%q is not an event type (1-128 of A-Z a-z 0-9 - _ : @ ~ + = %%, optionally ending in *)", clip(t))
		}
		if _, dup := seen[t]; dup {
			return nil, web.BadRequest(field, "duplicate event type %q", t)
		}
		seen[t] = struct{}{}
	}
	return slices.Clone(types), nil
}

// checkProperties validates properties: per event type (a token), 1 to maxPropertyKeys keys.
func checkProperties(props map[string][]string) (map[string][]string, *web.Error) {
	if len(props) > maxPropertyTypes {
		return nil, web.BadRequest("properties", "has %d event types; at most %d are allowed", len(props), maxPropertyTypes)
	}
	out := make(map[string][]string, len(props))
	for typ, keys := range props {
		field := "properties." + clip(typ)
		if !proto.ValidToken(typ) {
			return nil, web.BadRequest(field, "%q is not an event type", clip(typ))
		}
		if len(keys) == 0 || len(keys) > maxPropertyKeys {
			return nil, web.BadRequest(field, "must list 1 to %d keys", maxPropertyKeys)
		}
		for i, k := range keys {
			if k == "" || len(k) > maxPropertyLen || !strings.ContainsFunc(k, func(r rune) bool { return r > ' ' }) {
				return nil, web.BadRequest(fmt.Sprintf("%s[%d]", field, i), "must be a key of 1 to %d characters", maxPropertyLen)
			}
		}
		out[typ] = slices.Clone(keys)
	}
	if len(out) == 0 {
		return nil, nil
	}
	return out, nil
}
