package api

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	graphql "github.com/graph-gophers/graphql-go"

	"hookstream/pkg/auth"
	"hookstream/pkg/web"
)

// Seed 002's GraphQL API at /graphql, an adapter over the native streams: a webhook target is
// an event-stream whose filter is the target's jsonPathExpression (seed002_resolvers.go). The
// partition is the token's one partition, or ?partition= (which the token must allow). Queries
// need streams:read, mutations streams:write; authentication and partition faults are HTTP
// errors like every other route, everything past them (validation, unknown ids, a missing
// scope for a mutation) is in the GraphQL "errors" array of a 200 answer.

//go:embed seed002_schema.graphql
var seed002Schema string

const maxGraphQLQuery = 64 << 10

func (s *Service) seed002Routes(mux *http.ServeMux) {
	schema := graphql.MustParseSchema(seed002Schema, &gqlRoot{s: s},
		graphql.UseFieldResolvers(), graphql.MaxDepth(12), graphql.MaxQueryLength(maxGraphQLQuery))
	h := s.guardWith(auth.ScopeStreamsRead, graphqlPartition, s.serveGraphQL(schema))
	mux.HandleFunc("POST /graphql", h)
	mux.HandleFunc("GET /graphql", h)
}

// graphqlPartition is ?partition= when given, else the token's one partition.
func graphqlPartition(_ http.ResponseWriter, r *http.Request, claims *auth.Claims) (string, error) {
	if p := r.URL.Query().Get("partition"); p != "" {
		return p, nil
	}
	own := slices.DeleteFunc(slices.Clone(claims.Partitions), func(p string) bool { return p == "*" })
	if len(own) != 1 || slices.Contains(claims.Partitions, "*") {
		return "", web.BadRequest("partition", "is required (?partition=): the token is valid for more than one partition")
	}
	return own[0], nil
}

// gqlRequest is what the resolvers need of the HTTP request.
type gqlRequest struct {
	w         http.ResponseWriter
	r         *http.Request
	partition string
	claims    *auth.Claims
}

type gqlKey struct{}

func gqlRequestOf(ctx context.Context) *gqlRequest { return ctx.Value(gqlKey{}).(*gqlRequest) }

// graphqlParams is a GraphQL request (POST JSON body, or GET's query parameters).
type graphqlParams struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName"`
	Variables     map[string]any `json:"variables"`
}

func (s *Service) serveGraphQL(schema *graphql.Schema) handler {
	return func(w http.ResponseWriter, r *http.Request, partition string) error {
		p, err := readGraphQL(w, r)
		if err != nil {
			return err
		}
		claims, err := web.Authenticate(s.cfg.Verifier, r) // guardWith checked it; the resolvers check scopes
		if err != nil {
			return err
		}
		ctx := context.WithValue(r.Context(), gqlKey{}, &gqlRequest{w: w, r: r, partition: partition, claims: claims})
		resp := schema.Exec(ctx, p.Query, p.OperationName, p.Variables)
		for _, e := range resp.Errors {
			if e.ResolverError != nil && !isClientError(e.ResolverError) {
				s.log.Error("graphql resolver failed", "partition", partition, "error", e.ResolverError.Error())
				e.Message = "internal error"
			}
		}
		web.WriteJSON(w, http.StatusOK, resp)
		return nil
	}
}

func readGraphQL(w http.ResponseWriter, r *http.Request) (graphqlParams, error) {
	var p graphqlParams
	if r.Method == http.MethodGet {
		q := r.URL.Query()
		p.Query, p.OperationName = q.Get("query"), q.Get("operationName")
		if v := q.Get("variables"); v != "" {
			if err := json.Unmarshal([]byte(v), &p.Variables); err != nil {
				return p, web.BadRequest("variables", "must be a JSON object")
			}
		}
	} else {
		b, err := web.ReadBody(w, r)
		if err != nil {
			return p, err
		}
		if err := json.Unmarshal(b, &p); err != nil {
			return p, web.BadRequest("", "the body must be a JSON object {\"query\": …, \"variables\": …}: %v", err)
		}
	}
	if strings.TrimSpace(p.Query) == "" {
		return p, web.BadRequest("query", "is required")
	}
	return p, nil
}

// gqlError is an error in the GraphQL errors array, its code and field in "extensions".
type gqlError struct {
	msg, code, field string
}

func (e *gqlError) Error() string { return e.msg }

// Extensions is read by graphql-go into the error's "extensions".
func (e *gqlError) Extensions() map[string]any {
	x := map[string]any{"code": e.code}
	if e.field != "" {
		x["field"] = e.field
	}
	return x
}

// seed002Fields names native fields as seed 002's input paths.
var seed002Fields = map[string]string{
	"webhookUrl": "httpTarget.targetUri", "method": "httpTarget.method", "filter": "eventFilters.jsonExpressionFilter.jsonPathExpression",
	"webhookSecret": "httpTarget.hmac256", "auth": "httpTarget.auth", "auth.username": "httpTarget.auth.basic.username",
	"auth.password": "httpTarget.auth.basic.password", "status": "enabled",
}

// gqlErr turns a native error into a GraphQL one naming seed 002's field; other errors pass.
func gqlErr(err error) error {
	var we *web.Error
	if !errors.As(err, &we) {
		return err
	}
	field := we.Field
	if f, ok := seed002Fields[field]; ok {
		field = f
	} else if rest, ok := strings.CutPrefix(field, "extensions."); ok {
		field = "eventExtensions." + rest
	}
	msg := we.Message
	if field != "" {
		msg = field + ": " + msg
	}
	return &gqlError{msg: msg, code: we.Code, field: field}
}

func isClientError(err error) bool {
	var ge *gqlError
	return errors.As(err, &ge) || errors.Is(err, auth.ErrForbidden)
}

// requireWrite refuses a mutation without streams:write, or sent with GET.
func requireWrite(ctx context.Context) (*gqlRequest, error) {
	q := gqlRequestOf(ctx)
	if q.r.Method == http.MethodGet {
		return nil, &gqlError{msg: "mutations need POST", code: "method_not_allowed"}
	}
	if err := q.claims.Allow(q.partition, auth.ScopeStreamsWrite); err != nil {
		return nil, &gqlError{msg: err.Error(), code: "forbidden"}
	}
	return q, nil
}
