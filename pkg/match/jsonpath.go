package match

import (
	"fmt"
	"strings"
)

// IsJSONPath reports whether a filter is in seed 002's JSONPath style: it refers to the event as
// "@" (or "$"), which CEL never uses outside string literals.
func IsJSONPath(expr string) bool {
	found := false
	_ = scan(expr, func(c byte, inString bool) {
		if !inString && (c == '@' || c == '$') {
			found = true
		}
	})
	return found
}

// TranslateJSONPath turns a seed 002 JSONPath-style filter into CEL over the same event:
//
//	@.source == '//hookstream/partitions/p1/points/PNT1'  →  event.source == '//hookstream/partitions/p1/points/PNT1'
//
// "@" and "$" become "event"; a "$[?( … )]" or "?( … )" wrapper is removed; string literals
// (single or double quoted), comparisons, !, && , || and parentheses are kept as they are, being
// the same in both languages. Regular-expression matches (=~) are not supported: use CEL's
// matches() instead. Errors wrap ErrInvalidFilter.
func TranslateJSONPath(expr string) (string, error) {
	s := strings.TrimSpace(expr)
	for _, w := range [][2]string{{"$[?(", ")]"}, {"[?(", ")]"}, {"?(", ")"}} {
		if strings.HasPrefix(s, w[0]) && strings.HasSuffix(s, w[1]) && len(s) >= len(w[0])+len(w[1]) {
			s = strings.TrimSpace(s[len(w[0]) : len(s)-len(w[1])])
			break
		}
	}
	if s == "" {
		return "", fmt.Errorf("%w: empty JSONPath expression", ErrInvalidFilter)
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\'', '"':
			end, err := stringEnd(s, i)
			if err != nil {
				return "", err
			}
			b.WriteString(s[i : end+1])
			i = end
		case '@', '$':
			next := byte(0)
			if i+1 < len(s) {
				next = s[i+1]
			}
			if next != '.' && next != '[' {
				return "", fmt.Errorf("%w: %q at offset %d must be followed by '.' or '['", ErrInvalidFilter, c, i)
			}
			b.WriteString("event")
		case '=':
			if i+1 < len(s) && s[i+1] == '~' {
				return "", fmt.Errorf("%w: the regular-expression operator =~ is not supported; use CEL: event.source.matches('…')", ErrInvalidFilter)
			}
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// stringEnd returns the index of the quote that closes the string literal opening at s[i].
func stringEnd(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			j++
		case q:
			return j, nil
		}
	}
	return 0, fmt.Errorf("%w: unterminated string literal at offset %d", ErrInvalidFilter, i)
}

// scan calls fn for every byte of s, telling whether it lies inside a string literal.
func scan(s string, fn func(c byte, inString bool)) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\'' || c == '"' {
			end, err := stringEnd(s, i)
			if err != nil {
				for ; i < len(s); i++ {
					fn(s[i], true)
				}
				return err
			}
			for ; i <= end; i++ {
				fn(s[i], true)
			}
			i = end
			continue
		}
		fn(c, false)
	}
	return nil
}
