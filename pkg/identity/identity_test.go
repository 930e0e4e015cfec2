package identity_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
	"hookstream/pkg/identity"
	"hookstream/proto"
)

// seed002 is seed 002's identity: time series under org/, live queries under orgs/.
var seed002 = identity.Identity{
	OrgID:                   "ORGUmvDdxfFU7UBvJ8Msx2A6J",
	PointSourceTemplate:     "//com.mapped/org/{org}/timeseries/point/{pointId}",
	LiveQuerySourceTemplate: "//com.mapped/orgs/{org}/liveQueries/{liveQueryId}",
	PointTypeName:           "com.mapped.timeseries.point.record.v1",
}

func TestRender(t *testing.T) {
	var none *identity.Identity
	tests := []struct {
		name           string
		id             *identity.Identity
		point, lq, typ string
	}{
		{"none", none, "//hookstream/partitions/p1/points/PNT1", "//hookstream/partitions/p1/liveQueries/LVQ1", identity.DefaultPointType},
		{"empty", &identity.Identity{}, "//hookstream/partitions/p1/points/PNT1", "//hookstream/partitions/p1/liveQueries/LVQ1", identity.DefaultPointType},
		{"seed 002", &seed002, "//com.mapped/org/ORGUmvDdxfFU7UBvJ8Msx2A6J/timeseries/point/PNT1",
			"//com.mapped/orgs/ORGUmvDdxfFU7UBvJ8Msx2A6J/liveQueries/LVQ1", "com.mapped.timeseries.point.record.v1"},
		{"org is the partition", &identity.Identity{PointSourceTemplate: "//x/{org}/{partition}/{pointId}"}, "//x/p1/p1/PNT1", "//hookstream/partitions/p1/liveQueries/LVQ1", identity.DefaultPointType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.id.PointSource("p1", "PNT1"); got != tt.point {
				t.Errorf("PointSource = %q, want %q", got, tt.point)
			}
			if got := tt.id.LiveQuerySource("p1", "LVQ1"); got != tt.lq {
				t.Errorf("LiveQuerySource = %q, want %q", got, tt.lq)
			}
			if got := tt.id.PointType(); got != tt.typ {
				t.Errorf("PointType = %q, want %q", got, tt.typ)
			}
		})
	}
	if none.Configured() || (&identity.Identity{}).Configured() || !seed002.Configured() {
		t.Fatal("Configured")
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name  string
		id    identity.Identity
		field string
	}{
		{"seed 002", seed002, ""},
		{"point source without pointId", identity.Identity{PointSourceTemplate: "//x/{org}"}, "pointSource"},
		{"unknown placeholder", identity.Identity{PointSourceTemplate: "//x/{pointId}/{liveQueryId}"}, "pointSource"},
		{"live query source without id", identity.Identity{LiveQuerySourceTemplate: "//x/{org}"}, "liveQuerySource"},
		{"space", identity.Identity{PointSourceTemplate: "//x/ {pointId}"}, "pointSource"},
		{"quote", identity.Identity{PointSourceTemplate: "//x/'{pointId}"}, "pointSource"},
		{"type", identity.Identity{PointTypeName: "com mapped"}, "pointType"},
		{"live query type", identity.Identity{LiveQueryTypeName: ".x"}, "liveQueryType"},
		{"org", identity.Identity{OrgID: "a/b"}, "orgId"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.id.Validate()
			var ie *identity.InvalidError
			switch {
			case tt.field == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tt.field != "" && (!errors.As(err, &ie) || ie.Field != tt.field || !errors.Is(err, identity.ErrInvalid)):
				t.Fatalf("Validate() = %v, want a refusal of %s", err, tt.field)
			}
		})
	}
}

// partitionsBucket starts an in-process server with hookstream's topology and returns it and
// the partitions bucket.
func partitionsBucket(t *testing.T, ctx context.Context) (*bus.Conn, jetstream.KeyValue) {
	t.Helper()
	srv, err := bus.StartServer(bus.ServerConfig{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	conn, err := bus.Connect("", srv, "test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	if err := bus.EnsureTopology(ctx, conn.JS, bus.Retention{}); err != nil {
		t.Fatal(err)
	}
	kv, err := conn.JS.KeyValue(ctx, proto.BucketPartitions)
	if err != nil {
		t.Fatal(err)
	}
	return conn, kv
}

// Watch loads what is stored before it returns, and follows puts and deletes.
func TestWatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, kv := partitionsBucket(t, ctx)
	if _, err := kv.Put(ctx, proto.CloudEventsKey("p1"), []byte(`{"orgId":"ORG1","pointType":"t.v1"}`)); err != nil {
		t.Fatal(err)
	}
	b, err := identity.Watch(ctx, conn.JS, func(err error) { t.Error(err) })
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := b.Get(ctx, "p1"); id == nil || id.OrgID != "ORG1" || id.PointType() != "t.v1" {
		t.Fatalf("p1 = %+v", id)
	}
	if id, _ := b.Get(ctx, "p2"); id != nil {
		t.Fatalf("p2 = %+v", id)
	}
	if _, err := kv.Put(ctx, proto.CloudEventsKey("p2"), []byte(`{"orgId":"ORG2"}`)); err != nil {
		t.Fatal(err)
	}
	if err := kv.Purge(ctx, proto.CloudEventsKey("p1")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		p1, _ := b.Get(ctx, "p1")
		p2, _ := b.Get(ctx, "p2")
		return p1 == nil && p2 != nil && p2.OrgID == "ORG2"
	})
	if id, err := identity.Load(ctx, kv, "p2"); err != nil || id == nil || id.OrgID != "ORG2" {
		t.Fatalf("Load(p2) = %+v, %v", id, err)
	}
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5 s")
		}
	}
}

// A template Validate accepts renders a source without spaces, quotes or braces for any token.
func FuzzValidate(f *testing.F) {
	f.Add("//com.mapped/org/{org}/timeseries/point/{pointId}", "ORG1", "PNT1")
	f.Add("//x/{partition}/{pointId}", "", "a-b_c")
	f.Add("{pointId}", "o", "p")
	f.Fuzz(func(t *testing.T, tpl, org, point string) {
		id := identity.Identity{OrgID: org, PointSourceTemplate: tpl}
		if id.Validate() != nil {
			return
		}
		src := id.PointSource("p1", point)
		if !strings.Contains(src, point) {
			t.Fatalf("%q with %q → %q", tpl, point, src)
		}
		if strings.ContainsAny(strings.ReplaceAll(src, point, ""), " '\"{}") {
			t.Fatalf("%q → %q", tpl, src)
		}
	})
}
