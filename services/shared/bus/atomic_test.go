package bus_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// The names bucket takes atomic batches, and a second Declare (a service
// starting beside running ones) keeps it so.
func TestDeclareNamesBucketTakesAtomicBatches(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	for i := range 2 {
		if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
			t.Fatalf("Declare %d: %v", i+1, err)
		}
		s, err := js.Stream(ctx, "KV_"+bus.BucketNames)
		if err != nil {
			t.Fatal(err)
		}
		if cfg := s.CachedInfo().Config; !cfg.AllowAtomicPublish || !cfg.AllowMsgTTL || cfg.MaxMsgsPerSubject != 1 || !cfg.AllowDirect {
			t.Errorf("after Declare %d: atomic %v, TTLs %v, history %d, direct %v; want a one-value bucket taking atomic batches and TTLs",
				i+1, cfg.AllowAtomicPublish, cfg.AllowMsgTTL, cfg.MaxMsgsPerSubject, cfg.AllowDirect)
		}
	}
}

func TestWriteKeysAllOrNothing(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.BucketNames)
	if err != nil {
		t.Fatal(err)
	}
	value := func(key string) string {
		e, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return "-"
		}
		if err != nil {
			t.Fatal(err)
		}
		return string(e.Value())
	}
	rev := func(key string) uint64 {
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return e.Revision()
	}

	// New keys: revision 0.
	if err := bus.WriteKeys(ctx, js, bus.BucketNames, []bus.KeyWrite{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("1")}, {Key: "c", Value: []byte("1")}}); err != nil {
		t.Fatalf("first batch: %v", err)
	}
	if value("a") != "1" || value("b") != "1" || value("c") != "1" {
		t.Fatalf("after the first batch a=%s b=%s c=%s", value("a"), value("b"), value("c"))
	}
	// One key behind: nothing of the batch is stored.
	ra, rb := rev("a"), rev("b")
	if _, err := kv.Put(ctx, "c", []byte("2")); err != nil {
		t.Fatal(err)
	}
	err = bus.WriteKeys(ctx, js, bus.BucketNames, []bus.KeyWrite{{Key: "a", Value: []byte("3"), Revision: ra}, {Key: "b", Value: []byte("3"), Revision: rb},
		{Key: "c", Value: []byte("3"), Revision: ra}})
	if !errors.Is(err, bus.ErrKeysChanged) {
		t.Fatalf("a batch with a stale revision: %v, want ErrKeysChanged", err)
	}
	if value("a") != "1" || value("b") != "1" || value("c") != "2" {
		t.Errorf("after the refused batch a=%s b=%s c=%s, want 1 1 2", value("a"), value("b"), value("c"))
	}
	// Revision 0 for a key that exists is a conflict too.
	if err := bus.WriteKeys(ctx, js, bus.BucketNames, []bus.KeyWrite{{Key: "a", Value: []byte("4")}}); !errors.Is(err, bus.ErrKeysChanged) {
		t.Errorf("creating an existing key: %v, want ErrKeysChanged", err)
	}
	// Only buckets declared for it take batches.
	if err := bus.WriteKeys(ctx, js, bus.BucketIndex, []bus.KeyWrite{{Key: "a", Value: []byte("1")}}); err == nil {
		t.Error("a batch into the index bucket was taken")
	}
}

// Writers racing on one key through batches: each write either lands on
// the revision it read or is refused, so no increment is lost.
func TestWriteKeysConcurrentIncrements(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.BucketNames)
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := "own." + string(rune('a'+w))
			for i := 0; i < each; {
				var n int
				var rev, ownRev uint64
				if e, err := kv.Get(ctx, "total"); err == nil {
					n, rev = int(e.Value()[0]), e.Revision()
				} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
					errs <- err
					return
				}
				if e, err := kv.Get(ctx, own); err == nil {
					ownRev = e.Revision()
				}
				err := bus.WriteKeys(ctx, js, bus.BucketNames, []bus.KeyWrite{
					{Key: "total", Value: []byte{byte(n + 1)}, Revision: rev},
					{Key: own, Value: []byte{byte(i + 1)}, Revision: ownRev},
				})
				if errors.Is(err, bus.ErrKeysChanged) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				i++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "total")
	if err != nil {
		t.Fatal(err)
	}
	if got := int(e.Value()[0]); got != writers*each {
		t.Errorf("total %d, want %d", got, writers*each)
	}
}

// A value written with a TTL goes, key and all, unless written again; a
// write on the revision it had before it went is refused.
func TestWriteKeysTTL(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.BucketNames)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.WriteKeys(ctx, js, bus.BucketNames, []bus.KeyWrite{{Key: "gone", Value: []byte("0"), TTL: time.Second}, {Key: "kept", Value: []byte("1")}}); err != nil {
		t.Fatal(err)
	}
	e, err := kv.Get(ctx, "gone")
	if err != nil {
		t.Fatalf("the value before its TTL: %v", err)
	}
	stale := e.Revision()
	s, err := js.Stream(ctx, "KV_"+bus.BucketNames)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, "the value with a TTL gone", 10*time.Second, func() bool {
		_, err := s.GetLastMsgForSubject(ctx, "$KV."+bus.BucketNames+".gone")
		return errors.Is(err, jetstream.ErrMsgNotFound)
	})
	if _, err := kv.Get(ctx, "kept"); err != nil {
		t.Errorf("the value without a TTL: %v", err)
	}
	if err := bus.WriteKeys(ctx, js, bus.BucketNames, []bus.KeyWrite{{Key: "gone", Value: []byte("1"), Revision: stale}}); !errors.Is(err, bus.ErrKeysChanged) {
		t.Errorf("a write on the revision of the expired value: %v, want ErrKeysChanged", err)
	}
	if err := bus.WriteKeys(ctx, js, bus.BucketNames, []bus.KeyWrite{{Key: "gone", Value: []byte("1")}}); err != nil {
		t.Errorf("a write of the expired key as new: %v", err)
	}
}
