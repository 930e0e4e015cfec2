package ingest

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// maxMsgpackDepth bounds the nesting of a msgpack payload. The msgpack decoder recurses once per
// level, and a 1 MiB payload of nested one-element arrays would otherwise overflow the stack —
// a fatal error, not a recoverable panic.
const maxMsgpackDepth = 100

var errMsgpack = errors.New("malformed msgpack")

// checkMsgpack walks one msgpack value without recursion before the decoder sees it: the value
// must fill data exactly (so every declared length is backed by bytes, and a declared count of
// four billion allocates nothing), nest at most maxMsgpackDepth deep, and use only strings and
// integers as map keys (the decoder panics on an array key).
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
		container, isMap, keyOK := false, false, false
		var err error
		switch {
		case b <= 0x7f, b >= 0xe0: // fixint
			keyOK = true
		case b >= 0x80 && b <= 0x8f:
			container, isMap, children = true, true, uint64(b&0x0f)
		case b >= 0x90 && b <= 0x9f:
			container, children = true, uint64(b&0x0f)
		case b >= 0xa0 && b <= 0xbf:
			skip, keyOK = uint64(b&0x1f), true
		case b == 0xc0, b == 0xc2, b == 0xc3:
		case b == 0xc4, b == 0xd9:
			skip, err = length(1)
			keyOK = b == 0xd9
		case b == 0xc5, b == 0xda:
			skip, err = length(2)
			keyOK = b == 0xda
		case b == 0xc6, b == 0xdb:
			skip, err = length(4)
			keyOK = b == 0xdb
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
			if len(stack) >= maxMsgpackDepth {
				return fmt.Errorf("%w: nested deeper than %d levels", errMsgpack, maxMsgpackDepth)
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
		i += int(skip)
	}
	if i != len(data) {
		return fmt.Errorf("%w: %d bytes of trailing data", errMsgpack, len(data)-i)
	}
	return nil
}
