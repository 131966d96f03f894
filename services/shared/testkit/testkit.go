// Package testkit holds what the services' tests share: JetStream on an
// embedded server with the topology declared, a dump of KV buckets, a buffer
// logs can be written to concurrently, and waiting for a condition.
package testkit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/natsembed"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls cond until it holds, failing the test after timeout.
func Eventually(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: not within %s", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// JetStream starts an embedded nats-server (random port, temporary store,
// stopped with the test), connects to it and declares the topology. It
// returns JetStream and the server's URL, for services under test.
func JetStream(tb testing.TB) (jetstream.JetStream, string) {
	tb.Helper()
	ns := natsembed.ForTest(tb)
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
