package api

import (
	"math/big"
	"strings"

	"github.com/google/uuid"
)

// Seed 002 names webhook targets "WHSUB" and 22 base58 characters. A target's id is "WHSUB" and
// the base58 (Bitcoin alphabet) of its stream's 16-byte UUID, left-padded with '1' (zero) to 22
// characters: the mapping is computed both ways, nothing is stored, and a stream made by any
// API has its seed 002 id from the start.

const (
	targetIDPrefix = "WHSUB"
	base58Alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
	base58Len      = 22 // 58^22 > 2^128
)

// targetID is the seed 002 id of a stream; a stream id that is not a UUID (none is made so)
// keeps its own id after the prefix.
func targetID(streamID string) string {
	u, err := uuid.Parse(streamID)
	if err != nil {
		return targetIDPrefix + "_" + streamID
	}
	n := new(big.Int).SetBytes(u[:])
	base := big.NewInt(58)
	mod := new(big.Int)
	out := make([]byte, base58Len)
	for i := base58Len - 1; i >= 0; i-- {
		n.DivMod(n, base, mod)
		out[i] = base58Alphabet[mod.Int64()]
	}
	return targetIDPrefix + string(out)
}

// streamIDOf is the stream id a seed 002 id names; ok is false for an id no stream can have.
func streamIDOf(id string) (string, bool) {
	rest, ok := strings.CutPrefix(id, targetIDPrefix)
	if !ok {
		return "", false
	}
	if raw, ok := strings.CutPrefix(rest, "_"); ok {
		return raw, raw != ""
	}
	if len(rest) != base58Len {
		return "", false
	}
	n := new(big.Int)
	base := big.NewInt(58)
	for i := 0; i < len(rest); i++ {
		d := strings.IndexByte(base58Alphabet, rest[i])
		if d < 0 {
			return "", false
		}
		n.Mul(n, base).Add(n, big.NewInt(int64(d)))
	}
	if n.BitLen() > 128 {
		return "", false
	}
	var u uuid.UUID
	n.FillBytes(u[:])
	return u.String(), true
}
