package writer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"
)

// Spender spends a request budget: a token bucket of Burst requests that
// refills at Rate a second, so that Burst plus Rate times the window never
// exceeds the requests the window allows.
type Spender interface {
	// Take waits until n requests may be sent; it fails at once when ctx
	// would end first.
	Take(ctx context.Context, n int) error
	// Drain lowers what is left to at most remaining: Dataverse said so.
	Drain(remaining int)
	// Left is what may be sent now.
	Left() float64
}

// bucketShape is the burst and rate of budget b for batches of batch.
func bucketShape(b Budget, batch int) (burst int, perSecond float64) {
	// A burst lets a quiet organization's first writes go at once; the rate
	// leaves room for it.
	burst = max(batch, b.Requests/60)
	return burst, float64(b.Requests-burst) / b.Window.Seconds()
}

// localSpender is a budget in this process alone.
type localSpender struct{ limiter *rate.Limiter }

func newLocalSpender(b Budget, batch int) *localSpender {
	burst, perSecond := bucketShape(b, batch)
	return &localSpender{limiter: rate.NewLimiter(rate.Limit(perSecond), burst)}
}

func (l *localSpender) Take(ctx context.Context, n int) error { return l.limiter.WaitN(ctx, n) }
func (l *localSpender) Left() float64                         { return l.limiter.TokensAt(time.Now()) }
func (l *localSpender) Drain(remaining int) {
	now := time.Now()
	if excess := int(l.limiter.TokensAt(now)) - remaining; excess > 0 {
		l.limiter.AllowN(now, excess)
	}
}

// KVSpender is one budget shared by every replica (and any other caller
// of Dataverse for the same application user): the token bucket is a key
// of a JetStream KV bucket, changed only by compare-and-set, so the
// replicas together never spend more than the budget. Its clock is each
// replica's own; a replica's clock running ahead refills early by as much.
type KVSpender struct {
	KV    jetstream.KeyValue
	Key   string
	Burst int
	Rate  float64 // requests a second
	Now   func() time.Time
}

// ErrBudget means the budget would not allow the requests in time.
var ErrBudget = errors.New("the request budget does not allow it in time")

// NewKVSpender is the shared budget b, for batches of batch, of the
// application user clientID at the environment url.
func NewKVSpender(kv jetstream.KeyValue, url, clientID string, b Budget, batch int) *KVSpender {
	burst, perSecond := bucketShape(b, batch)
	return &KVSpender{KV: kv, Key: BudgetKey(url, clientID), Burst: burst, Rate: perSecond, Now: time.Now}
}

// BudgetKey is the key of an environment's and application user's budget.
func BudgetKey(url, clientID string) string {
	sum := sha256.Sum256([]byte(url + "\x00" + clientID))
	return "b" + hex.EncodeToString(sum[:16])
}

type bucketState struct {
	Tokens float64 `json:"tokens"`
	At     int64   `json:"at"` // unix nanoseconds of Tokens
}

// read returns the bucket as it is now, and the revision to change it at
// (0: no key yet).
func (s *KVSpender) read(ctx context.Context) (bucketState, uint64, error) {
	now := s.Now()
	e, err := s.KV.Get(ctx, s.Key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return bucketState{Tokens: float64(s.Burst), At: now.UnixNano()}, 0, nil
	}
	if err != nil {
		return bucketState{}, 0, fmt.Errorf("read the request budget: %w", err)
	}
	var st bucketState
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		// Unreadable: start again from empty rather than from full.
		return bucketState{At: now.UnixNano()}, e.Revision(), nil
	}
	if elapsed := now.UnixNano() - st.At; elapsed > 0 {
		st.Tokens = min(float64(s.Burst), st.Tokens+float64(elapsed)/1e9*s.Rate)
		st.At = now.UnixNano()
	}
	return st, e.Revision(), nil
}

// write stores st at revision rev; false: another replica changed it first.
func (s *KVSpender) write(ctx context.Context, st bucketState, rev uint64) (bool, error) {
	b, _ := json.Marshal(st)
	var err error
	if rev == 0 {
		_, err = s.KV.Create(ctx, s.Key, b)
	} else {
		_, err = s.KV.Update(ctx, s.Key, b, rev)
	}
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyExists), errors.Is(err, jetstream.ErrKeyRevisionMismatch), wrongLastSequence(err):
		return false, nil
	}
	return false, fmt.Errorf("spend the request budget: %w", err)
}

func (s *KVSpender) Take(ctx context.Context, n int) error {
	for {
		st, rev, err := s.read(ctx)
		if err != nil {
			return err
		}
		if st.Tokens >= float64(n) {
			st.Tokens -= float64(n)
			ok, err := s.write(ctx, st, rev)
			if err != nil || ok {
				return err
			}
			continue // another replica spent first: read again
		}
		wait := time.Duration((float64(n) - st.Tokens) / s.Rate * float64(time.Second))
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < wait {
			return fmt.Errorf("%w: %d requests in %s", ErrBudget, n, wait.Round(time.Millisecond))
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}

func (s *KVSpender) Drain(remaining int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for range 3 {
		st, rev, err := s.read(ctx)
		if err != nil || st.Tokens <= float64(remaining) {
			return
		}
		st.Tokens = float64(remaining)
		if ok, _ := s.write(ctx, st, rev); ok {
			return
		}
	}
}

func (s *KVSpender) Left() float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	st, _, err := s.read(ctx)
	if err != nil {
		return 0
	}
	return st.Tokens
}
