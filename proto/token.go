package proto

import (
	"fmt"
	"unicode/utf8"
)

// TokenRule says, for error messages, which ids ValidToken accepts.
const TokenRule = "1–128 characters of A-Z a-z 0-9 - _ : @ ~ + = %"

// TokenProblem says why ValidToken refuses s, as the end of a sentence about it ("is empty; …",
// "is 129 characters long; …", "contains '.' at position 3; …"), each naming TokenRule. It is
// "" when ValidToken accepts s.
func TokenProblem(s string) string {
	switch {
	case ValidToken(s):
		return ""
	case s == "":
		return "is empty; it must be " + TokenRule
	case len(s) > 128:
		return fmt.Sprintf("is %d characters long, over the limit of 128; it must be %s", utf8.RuneCountInString(s), TokenRule)
	}
	for i, r := range s {
		if r >= utf8.RuneSelf || !ValidToken(string(r)) {
			return fmt.Sprintf("contains %q at position %d; it must be %s", r, utf8.RuneCountInString(s[:i])+1, TokenRule)
		}
	}
	return "is not valid; it must be " + TokenRule // unreachable: every rune was valid
}
