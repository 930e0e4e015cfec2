package match

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// identityKeys are kept beside the selected keys of an object, so that a projected entity still
// says which entity it is (seed 004: {"asset": {"id", "href", "status"}}).
var identityKeys = map[string]bool{"id": true, "href": true}

// codeFiltered are seed 004's event types whose `properties` list event type codes rather than
// keys: the event (content.event.type.code) is selected by its code and delivered whole.
var codeFiltered = map[string]bool{"event_created": true, "event_document_created": true}

// Project keeps, of an event's JSON data, the parts named in keys, and reports whether any key
// was found. It implements seed 004's `properties`:
//
//   - an object member whose name is in keys is kept whole, at any depth
//     (asset_updated: {"asset": {"status": …}} for ["status"]);
//   - an array element that is an object whose "key" member names one of keys is kept whole
//     (asset_values_created: "values": [{"key": "pressure", …}] for ["pressure"]);
//   - the objects and arrays that lead to a kept part are kept, with only those parts and their
//     "id" and "href" members; everything else is dropped;
//   - the entities at the top of the data (content.asset, content.instrumentation) are kept as
//     their "id" and "href", so the receiver knows what the kept values belong to.
//
// Members keep the producer's order and numbers their exact text: the output is the input with
// parts removed. When nothing is found the event is not delivered: seed 004 notifies an
// asset_updated only when one of the listed attributes is part of the change.
func Project(raw json.RawMessage, keys map[string]struct{}) (json.RawMessage, bool) {
	out, found, err := project(raw, keys, true)
	if err != nil || !found {
		return nil, false
	}
	var b bytes.Buffer
	if err := json.Compact(&b, out); err != nil {
		return nil, false
	}
	return b.Bytes(), true
}

func project(raw json.RawMessage, keys map[string]struct{}, top bool) (json.RawMessage, bool, error) {
	switch firstByte(raw) {
	case '{':
		return projectObject(raw, keys, top)
	case '[':
		return projectArray(raw, keys)
	}
	return nil, false, nil
}

type member struct {
	key string
	val json.RawMessage
}

func projectObject(raw json.RawMessage, keys map[string]struct{}, top bool) (json.RawMessage, bool, error) {
	members, err := objectMembers(raw)
	if err != nil {
		return nil, false, err
	}
	kept := make([]json.RawMessage, len(members))
	found := false
	for i, m := range members {
		if _, ok := keys[m.key]; ok {
			kept[i], found = m.val, true
			continue
		}
		pv, ok, err := project(m.val, keys, false)
		if err != nil {
			return nil, false, err
		}
		if ok {
			kept[i], found = pv, true
		}
	}
	if !found {
		return nil, false, nil
	}
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for i, m := range members {
		v := kept[i]
		switch {
		case v != nil:
		case identityKeys[m.key]:
			v = m.val
		case top && firstByte(m.val) == '{':
			if v, err = identity(m.val); err != nil {
				return nil, false, err
			}
		}
		if v == nil {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		writeMember(&b, m.key, v)
	}
	b.WriteByte('}')
	return b.Bytes(), true, nil
}

// identity is an object reduced to its "id" and "href" (nil when it has neither).
func identity(raw json.RawMessage) (json.RawMessage, error) {
	members, err := objectMembers(raw)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	n := 0
	for _, m := range members {
		if !identityKeys[m.key] {
			continue
		}
		sep(&b, n, '{')
		n++
		writeMember(&b, m.key, m.val)
	}
	if n == 0 {
		return nil, nil
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func projectArray(raw json.RawMessage, keys map[string]struct{}) (json.RawMessage, bool, error) {
	elems, err := arrayElements(raw)
	if err != nil {
		return nil, false, err
	}
	var b bytes.Buffer
	n := 0
	for _, el := range elems {
		v := el
		if !keyedElement(el, keys) {
			pv, ok, err := project(el, keys, false)
			if err != nil {
				return nil, false, err
			}
			if !ok {
				continue
			}
			v = pv
		}
		sep(&b, n, '[')
		n++
		b.Write(v)
	}
	if n == 0 {
		return nil, false, nil
	}
	b.WriteByte(']')
	return b.Bytes(), true, nil
}

// keyedElement reports whether an array element is an object whose "key" member is in keys.
func keyedElement(el json.RawMessage, keys map[string]struct{}) bool {
	if firstByte(el) != '{' {
		return false
	}
	var k struct {
		Key *string `json:"key"`
	}
	if json.Unmarshal(el, &k) != nil || k.Key == nil {
		return false
	}
	_, ok := keys[*k.Key]
	return ok
}

// MatchesCode reports whether a code-filtered event (event_created, event_document_created) has
// one of the listed type codes at event.type.code; an event without a code matches none.
func MatchesCode(raw json.RawMessage, codes map[string]struct{}) bool {
	var d struct {
		Event struct {
			Type struct {
				Code string `json:"code"`
			} `json:"type"`
		} `json:"event"`
	}
	if json.Unmarshal(raw, &d) != nil || d.Event.Type.Code == "" {
		return false
	}
	_, ok := codes[d.Event.Type.Code]
	return ok
}

// sep opens a container before its first part and separates the later ones.
func sep(b *bytes.Buffer, n int, open byte) {
	if n == 0 {
		b.WriteByte(open)
		return
	}
	b.WriteByte(',')
}

func writeMember(b *bytes.Buffer, key string, val json.RawMessage) {
	k, _ := json.Marshal(key) // a string always marshals
	b.Write(k)
	b.WriteByte(':')
	b.Write(val)
}

func firstByte(raw json.RawMessage) byte {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c
	}
	return 0
}

// objectMembers splits a JSON object into its members, in the order written.
func objectMembers(raw json.RawMessage) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("object: %w", err)
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("object key: %w", err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("object member %q: %w", key, err)
		}
		out = append(out, member{key, v})
	}
	return out, closeToken(dec)
}

// arrayElements splits a JSON array into its elements.
func arrayElements(raw json.RawMessage) ([]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("array: %w", err)
	}
	var out []json.RawMessage
	for dec.More() {
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("array element: %w", err)
		}
		out = append(out, v)
	}
	return out, closeToken(dec)
}

func closeToken(dec *json.Decoder) error {
	if _, err := dec.Token(); err != nil && err != io.EOF {
		return fmt.Errorf("closing delimiter: %w", err)
	}
	return nil
}
