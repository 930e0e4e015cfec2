package match

import (
	"fmt"
	"strings"

	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Selects reports whether the key selects an event.
func (k Key) Selects(ev *proto.Event) bool {
	switch k.Kind {
	case KeyPoint:
		return ev.Type == proto.EventTypePoint && ev.Subject == k.Value
	case KeyType:
		return ev.Type == k.Value
	case KeyTypePrefix:
		return strings.HasPrefix(ev.Type, k.Value)
	case KeySubject:
		return ev.Subject == k.Value
	case KeySource:
		return ev.Source == k.Value
	}
	return false
}

// Stream is a stream definition compiled for matching. It is immutable and safe for concurrent
// use.
type Stream struct {
	Def    *stream.Stream
	Filter *Filter // nil without a filter
	props  map[string]map[string]struct{}
	keys   []Key
	all    bool
	// notified: the stream names operational notification types (hookstream_…); no other stream
	// gets them, whatever its wildcards or filter.
	notified bool
}

// Compile compiles a stream definition. The only error is an invalid filter (wrapping
// ErrInvalidFilter); the API rejects those at create time, so the matcher only meets one written
// by an older or newer build.
func Compile(def *stream.Stream) (*Stream, error) {
	s := &Stream{Def: def}
	if def.Filter != "" {
		f, err := CompileFilter(def.Filter)
		if err != nil {
			return nil, err
		}
		s.Filter = f
	}
	for typ, names := range def.Properties {
		if len(names) == 0 {
			continue
		}
		set := make(map[string]struct{}, len(names))
		for _, n := range names {
			set[n] = struct{}{}
		}
		if s.props == nil {
			s.props = make(map[string]map[string]struct{})
		}
		s.props[typ] = set
	}
	s.keys, s.all = streamKeys(def, s.Filter)
	s.notified = def.WantsNotifications()
	return s, nil
}

// streamKeys decides what an index finds a stream by. Point ids and event types (the stream's
// selectors) come first; an event-stream without selectors is found by its filter's keys, or by
// every event of its partition when the filter has none. A point-stream without point ids
// matches nothing.
func streamKeys(def *stream.Stream, f *Filter) (keys []Key, all bool) {
	for _, p := range def.PointIDs {
		keys = append(keys, Key{Kind: KeyPoint, Value: p})
	}
	if def.Type == proto.TypeEventStream {
		for _, t := range def.EventTypes {
			if prefix, ok := strings.CutSuffix(t, "*"); ok {
				keys = append(keys, Key{Kind: KeyTypePrefix, Value: prefix})
			} else {
				keys = append(keys, Key{Kind: KeyType, Value: t})
			}
		}
		if len(keys) == 0 && f != nil {
			fk, keyed := f.Keys()
			if !keyed {
				return nil, true
			}
			return fk, false
		}
	}
	return keys, false
}

// Keys returns the index keys of the stream, or all true when every event of its partition is a
// candidate.
func (s *Stream) Keys() (keys []Key, all bool) { return s.keys, s.all }

// Selects reports whether the stream's keys select the event: whether an index would offer the
// stream as a candidate. Replay, which has no index, uses it.
func (s *Stream) Selects(ev *proto.Event) bool {
	if s.all {
		return true
	}
	for _, k := range s.keys {
		if k.Selects(ev) {
			return true
		}
	}
	return false
}

// Apply decides whether a candidate stream receives the event, applying its filter, change-only
// rule and property projection, in that order. It returns the event to deliver: in.Event itself,
// or a copy whose Data holds the projection.
func (s *Stream) Apply(in *Input) (*proto.Event, bool) {
	if !s.notified && strings.HasPrefix(in.Event.Type, proto.NotificationTypePrefix) {
		return nil, false
	}
	if s.Filter != nil && !s.Filter.Eval(in) {
		return nil, false
	}
	if !PassesDeadband(s.Def, in) {
		return nil, false
	}
	keys, ok := s.props[in.Event.Type]
	if !ok || in.Event.Type == proto.EventTypePoint {
		return in.Event, true
	}
	if codeFiltered[in.Event.Type] {
		return in.Event, MatchesCode(in.Event.Data, keys)
	}
	projected, found := Project(in.Event.Data, keys)
	if !found {
		return nil, false
	}
	ev := *in.Event
	ev.Data = projected
	return &ev, true
}

// Match is Selects followed by Apply: the whole decision for one stream and one event.
func (s *Stream) Match(in *Input) (*proto.Event, bool) {
	if !s.Selects(in.Event) {
		return nil, false
	}
	return s.Apply(in)
}

// String describes the stream for logs.
func (s *Stream) String() string {
	return fmt.Sprintf("%s/%s", s.Def.Partition, s.Def.ID)
}
