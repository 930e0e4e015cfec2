package web_test

import (
	"testing"

	"hookstream/pkg/web"
)

func TestUnmarshalRejectsStrayClosers(t *testing.T) {
	for _, in := range []string{`{"a":1}}`, `{"a":1}]]]garbage`, `{"a":1} x`, `{"a":1}{}`} {
		var v struct{ A int }
		if err := web.Unmarshal([]byte(in), &v); err == nil {
			t.Errorf("Unmarshal(%q) accepted trailing data", in)
		}
	}
	var v struct{ A int }
	if err := web.Unmarshal([]byte(" {\"a\":1} \n"), &v); err != nil || v.A != 1 {
		t.Errorf("surrounding white space rejected: %v", err)
	}
}
