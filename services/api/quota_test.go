package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"hookstream/pkg/auth"
	"hookstream/pkg/quota"
	"hookstream/proto"
)

// operator is an operator's token that may set quotas.
func (a *apiTest) operator() string {
	return a.token([]string{"*"}, append(auth.AllScopes, auth.ScopeQuotasWrite)...)
}

// addUsage counts deliveries and bytes in partition p's current period, as delivery does.
func (a *apiTest) addUsage(p string, period string, u quota.Usage) {
	a.t.Helper()
	ctx := context.Background()
	_, ukv, err := a.svc.quotaKV(ctx)
	if err != nil {
		a.t.Fatal(err)
	}
	if err := quota.AddUsage(ctx, ukv, p, quota.Start(period, time.Now()), u); err != nil {
		a.t.Fatal(err)
	}
}

// TestUsageAndQuota: usage shows the instance defaults until an operator sets the partition's
// own limits, which replace them as a whole; a bad PUT names its field and changes nothing.
func TestUsageAndQuota(t *testing.T) {
	t.Parallel()
	a := newAPITest(t, func(c *Config) { c.Quota = quota.Limits{MaxStreams: 10, Period: quota.PeriodDay, OnExceed: quota.Hold} })
	a.createStream("p1", pointStream("http://127.0.0.1:9/h", "a", "b"))
	a.addUsage("p1", quota.PeriodDay, quota.Usage{Deliveries: 3, Bytes: 300})

	var u usageResource
	want(t, a.in("p1", "GET", "/usage", nil), http.StatusOK, "usage").json(t, &u)
	if got, want := summary(u), "p1 default day: streams 1/10, points 2/-, deliveries 3/-, bytes 300/-"; got != want {
		t.Errorf("usage with defaults: %s, want %s", got, want)
	}
	refusals := []struct {
		body  any
		field string
	}{
		{map[string]any{"period": "fortnight"}, "period"},
		{map[string]any{"onExceed": "explode"}, "onExceed"},
		{map[string]any{"maxStreams": -1}, "maxStreams"},
		{map[string]any{"maxDeliveries": -5}, "maxDeliveries"},
		{map[string]any{"maxStreams": "many"}, "maxStreams"},
		{map[string]any{"maxWidgets": 1}, "maxWidgets"},
	}
	for _, tc := range refusals {
		wantError(t, a.call("PUT", partPath("p1", "/quota"), a.operator(), tc.body), 400, tc.field, tc.field)
	}
	want(t, a.in("p1", "GET", "/usage", nil), http.StatusOK, "usage").json(t, &u)
	if u.Limits != "default" {
		t.Errorf("a refused PUT set limits: %+v", u)
	}
	want(t, a.call("PUT", partPath("p1", "/quota"), a.operator(), map[string]any{"maxDeliveries": 100, "period": "month"}),
		http.StatusOK, "put quota").json(t, &u)
	// The month's usage is counted apart from the day's; maxStreams keeps the instance default.
	if got, want := summary(u), "p1 partition month: streams 1/10, points 2/-, deliveries 0/100, bytes 0/-"; got != want {
		t.Errorf("usage after PUT: %s, want %s", got, want)
	}
	if !strings.HasSuffix(u.ResetsAt, "Z") || u.PeriodStart >= u.ResetsAt {
		t.Errorf("period %s – %s", u.PeriodStart, u.ResetsAt)
	}
}

// summary is a usage answer in one line; "-" is no limit.
func summary(u usageResource) string {
	c := func(c usageCounter) string {
		if c.Limit == nil {
			return fmt.Sprintf("%d/-", c.Used)
		}
		return fmt.Sprintf("%d/%d", c.Used, *c.Limit)
	}
	return fmt.Sprintf("%s %s %s: streams %s, points %s, deliveries %s, bytes %s", u.Partition, u.Limits, u.Period,
		c(u.Streams), c(u.StreamPoints), c(u.Deliveries), c(u.PayloadBytes))
}

// TestQuotaRefusals: past a limit, creates, added points, resends and test deliveries are
// refused with a 429 naming the limit (and Retry-After for the per-period ones); nothing is
// stored.
func TestQuotaRefusals(t *testing.T) {
	t.Parallel()
	a := newAPITest(t)
	id := a.createStream("p1", pointStream("http://127.0.0.1:9/h", "a", "b"))
	dl := a.deadLetter("p1", id, "d1")
	want(t, a.call("PUT", partPath("p1", "/quota"), a.operator(), map[string]any{"maxStreams": 1, "maxStreamPoints": 3, "maxDeliveries": 2}),
		http.StatusOK, "put quota")

	e := wantError(t, a.in("p1", "POST", "/streams", pointStream("http://127.0.0.1:9/h2")), http.StatusTooManyRequests, quota.LimitStreams, "create")
	if e.Code != "quota_exceeded" {
		t.Errorf("create past maxStreams: %+v", e)
	}
	wantError(t, a.in("p1", "PUT", "/streams/"+id+"/entities", map[string]any{"pointIds": []string{"c", "d"}}),
		http.StatusTooManyRequests, quota.LimitStreamPoints, "points")
	wantError(t, a.in("p1", "PATCH", "/streams/"+id, map[string]any{"pointIds": []string{"a", "b", "c", "d"}}),
		http.StatusTooManyRequests, quota.LimitStreamPoints, "patch points")
	want(t, a.in("p1", "PUT", "/streams/"+id+"/entities", map[string]any{"pointIds": []string{"c"}}), http.StatusOK, "one point more fits")
	if d := a.stored("p1", id); len(d.PointIDs) != 3 {
		t.Errorf("points after the refusals: %v", d.PointIDs)
	}

	a.addUsage("p1", quota.PeriodDay, quota.Usage{Deliveries: 2})
	for _, r := range []reply{
		a.in("p1", "POST", "/dead-letters/resend", map[string]any{"ids": []string{dl}}),
		a.in("p1", "POST", "/streams/"+id+"/test", nil),
	} {
		want(t, r, http.StatusTooManyRequests, "past maxDeliveries")
		if e := r.err(t); e.Field != quota.LimitDeliveries {
			t.Errorf("refusal names %q: %s", e.Field, r)
		}
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 86400 {
			t.Errorf("Retry-After %q", r.header.Get("Retry-After"))
		}
	}
	if n := len(a.subjectMsgs(proto.StreamOutbox, proto.OutboxSubject("p1", id))); n != 0 {
		t.Errorf("a refused resend stored %d deliveries", n)
	}
}
