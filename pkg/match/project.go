package match

import (
	"bytes"
	"encoding/json"
)

// identityKeys are kept beside the selected keys of an object, so that a projected entity still
// says which entity it is (seed 004: {"asset": {"id", "href", "status"}}).
var identityKeys = [...]string{"id", "href"}

// Project keeps, of an event's JSON data, the parts named in keys, and reports whether any key
// was found. It implements seed 004's `properties`:
//
//   - an object member whose name is in keys is kept whole, at any depth
//     (asset_updated: {"asset": {"status": …}} for ["status"]);
//   - an array element that is an object whose "key" member names one of keys is kept whole
//     (asset_values_created: "values": [{"key": "pressure", …}] for ["pressure"]);
//   - the objects and arrays that lead to a kept part are kept, with only those parts and their
//     "id" and "href" members; everything else is dropped.
//
// When nothing is found the event is not delivered: seed 004 notifies an asset_updated only when
// one of the listed attributes is part of the change.
func Project(data any, keys map[string]struct{}) (any, bool) {
	switch x := data.(type) {
	case map[string]any:
		var out map[string]any
		for k, v := range x {
			if _, ok := keys[k]; ok {
				out = put(out, k, v)
				continue
			}
			if pv, ok := Project(v, keys); ok {
				out = put(out, k, pv)
			}
		}
		if out == nil {
			return nil, false
		}
		for _, k := range identityKeys {
			if v, ok := x[k]; ok {
				if _, done := out[k]; !done {
					out[k] = v
				}
			}
		}
		return out, true
	case []any:
		var out []any
		for _, el := range x {
			if m, ok := el.(map[string]any); ok {
				if name, ok := m["key"].(string); ok {
					if _, want := keys[name]; want {
						out = append(out, el)
						continue
					}
				}
			}
			if pv, ok := Project(el, keys); ok {
				out = append(out, pv)
			}
		}
		return out, out != nil
	}
	return nil, false
}

func put(m map[string]any, k string, v any) map[string]any {
	if m == nil {
		m = make(map[string]any)
	}
	m[k] = v
	return m
}

// decodeExact decodes JSON keeping numbers as json.Number, so that projected data re-encodes
// with its numbers exactly as they came (ids beyond 2^53 included).
func decodeExact(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// encode writes JSON without HTML escaping (the data is not for a browser, and "<" must stay as
// the producer sent it).
func encode(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}
