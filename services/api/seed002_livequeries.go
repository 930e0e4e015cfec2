package api

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/graph-gophers/graphql-go"

	"hookstream/pkg/web"
)

// Live queries in GraphQL: the native store (livequeries.go) under seed 002's conventions.

type (
	gqlLiveQuery struct {
		ID          graphql.ID
		Name        *string
		Query       string
		CreatedAt   string
		LastResult  *string
		EvaluatedAt *string
	}
	gqlLiveQueryPayload struct {
		LiveQuery *gqlLiveQuery
	}
	liveQueryInput struct {
		ID    *graphql.ID
		Name  *string
		Query string
	}
)

// LiveQueries lists the partition's live queries.
func (g *gqlRoot) LiveQueries(ctx context.Context) ([]*gqlLiveQuery, error) {
	qs, err := g.s.live.List(ctx, gqlRequestOf(ctx).partition)
	if err != nil {
		return nil, gqlErr(err)
	}
	out := make([]*gqlLiveQuery, 0, len(qs))
	for i := range qs {
		out = append(out, liveQueryOf(&qs[i]))
	}
	return out, nil
}

// LiveQuery is one live query, or null.
func (g *gqlRoot) LiveQuery(ctx context.Context, args struct{ ID graphql.ID }) (*gqlLiveQuery, error) {
	q, err := g.s.live.Get(ctx, gqlRequestOf(ctx).partition, string(args.ID))
	var we *web.Error
	if errors.As(err, &we) && (we.Status == http.StatusNotFound || we.Status == http.StatusBadRequest) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return liveQueryOf(q), nil
}

// CreateLiveQuery compiles and stores a live query.
func (g *gqlRoot) CreateLiveQuery(ctx context.Context, args struct {
	Input struct{ LiveQuery liveQueryInput }
}) (*gqlLiveQueryPayload, error) {
	q, err := requireWrite(ctx)
	if err != nil {
		return nil, err
	}
	in := args.Input.LiveQuery
	native := LiveQueryInput{Query: in.Query}
	if in.ID != nil {
		native.ID = string(*in.ID)
	}
	if in.Name != nil {
		native.Name = *in.Name
	}
	lq, err := g.s.live.Create(ctx, q.partition, native, q.claims.Subject)
	if err != nil {
		return nil, gqlErr(err)
	}
	g.s.log.Info("live query created", "partition", q.partition, "live_query_id", lq.ID, "api", "graphql")
	return &gqlLiveQueryPayload{LiveQuery: liveQueryOf(lq)}, nil
}

// DeleteLiveQuery deletes a live query.
func (g *gqlRoot) DeleteLiveQuery(ctx context.Context, args struct{ Input struct{ ID graphql.ID } }) (*gqlDeleted, error) {
	q, err := requireWrite(ctx)
	if err != nil {
		return nil, err
	}
	if err := g.s.live.Delete(ctx, q.partition, string(args.Input.ID)); err != nil {
		return nil, gqlErr(err)
	}
	g.s.log.Info("live query deleted", "partition", q.partition, "live_query_id", string(args.Input.ID), "api", "graphql")
	done := true
	return &gqlDeleted{Done: &done}, nil
}

func liveQueryOf(q *LiveQuery) *gqlLiveQuery {
	out := &gqlLiveQuery{ID: graphql.ID(q.ID), Query: q.Query, CreatedAt: q.CreatedAt.UTC().Format(time.RFC3339Nano)}
	if q.Name != "" {
		out.Name = &q.Name
	}
	if q.LastResult != nil {
		s := string(q.LastResult)
		out.LastResult = &s
	}
	if q.EvaluatedAt != nil {
		s := q.EvaluatedAt.UTC().Format(time.RFC3339Nano)
		out.EvaluatedAt = &s
	}
	return out
}
