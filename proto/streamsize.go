package proto

import "github.com/vmihailenco/msgpack/v5"

// StreamSize is a StreamDef read for what it costs: its partition and how many point ids it
// has, decoded without allocating the point ids (a stream has up to 1,000). Unmarshal a
// BucketStreams value into it.
type StreamSize struct {
	Partition string     `msgpack:"p"`
	Points    PointCount `msgpack:"pids,omitempty"`
}

// PointCount decodes a msgpack array of point ids into its length.
type PointCount int

// DecodeMsgpack implements msgpack.CustomDecoder: it reads the array's length and skips its
// elements.
func (c *PointCount) DecodeMsgpack(d *msgpack.Decoder) error {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return err
	}
	for range n {
		if err := d.Skip(); err != nil {
			return err
		}
	}
	*c = PointCount(max(n, 0))
	return nil
}
