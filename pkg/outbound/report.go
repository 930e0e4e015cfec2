package outbound

import (
	"io"
	"net/url"
	"strings"
)

// ExcerptLimit is how much of an endpoint's answer hookstream keeps to show (outcomes, test
// deliveries).
const ExcerptLimit = 1024

// Excerpt reads at most ExcerptLimit bytes of a response body as valid UTF-8.
func Excerpt(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, ExcerptLimit))
	return strings.ToValidUTF8(string(b), "?")
}

// RedactURL is a webhook URL fit to show in spans and API answers: without userinfo, query and
// fragment, which may hold credentials. An unparsable URL yields "".
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	u.User, u.RawQuery, u.ForceQuery, u.Fragment, u.RawFragment = nil, "", false, "", ""
	return u.String()
}
