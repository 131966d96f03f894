package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// keysUnder lists the keys of bucket under prefix (a key's tokens before
// its last ones), from the subjects of the bucket's stream.
func keysUnder(ctx context.Context, stream jetstream.Stream, bucket, prefix string) ([]string, error) {
	base := "$KV." + bucket + "."
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(base+prefix+".>"))
	if err != nil {
		return nil, fmt.Errorf("list %s/%s: %w", bucket, redact(prefix), err)
	}
	out := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		out = append(out, strings.TrimPrefix(subj, base+prefix+"."))
	}
	slices.Sort(out)
	return out, nil
}

// redact is how errors (which end up in logs) name an index key: its kind
// and a short hash of the rest, which may be a name, an email hash or a
// profile URL.
func redact(key string) string {
	kind, rest, _ := strings.Cut(key, ".")
	sum := sha256.Sum256([]byte(rest))
	return kind + ".h:" + hex.EncodeToString(sum[:6])
}

// casRetries bounds compare-and-set attempts under contention.
const casRetries = 16

// casUpdate reads key, lets next compute the new value from the current one
// (nil when absent) and writes it only if nobody wrote in between.
// next returns nil to leave the key alone.
func casUpdate(ctx context.Context, kv jetstream.KeyValue, key string, next func(cur []byte) ([]byte, error)) error {
	_, err := casUpdateRev(ctx, kv, key, next)
	return err
}

// casUpdateRev is casUpdate returning the revision the key holds after it:
// the one written, or the one read when next left it alone (0: absent).
func casUpdateRev(ctx context.Context, kv jetstream.KeyValue, key string, next func(cur []byte) ([]byte, error)) (uint64, error) {
	for range casRetries {
		var cur []byte
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case err == nil:
			cur, rev = e.Value(), e.Revision()
		case errors.Is(err, jetstream.ErrKeyNotFound):
		default:
			return 0, fmt.Errorf("get %s/%s: %w", kv.Bucket(), key, err)
		}
		val, err := next(cur)
		if err != nil || val == nil {
			return rev, err
		}
		var written uint64
		if rev == 0 {
			written, err = kv.Create(ctx, key, val)
		} else {
			written, err = kv.Update(ctx, key, val, rev)
		}
		if err == nil {
			return written, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, fmt.Errorf("write %s/%s: %w", kv.Bucket(), key, err)
		}
	}
	return 0, fmt.Errorf("write %s/%s: still contended after %d attempts", kv.Bucket(), key, casRetries)
}
