package matcher

import (
	"slices"
	"sync"

	"hookstream/pkg/match"
	"hookstream/pkg/stream"
	"hookstream/proto"
)

// Index finds the streams an event goes to. Per partition it keeps maps from exact point ids,
// event types, subjects and sources (the last two taken from filters such as
// "event.source == '…'") to streams, the type prefixes of wildcards ("asset_*") by prefix length,
// and a list of the streams whose filter no key can narrow. A lookup costs a few map probes, one
// per distinct prefix length, and the filters of the candidates it yields: it grows with the
// streams that can match, not with the streams of the partition. Index is safe for concurrent
// use; Apply takes a write lock, Match a read lock only while it gathers candidates.
type Index struct {
	mu      sync.RWMutex
	parts   map[string]*partIndex
	streams map[string]*entry // by proto.StreamKey
}

type entry struct {
	id     string
	stream *match.Stream
}

type partIndex struct {
	points   map[string][]*entry
	types    map[string][]*entry
	prefixes map[string][]*entry
	subjects map[string][]*entry
	sources  map[string][]*entry
	// prefixLens holds the distinct lengths of prefixes, ascending, with their use counts.
	prefixLens []int
	lenCount   map[int]int
	all        []*entry
	size       int
}

func newPartIndex() *partIndex {
	return &partIndex{
		points: map[string][]*entry{}, types: map[string][]*entry{}, prefixes: map[string][]*entry{},
		subjects: map[string][]*entry{}, sources: map[string][]*entry{}, lenCount: map[int]int{},
	}
}

// Result is one stream an event goes to, with the event as that stream receives it (its
// properties projected).
type Result struct {
	StreamID string
	Event    *proto.Event
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{parts: make(map[string]*partIndex), streams: make(map[string]*entry)}
}

// Apply indexes a stream definition, replacing its previous one; def nil removes the stream, and
// so does a disabled one (it matches nothing while disabled: nothing is kept for it). A
// definition whose filter does not compile removes the stream and returns the error (the API
// never stores one; a newer build might).
func (x *Index) Apply(partition, id string, def *stream.Stream) error {
	var e *entry
	var err error
	if def != nil && def.Status.Matches() {
		var s *match.Stream
		if s, err = match.Compile(def); err == nil {
			e = &entry{id: id, stream: s}
		}
	}
	key := proto.StreamKey(partition, id)
	x.mu.Lock()
	defer x.mu.Unlock()
	if old, ok := x.streams[key]; ok {
		p := x.parts[partition]
		p.remove(old)
		delete(x.streams, key)
		if p.size == 0 {
			delete(x.parts, partition)
		}
	}
	if e == nil {
		return err
	}
	p := x.parts[partition]
	if p == nil {
		p = newPartIndex()
		x.parts[partition] = p
	}
	p.add(e)
	x.streams[key] = e
	return nil
}

// Len returns the number of streams indexed.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.streams)
}

func (p *partIndex) bucket(k match.Key) map[string][]*entry {
	switch k.Kind {
	case match.KeyPoint:
		return p.points
	case match.KeyType:
		return p.types
	case match.KeyTypePrefix:
		return p.prefixes
	case match.KeySubject:
		return p.subjects
	case match.KeySource:
		return p.sources
	}
	return nil
}

func (p *partIndex) add(e *entry) {
	p.size++
	keys, all := e.stream.Keys()
	if all {
		p.all = append(p.all, e)
		return
	}
	for _, k := range keys {
		m := p.bucket(k)
		if k.Kind == match.KeyTypePrefix {
			if len(m[k.Value]) == 0 {
				p.addLen(len(k.Value))
			}
		}
		m[k.Value] = append(m[k.Value], e)
	}
}

func (p *partIndex) remove(e *entry) {
	p.size--
	keys, all := e.stream.Keys()
	if all {
		p.all = without(p.all, e)
		return
	}
	for _, k := range keys {
		m := p.bucket(k)
		rest := without(m[k.Value], e)
		if len(rest) == 0 {
			delete(m, k.Value)
			if k.Kind == match.KeyTypePrefix {
				p.dropLen(len(k.Value))
			}
		} else {
			m[k.Value] = rest
		}
	}
}

func (p *partIndex) addLen(n int) {
	if p.lenCount[n]++; p.lenCount[n] == 1 {
		i, _ := slices.BinarySearch(p.prefixLens, n)
		p.prefixLens = slices.Insert(p.prefixLens, i, n)
	}
}

func (p *partIndex) dropLen(n int) {
	if p.lenCount[n]--; p.lenCount[n] <= 0 {
		delete(p.lenCount, n)
		if i, ok := slices.BinarySearch(p.prefixLens, n); ok {
			p.prefixLens = slices.Delete(p.prefixLens, i, i+1)
		}
	}
}

// without returns list minus e, in a new slice so that readers holding the old one are safe.
func without(list []*entry, e *entry) []*entry {
	i := slices.Index(list, e)
	if i < 0 {
		return list
	}
	out := make([]*entry, 0, len(list)-1)
	out = append(out, list[:i]...)
	return append(out, list[i+1:]...)
}

// Match appends to out the streams the event goes to, each once, in no particular order, and
// returns it.
func (x *Index) Match(in *match.Input, out []Result) []Result {
	cands := x.candidates(in.Event)
	for _, e := range cands {
		if ev, ok := e.stream.Apply(in); ok {
			out = append(out, Result{StreamID: e.id, Event: ev})
		}
	}
	return out
}

// candidates gathers, under the read lock, the streams whose keys select the event, without
// duplicates. The lists it reads are never modified in place (Apply replaces them), so the
// entries stay valid after the lock is released.
func (x *Index) candidates(ev *proto.Event) []*entry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	p := x.parts[ev.Partition]
	if p == nil {
		return nil
	}
	var lists [8][]*entry
	n := 0
	addList := func(l []*entry) {
		if len(l) == 0 {
			return
		}
		if n < len(lists) {
			lists[n] = l
			n++
			return
		}
		lists[len(lists)-1] = append(slices.Clip(lists[len(lists)-1]), l...)
	}
	if ev.Type == proto.EventTypePoint {
		addList(p.points[ev.Subject])
	}
	addList(p.types[ev.Type])
	for _, l := range p.prefixLens {
		if l > len(ev.Type) {
			break
		}
		addList(p.prefixes[ev.Type[:l]])
	}
	addList(p.subjects[ev.Subject])
	addList(p.sources[ev.Source])
	addList(p.all)
	switch n {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	total := 0
	for _, l := range lists[:n] {
		total += len(l)
	}
	out := make([]*entry, 0, total)
	seen := make(map[*entry]struct{}, total)
	for _, l := range lists[:n] {
		for _, e := range l {
			if _, dup := seen[e]; !dup {
				seen[e] = struct{}{}
				out = append(out, e)
			}
		}
	}
	return out
}
