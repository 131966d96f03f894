package bus

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy is how a consumer retries a message whose handling failed
// transiently: the delay before each redelivery, and when it gives up and
// sets the message aside. It is declared once per consumer in the topology
// (Options) and handed both to Declare, which sizes the consumer on the
// server, and to the runner, which settles the messages.
type RetryPolicy struct {
	// MaxAttempts is how many deliveries a message gets at least before a
	// transient failure sets it aside.
	MaxAttempts int
	// Horizon is how long at least a message is retried, counted from when
	// it was stored in the stream; 0: MaxAttempts alone decides. With a
	// horizon the server never stops delivering a message (deliveries that
	// waited for a budget are not failures and must not use it up).
	Horizon time.Duration
	// Backoff[i] is the delay after delivery i+1 failed; the last repeats.
	Backoff []time.Duration
}

// Validate reports what is wrong with p.
func (p RetryPolicy) Validate() error {
	var errs []error
	if p.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("MaxAttempts %d: want at least 1", p.MaxAttempts))
	}
	if p.Horizon < 0 {
		errs = append(errs, fmt.Errorf("Horizon %s: want 0 or more", p.Horizon))
	}
	if len(p.Backoff) == 0 {
		errs = append(errs, errors.New("Backoff: want at least one delay"))
	}
	for i, d := range p.Backoff {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("Backoff[%d] %s: want more than 0", i, d))
		}
	}
	return errors.Join(errs...)
}

// Delay is the delay after delivery number delivered failed (unjittered).
func (p RetryPolicy) Delay(delivered uint64) time.Duration {
	if len(p.Backoff) == 0 {
		return time.Second
	}
	i := max(int(delivered)-1, 0)
	return p.Backoff[min(i, len(p.Backoff)-1)]
}

// GivesUp reports whether a transient failure at delivery number delivered
// of a message stored age ago sets the message aside.
func (p RetryPolicy) GivesUp(delivered uint64, age time.Duration) bool {
	return int(delivered) >= p.MaxAttempts && age >= p.Horizon
}

// DeadLetterAttempts is how many deliveries past MaxAttempts the server
// still makes on a consumer without a horizon, so that a message whose
// dead-lettering failed (JetStream briefly unavailable) is tried again
// instead of silently left behind.
const DeadLetterAttempts = 5

// MaxDeliver is the server-side bound of the consumer's deliveries: none
// with a horizon, MaxAttempts and room to dead-letter otherwise.
func (p RetryPolicy) MaxDeliver() int {
	if p.Horizon > 0 {
		return -1
	}
	return p.MaxAttempts + DeadLetterAttempts
}

// Span is the least time a message failing on every delivery is retried
// before it is set aside.
func (p RetryPolicy) Span() time.Duration {
	var d time.Duration
	for n := 1; n < p.MaxAttempts; n++ {
		d += p.Delay(uint64(n))
	}
	return max(d, p.Horizon)
}

// Jitter spreads d by up to ±20%, so that messages failing together do not
// all come back at the same moment.
func Jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d - d/5 + time.Duration(rand.Int64N(int64(d)*2/5+1))
}

// JitterUp spreads d by up to +20%: never earlier than d, for a delay a
// server asked for (Retry-After).
func JitterUp(d time.Duration) time.Duration {
	if d <= 0 {
		return d
	}
	return d + time.Duration(rand.Int64N(int64(d)/5+1))
}
