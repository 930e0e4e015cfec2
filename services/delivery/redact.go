package delivery

import (
	"hookstream/pkg/outbound"
	"hookstream/pkg/stream"
)

// redactAuth removes from an attempt's result the outbound credential the attempt sent, which
// an endpoint may echo in its answer (see outbound.RedactAuth).
func redactAuth(res result, def *stream.Stream, headers map[string]string) result {
	res.excerpt = outbound.RedactAuth(res.excerpt, def, headers)
	return res
}
