package ingest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
)

var errMsgpack = errors.New("malformed msgpack")

// checkMsgpack walks one msgpack value without recursion before the decoder sees it: the value
// must fill data exactly (so every declared length is backed by bytes, and a declared count of
// four billion allocates nothing), nest at most MaxDepth deep (the decoder recurses once per
// level, and a 1 MiB payload of nested one-element arrays would overflow the stack — a fatal
// error, not a recoverable panic), hold only valid UTF-8 in its strings (JSON would carry them
// altered, as U+FFFD), and use only strings and integers as map keys (the decoder panics on an
// array key).
func checkMsgpack(data []byte) error {
	type frame struct {
		left  uint64 // items still to read
		isMap bool   // items alternate key, value
		n     uint64 // items read so far
	}
	stack := []frame{{left: 1}}
	i := 0
	need := func(n uint64) error {
		if uint64(len(data)-i) < n {
			return fmt.Errorf("%w: truncated at byte %d", errMsgpack, i)
		}
		return nil
	}
	length := func(size int) (uint64, error) {
		if err := need(uint64(size)); err != nil {
			return 0, err
		}
		var n uint64
		switch size {
		case 1:
			n = uint64(data[i])
		case 2:
			n = uint64(binary.BigEndian.Uint16(data[i:]))
		case 4:
			n = uint64(binary.BigEndian.Uint32(data[i:]))
		}
		i += size
		return n, nil
	}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.left == 0 {
			stack = stack[:len(stack)-1]
			continue
		}
		isKey := top.isMap && top.n%2 == 0
		top.left--
		top.n++
		if err := need(1); err != nil {
			return err
		}
		b := data[i]
		i++
		var skip uint64     // payload bytes after the header
		var children uint64 // items of a container
		container, isMap, keyOK, isStr := false, false, false, false
		var err error
		switch {
		case b <= 0x7f, b >= 0xe0: // fixint
			keyOK = true
		case b >= 0x80 && b <= 0x8f:
			container, isMap, children = true, true, uint64(b&0x0f)
		case b >= 0x90 && b <= 0x9f:
			container, children = true, uint64(b&0x0f)
		case b >= 0xa0 && b <= 0xbf:
			skip, keyOK, isStr = uint64(b&0x1f), true, true
		case b == 0xc0, b == 0xc2, b == 0xc3:
		case b == 0xc4, b == 0xd9:
			skip, err = length(1)
			keyOK, isStr = b == 0xd9, b == 0xd9
		case b == 0xc5, b == 0xda:
			skip, err = length(2)
			keyOK, isStr = b == 0xda, b == 0xda
		case b == 0xc6, b == 0xdb:
			skip, err = length(4)
			keyOK, isStr = b == 0xdb, b == 0xdb
		case b == 0xc7, b == 0xc8, b == 0xc9:
			skip, err = length(map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[b])
			skip++ // ext type byte
		case b == 0xca:
			skip = 4
		case b == 0xcb:
			skip = 8
		case b >= 0xcc && b <= 0xd3:
			skip, keyOK = 1<<((b-0xcc)%4), true
		case b >= 0xd4 && b <= 0xd8:
			skip = 1 + 1<<(b-0xd4)
		case b == 0xdc, b == 0xde:
			children, err = length(2)
			container, isMap = true, b == 0xde
		case b == 0xdd, b == 0xdf:
			children, err = length(4)
			container, isMap = true, b == 0xdf
		default: // 0xc1 is never used
			return fmt.Errorf("%w: invalid type byte 0x%02x at %d", errMsgpack, b, i-1)
		}
		if err != nil {
			return err
		}
		if isKey && !keyOK {
			return fmt.Errorf("%w: map key at byte %d is not a string or an integer", errMsgpack, i-1)
		}
		if container {
			if isMap {
				children *= 2 // pairs
			}
			if len(stack) > MaxDepth { // the root frame holds no container
				return fmt.Errorf("%w: nested deeper than %d levels (arrays and maps)", errMsgpack, MaxDepth)
			}
			// Every item takes at least one byte: a count the data cannot hold is rejected now.
			if children > uint64(len(data)-i) {
				return fmt.Errorf("%w: truncated at byte %d", errMsgpack, i)
			}
			stack = append(stack, frame{left: children, isMap: isMap})
			continue
		}
		if err := need(skip); err != nil {
			return err
		}
		if isStr && !utf8.Valid(data[i:i+int(skip)]) {
			return fmt.Errorf("%w: the string at byte %d is not valid UTF-8", errMsgpack, i)
		}
		i += int(skip)
	}
	if i != len(data) {
		return fmt.Errorf("%w: %d bytes of trailing data", errMsgpack, len(data)-i)
	}
	return nil
}

// msgpackContainer reports whether b begins a msgpack map or array.
func msgpackContainer(b byte) bool {
	return b >= 0x80 && b <= 0x9f || b >= 0xdc && b <= 0xdf
}

// msgpackToJSON converts a msgpack payload (a map or an array) to JSON, so that both encodings
// share one validation path.
func msgpackToJSON(data []byte) ([]byte, error) {
	if !msgpackContainer(data[0]) {
		return nil, fmt.Errorf("%w: the payload is not a map or an array (type byte 0x%02x)", errMsgpack, data[0])
	}
	if err := checkMsgpack(data); err != nil {
		return nil, err
	}
	var v any
	dec := msgpack.NewDecoder(bytes.NewReader(data))
	dec.SetMapDecoder(func(d *msgpack.Decoder) (any, error) { return d.DecodeUntypedMap() })
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", errMsgpack, err)
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// jsonable turns decoded msgpack into values JSON encodes as they are: maps with string keys,
// times as RFC 3339; it refuses NaN and infinities, which JSON cannot hold.
func jsonable(v any) (any, error) {
	var err error
	switch x := v.(type) {
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, val := range x {
			if m[fmt.Sprint(k)], err = jsonable(val); err != nil {
				return nil, err
			}
		}
		return m, nil
	case map[string]any:
		for k, val := range x {
			if x[k], err = jsonable(val); err != nil {
				return nil, err
			}
		}
	case []any:
		for i := range x {
			if x[i], err = jsonable(x[i]); err != nil {
				return nil, err
			}
		}
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("a number is %v: NaN and Infinity are not taken", x)
		}
	case float32:
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("a number is %v: NaN and Infinity are not taken", f)
		}
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano), nil
	}
	return v, nil
}
