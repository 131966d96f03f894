package testkit

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/natsembed"
)

// NATSServer starts an embedded nats-server on a random loopback port
// with its store in a temporary directory, stopped when the test ends.
func NATSServer(tb testing.TB) *server.Server {
	tb.Helper()
	return NATSServerWith(tb, nil)
}

// NATSServerWith is NATSServer with the server's options adjusted by
// configure (authentication, TLS) before it starts.
func NATSServerWith(tb testing.TB, configure func(*server.Options)) *server.Server {
	tb.Helper()
	ns, err := natsembed.Start(natsembed.Options{Port: -1, StoreDir: tb.TempDir(), Configure: configure})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// JetStream starts an embedded nats-server (random port, temporary store,
// stopped with the test), connects to it and declares the topology. It
// returns JetStream and the server's URL, for services under test.
func JetStream(tb testing.TB) (jetstream.JetStream, string) {
	tb.Helper()
	ns := NATSServer(tb)
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		tb.Fatal(err)
	}
	return js, ns.ClientURL()
}

// DumpBuckets reads every key and value of the buckets, as "bucket/key" →
// value; the index's values are all the same, so only its keys are kept.
func DumpBuckets(ctx context.Context, js jetstream.JetStream, buckets ...string) (map[string]string, error) {
	out := map[string]string{}
	for _, b := range buckets {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			return nil, err
		}
		lister, err := kv.ListKeys(ctx)
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for k := range lister.Keys() {
			if b == bus.BucketIndex {
				out[b+"/"+k] = ""
				continue
			}
			e, err := kv.Get(ctx, k)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", b, k, err)
			}
			out[b+"/"+k] = string(e.Value())
		}
	}
	return out, nil
}
