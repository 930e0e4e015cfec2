package bus_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"hookstream/pkg/bus"
)

// hookstream keeps one durable consumer per subscription on OUTBOX, so the embedded server must
// not cap a stream at nats-server's default of 1,000 consumers: with the cap, the 1,001st stream
// would never get a delivery.
func TestEmbeddedServerAllowsMoreThanThousandConsumers(t *testing.T) {
	srv, err := bus.StartServer(bus.ServerConfig{Listen: "127.0.0.1:0", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "MANY", Subjects: []string{"many.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	const n = 1_001
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < n; i = next.Add(1) - 1 {
				_, err := js.CreateOrUpdateConsumer(ctx, "MANY", jetstream.ConsumerConfig{
					Durable: fmt.Sprintf("c%d", i), FilterSubject: fmt.Sprintf("many.%d", i), AckPolicy: jetstream.AckExplicitPolicy,
					MemoryStorage: true,
				})
				if err != nil {
					errs <- fmt.Errorf("consumer %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	info, err := js.Stream(ctx, "MANY")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().State.Consumers; got != n {
		t.Fatalf("stream has %d consumers, want %d", got, n)
	}
}
