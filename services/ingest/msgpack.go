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
	w := &msgpackWalk{data: data, stack: []msgpackFrame{{left: 1}}}
	for len(w.stack) > 0 {
		if err := w.step(); err != nil {
			return err
		}
	}
	if w.i != len(data) {
		return fmt.Errorf("%w: %d bytes of trailing data", errMsgpack, len(data)-w.i)
	}
	return nil
}

// msgpackWalk is checkMsgpack's position in data and the containers it is inside.
type msgpackWalk struct {
	data  []byte
	i     int // the next byte to read
	stack []msgpackFrame
}

// msgpackFrame is a container being walked (the root frame stands for the top-level value).
type msgpackFrame struct {
	left  uint64 // items still to read
	isMap bool   // items alternate key, value
	n     uint64 // items read so far
}

// msgpackItem is what the type byte of one value declares.
type msgpackItem struct {
	skip      uint64 // payload bytes after the header
	children  uint64 // items of a container (pairs of a map)
	container bool
	isMap     bool
	keyOK     bool // may be a map key (a string or an integer)
	isStr     bool
}

// step reads the next value of the innermost container, or leaves the container when it has
// none left.
func (w *msgpackWalk) step() error {
	top := &w.stack[len(w.stack)-1]
	if top.left == 0 {
		w.stack = w.stack[:len(w.stack)-1]
		return nil
	}
	isKey := top.isMap && top.n%2 == 0
	top.left--
	top.n++
	if err := w.need(1); err != nil {
		return err
	}
	b := w.data[w.i]
	w.i++
	it, ok := fixedItem(b)
	if !ok {
		var err error
		if it, err = w.sizedItem(b); err != nil {
			return err
		}
	}
	if isKey && !it.keyOK {
		return fmt.Errorf("%w: map key at byte %d is not a string or an integer", errMsgpack, w.i-1)
	}
	if it.container {
		return w.enter(it)
	}
	return w.skipPayload(it)
}

// fixedItem decodes a type byte that carries no length field; ok is false for one that does.
func fixedItem(b byte) (it msgpackItem, ok bool) {
	switch {
	case b <= 0x7f, b >= 0xe0: // fixint
		it.keyOK = true
	case b >= 0x80 && b <= 0x8f: // fixmap
		it.container, it.isMap, it.children = true, true, uint64(b&0x0f)
	case b >= 0x90 && b <= 0x9f: // fixarray
		it.container, it.children = true, uint64(b&0x0f)
	case b >= 0xa0 && b <= 0xbf: // fixstr
		it.skip, it.keyOK, it.isStr = uint64(b&0x1f), true, true
	case b == 0xc0, b == 0xc2, b == 0xc3: // nil, false, true
	case b == 0xca: // float 32
		it.skip = 4
	case b == 0xcb: // float 64
		it.skip = 8
	case b >= 0xcc && b <= 0xd3: // uint and int 8 to 64
		it.skip, it.keyOK = 1<<((b-0xcc)%4), true
	case b >= 0xd4 && b <= 0xd8: // fixext
		it.skip = 1 + 1<<(b-0xd4)
	default:
		return it, false
	}
	return it, true
}

// sizedItem decodes a type byte followed by a length (of a payload or of a container's items),
// reading the length.
func (w *msgpackWalk) sizedItem(b byte) (it msgpackItem, err error) {
	switch b {
	case 0xc4, 0xd9: // bin 8, str 8
		it.skip, err = w.length(1)
		it.keyOK, it.isStr = b == 0xd9, b == 0xd9
	case 0xc5, 0xda: // bin 16, str 16
		it.skip, err = w.length(2)
		it.keyOK, it.isStr = b == 0xda, b == 0xda
	case 0xc6, 0xdb: // bin 32, str 32
		it.skip, err = w.length(4)
		it.keyOK, it.isStr = b == 0xdb, b == 0xdb
	case 0xc7, 0xc8, 0xc9: // ext 8, 16, 32
		it.skip, err = w.length(map[byte]int{0xc7: 1, 0xc8: 2, 0xc9: 4}[b])
		it.skip++ // ext type byte
	case 0xdc, 0xde: // array 16, map 16
		it.children, err = w.length(2)
		it.container, it.isMap = true, b == 0xde
	case 0xdd, 0xdf: // array 32, map 32
		it.children, err = w.length(4)
		it.container, it.isMap = true, b == 0xdf
	default: // 0xc1 is never used
		return it, fmt.Errorf("%w: invalid type byte 0x%02x at %d", errMsgpack, b, w.i-1)
	}
	return it, err
}

// need fails unless n more bytes follow.
func (w *msgpackWalk) need(n uint64) error {
	if uint64(len(w.data)-w.i) < n {
		return fmt.Errorf("%w: truncated at byte %d", errMsgpack, w.i)
	}
	return nil
}

// length reads a big-endian length field of size bytes (1, 2 or 4).
func (w *msgpackWalk) length(size int) (uint64, error) {
	if err := w.need(uint64(size)); err != nil {
		return 0, err
	}
	var n uint64
	switch size {
	case 1:
		n = uint64(w.data[w.i])
	case 2:
		n = uint64(binary.BigEndian.Uint16(w.data[w.i:]))
	case 4:
		n = uint64(binary.BigEndian.Uint32(w.data[w.i:]))
	}
	w.i += size
	return n, nil
}

// enter starts walking the items of a container.
func (w *msgpackWalk) enter(it msgpackItem) error {
	if it.isMap {
		it.children *= 2 // pairs
	}
	if len(w.stack) > MaxDepth { // the root frame holds no container
		return fmt.Errorf("%w: nested deeper than %d levels (arrays and maps)", errMsgpack, MaxDepth)
	}
	// Every item takes at least one byte: a count the data cannot hold is rejected now.
	if it.children > uint64(len(w.data)-w.i) {
		return fmt.Errorf("%w: truncated at byte %d", errMsgpack, w.i)
	}
	w.stack = append(w.stack, msgpackFrame{left: it.children, isMap: it.isMap})
	return nil
}

// skipPayload passes over a scalar's payload, checking that a string is valid UTF-8.
func (w *msgpackWalk) skipPayload(it msgpackItem) error {
	if err := w.need(it.skip); err != nil {
		return err
	}
	if it.isStr && !utf8.Valid(w.data[w.i:w.i+int(it.skip)]) {
		return fmt.Errorf("%w: the string at byte %d is not valid UTF-8", errMsgpack, w.i)
	}
	w.i += int(it.skip)
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
