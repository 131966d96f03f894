package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Several keys of one bucket changed together: JetStream's atomic batch
// publish (nats-server 2.12 and later) stores a batch whole or not at all,
// and checks each message's expected revision against the stream as it
// stood before the batch. So a count and the record of what it counts move
// in one step: two replicas cannot both win, and a crash between two keys
// cannot happen.

// atomicBuckets are the buckets WriteKeys writes to.
var atomicBuckets = map[string]bool{BucketNames: true}

// KeyWrite is one key's new value in WriteKeys, stored only if the key is
// still at Revision (0: the key has no value, never written or expired).
type KeyWrite struct {
	Key      string
	Value    []byte
	Revision uint64
	// TTL, when set, removes the value, and the key with it, that long
	// after it is stored unless it is written again: a count back at zero
	// or a record emptied leaves nothing behind.
	TTL time.Duration
}

// ErrKeysChanged means a key of WriteKeys was written after its revision
// was read: nothing was stored; read again and retry.
var ErrKeysChanged = errors.New("a key changed since it was read")

// WriteKeys stores every write in bucket, or none of them.
func WriteKeys(ctx context.Context, js jetstream.JetStream, bucket string, writes []KeyWrite) error {
	if len(writes) == 0 {
		return nil
	}
	if !atomicBuckets[bucket] {
		return fmt.Errorf("bucket %s does not take atomic batches", bucket)
	}
	id := make([]byte, 16)
	_, _ = rand.Read(id) // crypto/rand.Read never fails (Go 1.24+)
	batch := hex.EncodeToString(id)
	nc := js.Conn()
	for i, w := range writes {
		m := nats.NewMsg("$KV." + bucket + "." + w.Key)
		m.Data = w.Value
		m.Header.Set("Nats-Batch-Id", batch)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(i+1))
		m.Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(w.Revision, 10))
		if w.TTL > 0 {
			m.Header.Set(jetstream.MsgTTLHeader, w.TTL.String())
		}
		last := i == len(writes)-1
		if last {
			m.Header.Set("Nats-Batch-Commit", "1")
		}
		// The first message and the commit are requests (the server
		// answers the first when the batch is open, the commit with its
		// acknowledgement); the ones between follow on the same connection.
		if !last && i > 0 {
			if err := nc.PublishMsg(m); err != nil {
				return fmt.Errorf("write %d keys of %s: %w", len(writes), bucket, err)
			}
			continue
		}
		resp, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return fmt.Errorf("write %d keys of %s: %w", len(writes), bucket, err)
		}
		if err := batchAnswer(resp.Data, last); err != nil {
			return fmt.Errorf("write %d keys of %s: %w", len(writes), bucket, err)
		}
	}
	return nil
}

// batchAnswer reads the server's answer to a batch's first message (empty
// when the batch is open) or to its commit (an acknowledgement).
func batchAnswer(data []byte, commit bool) error {
	if len(data) == 0 && !commit {
		return nil
	}
	var ack struct {
		Error *jetstream.APIError `json:"error"`
		Batch string              `json:"batch"`
	}
	if err := json.Unmarshal(data, &ack); err != nil {
		return fmt.Errorf("decode the batch's answer: %w", err)
	}
	switch {
	case ack.Error != nil && (ack.Error.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		ack.Error.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return ErrKeysChanged
	case ack.Error != nil:
		return ack.Error
	case commit && ack.Batch == "":
		return errors.New("the batch was not committed")
	}
	return nil
}

// declareBucket creates or updates a bucket. A bucket that takes atomic
// batches (and values with a TTL) is created as a bucket, then its stream
// switched to take them, and later updated as a stream, so that a service
// starting never turns them off for the replicas already running (a
// bucket update alone would).
func declareBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) error {
	if !atomicBuckets[cfg.Bucket] {
		_, err := js.CreateOrUpdateKeyValue(ctx, cfg)
		return err
	}
	name := "KV_" + cfg.Bucket
	stream, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		if _, err := js.CreateKeyValue(ctx, cfg); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			return err
		}
		stream, err = js.Stream(ctx, name)
	}
	if err != nil {
		return err
	}
	sc := stream.CachedInfo().Config
	if sc.AllowAtomicPublish && sc.AllowMsgTTL && sc.Replicas == cfg.Replicas && sc.Description == cfg.Description {
		return nil
	}
	sc.AllowAtomicPublish, sc.AllowMsgTTL, sc.Replicas, sc.Description = true, true, cfg.Replicas, cfg.Description
	_, err = js.UpdateStream(ctx, sc)
	return err
}
