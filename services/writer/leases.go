package writer

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// Leases keep the writes of one contact from overlapping: a worker writes
// a contact only while it holds the contact's lease.
type Leases interface {
	// Acquire takes the lease of a contact for the decision at stream
	// sequence seq; ErrLeaseHeld when another worker holds it. release
	// gives it back.
	Acquire(ctx context.Context, org, contact string, seq uint64) (release func(), err error)
}

// ErrLeaseHeld means another worker is writing the contact.
var ErrLeaseHeld = errors.New("another writer holds the contact's lease")

// KVLeases are leases in a JetStream KV bucket, shared by every replica:
// a lease is a key created only if absent, with a per-key TTL so that the
// lease of a writer that died goes by itself. The TTL must outlast the
// longest a holder can take to write (its handle timeout): a holder never
// writes after its lease expired, so two writes of a contact never overlap.
type KVLeases struct {
	KV    jetstream.KeyValue
	TTL   time.Duration
	Owner string // who holds the lease, for a person reading the bucket
}

// NewKVLeases binds the lease bucket bus.Declare created.
func NewKVLeases(ctx context.Context, js jetstream.JetStream, ttl time.Duration, owner string) (*KVLeases, error) {
	kv, err := js.KeyValue(ctx, bus.BucketWriteLeases)
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", bus.BucketWriteLeases, err)
	}
	return &KVLeases{KV: kv, TTL: ttl, Owner: owner}, nil
}

// LeaseKey is the key of a contact's lease.
func LeaseKey(org, contact string) string { return bus.Token(org) + "." + bus.Token(contact) }

func (l *KVLeases) Acquire(ctx context.Context, org, contact string, seq uint64) (func(), error) {
	key := LeaseKey(org, contact)
	rev, err := l.KV.Create(ctx, key, []byte(l.Owner+" "+strconv.FormatUint(seq, 10)), jetstream.KeyTTL(l.TTL))
	if errors.Is(err, jetstream.ErrKeyExists) || wrongLastSequence(err) {
		return nil, ErrLeaseHeld
	}
	if err != nil {
		return nil, fmt.Errorf("acquire the lease of %s: %w", key, err)
	}
	return func() {
		// Only our own revision: had ours expired and another worker taken
		// the lease since, it stays theirs. The purge marker goes with the
		// TTL, so the bucket does not keep a key per contact ever written.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = l.KV.Purge(ctx, key, jetstream.LastRevision(rev), jetstream.PurgeTTL(l.TTL))
	}, nil
}

// wrongLastSequence reports a create that lost the race to another: two
// creates over a deleted key both try the marker's revision.
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
