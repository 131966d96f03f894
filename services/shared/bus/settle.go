package bus

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// How a handler's error settles its message. nil acks it; Permanent sets
// it aside at once; Hold waits without it counting as a failure; every
// other error is transient: redelivered with the consumer's backoff (not
// before RetryAfter's delay), and set aside once the retry policy gives up.

type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as permanent: the message is set aside in the dead
// letter stream with err as its reason and never retried.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

type holdError struct {
	err   error
	after time.Duration
}

func (e holdError) Error() string { return e.err.Error() }
func (e holdError) Unwrap() error { return e.err }

// Hold marks err as a wait, not a failure: the message is redelivered
// after at least after (a budget, a lease or a 429's Retry-After), however
// often that happens, and never set aside for it.
func Hold(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return holdError{err: err, after: after}
}

// IsHold reports whether err was marked by Hold.
func IsHold(err error) bool {
	var h holdError
	return errors.As(err, &h)
}

type retryAfterError struct {
	err   error
	after time.Duration
}

func (e retryAfterError) Error() string { return e.err.Error() }
func (e retryAfterError) Unwrap() error { return e.err }

// RetryAfter marks a transient err whose retry must wait at least after
// (a 503's Retry-After), longer when the backoff says so.
func RetryAfter(err error, after time.Duration) error {
	if err == nil || after <= 0 {
		return err
	}
	return retryAfterError{err: err, after: after}
}

// Outcomes of a settled message, the outcome label of
// nac_messages_handled_total.
const (
	OutcomeAcked        = "acked"
	OutcomeRetried      = "retried"
	OutcomeHeld         = "held"
	OutcomeDeadLettered = "dead_lettered"
)

// Metrics are the consumer-side metrics shared by every consumer of a service.
type Metrics struct {
	handled    *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	pending    *prometheus.GaugeVec
	ackPending *prometheus.GaugeVec
}

// NewMetrics registers consumer metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "nac_messages_handled_total",
			Help: "JetStream messages settled, by consumer and outcome (acked, retried, held, dead_lettered).",
		}, []string{"consumer", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "nac_message_handle_duration_seconds",
			Help: "Time from a message handed to its handler to its handler returning, by consumer (a batch's time for each of its messages).",
			// Up to the longest handle timeout (under the 30 s ack wait),
			// with 5 s, the slow-handling alert's threshold, a bucket bound.
			Buckets: []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30},
		}, []string{"consumer"}),
		pending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nac_consumer_pending_messages",
			Help: "Messages of the stream the durable consumer has not delivered yet, as last read by this process.",
		}, []string{"consumer"}),
		ackPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "nac_consumer_ack_pending_messages",
			Help: "Messages delivered by the durable consumer and not settled yet (in hand or waiting for a redelivery), as last read by this process.",
		}, []string{"consumer"}),
	}
	reg.MustRegister(m.handled, m.duration, m.pending, m.ackPending)
	return m
}

// ObserveConsumer records a consumer's backlog from its info.
func (m *Metrics) ObserveConsumer(name string, info *jetstream.ConsumerInfo) {
	m.pending.WithLabelValues(name).Set(float64(info.NumPending))
	m.ackPending.WithLabelValues(name).Set(float64(info.NumAckPending))
}

// RawPublisher stores raw data; *Publisher is one.
type RawPublisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte, header nats.Header) error
}

// Settler is the one place a consumer's messages are settled: acked,
// redelivered with the retry policy's delay, or set aside in the dead
// letter stream and terminated, with the outcome counted and logged (log
// lines about retries at most once per LogEvery per outcome).
type Settler struct {
	Consumer  string
	Retry     RetryPolicy
	Publisher RawPublisher // for dead letters
	Metrics   *Metrics     // nil: unregistered metrics
	Logger    *slog.Logger // nil: no logs
	// Now tells a message's age for the retry horizon (default time.Now).
	Now func() time.Time
	// Jitter spreads redelivery delays (default Jitter); a delay a server
	// asked for is only ever lengthened.
	Jitter func(time.Duration) time.Duration
	// LogEvery bounds the log lines about retries and holds (default 10 s).
	LogEvery time.Duration

	once    sync.Once
	limiter *LogLimiter
	hashKey []byte
}

// Validate reports what is missing from s.
func (s *Settler) Validate() error {
	var errs []error
	if s.Consumer == "" {
		errs = append(errs, errors.New("settler: Consumer: required"))
	}
	if s.Publisher == nil {
		errs = append(errs, errors.New("settler: Publisher: required for dead letters"))
	}
	if err := s.Retry.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("settler %s: retry policy: %w", s.Consumer, err))
	}
	return errors.Join(errs...)
}

func (s *Settler) defaults() {
	s.once.Do(func() {
		if s.Metrics == nil {
			s.Metrics = NewMetrics(prometheus.NewRegistry())
		}
		if s.Logger == nil {
			s.Logger = slog.New(slog.DiscardHandler)
		}
		if s.Now == nil {
			s.Now = time.Now
		}
		if s.Jitter == nil {
			s.Jitter = Jitter
		}
		s.limiter = &LogLimiter{Every: s.LogEvery, Now: s.Now}
		s.hashKey = make([]byte, 16)
		_, _ = rand.Read(s.hashKey)
	})
}

// GivesUp reports whether a transient failure of m now would set it aside.
func (s *Settler) GivesUp(m jetstream.Msg) bool {
	s.defaults()
	delivered, age := s.progress(m)
	return s.Retry.GivesUp(delivered, age)
}

func (s *Settler) progress(m jetstream.Msg) (delivered uint64, age time.Duration) {
	meta, err := m.Metadata()
	if err != nil {
		return 1, 0
	}
	return meta.NumDelivered, s.Now().Sub(meta.Timestamp)
}

// Observe records how long handling took, for each message handled.
func (s *Settler) Observe(took time.Duration, messages int) {
	s.defaults()
	for range messages {
		s.Metrics.duration.WithLabelValues(s.Consumer).Observe(took.Seconds())
	}
}

// Settled is how a message was settled: its outcome, and the delay of
// its redelivery (retried, held).
type Settled struct {
	Outcome string
	Delay   time.Duration
}

// Settle settles m after its handling ended with err. ctx may be spent:
// dead-lettering gets its own time.
func (s *Settler) Settle(ctx context.Context, m jetstream.Msg, err error) Settled {
	s.defaults()
	delivered, age := s.progress(m)
	var hold holdError
	var ra retryAfterError
	switch {
	case err == nil:
		if ackErr := m.Ack(); ackErr != nil {
			s.log(m, delivered).Warn("ack failed; the message will be redelivered", "err", ackErr)
		}
		return s.count(OutcomeAcked, 0)
	case errors.As(err, &hold):
		delay := JitterUp(max(hold.after, time.Millisecond))
		if ok, n := s.limiter.Allow(s.Consumer + "/held"); ok {
			s.log(m, delivered).Info("message held back", "reason", err, "delay", delay, "suppressed", n)
		}
		_ = m.NakWithDelay(delay)
		return s.count(OutcomeHeld, delay)
	case IsPermanent(err):
		return s.deadLetter(ctx, m, delivered, err.Error(), ClassPermanent)
	case s.Retry.GivesUp(delivered, age):
		return s.deadLetter(ctx, m, delivered, fmt.Sprintf("gave up after %d deliveries in %s: %v", delivered, age.Round(time.Second), err), ClassGaveUp)
	}
	delay := s.Jitter(s.Retry.Delay(delivered))
	if errors.As(err, &ra) && delay < ra.after {
		delay = JitterUp(ra.after)
	}
	if ok, n := s.limiter.Allow(s.Consumer + "/retried"); ok {
		s.log(m, delivered).Warn("transient failure; retrying", "class", ClassTransient, "err", err, "delay", delay, "suppressed", n)
	}
	_ = m.NakWithDelay(delay)
	return s.count(OutcomeRetried, delay)
}

// Failure classes of the settler's log lines.
const (
	ClassTransient = "transient" // retried with backoff
	ClassPermanent = "permanent" // set aside at once
	ClassGaveUp    = "gave_up"   // set aside once the retry policy gave up
)

func (s *Settler) deadLetter(ctx context.Context, m jetstream.Msg, delivered uint64, reason, class string) Settled {
	meta, _ := m.Metadata()
	// The handler may have used up ctx (a timeout is a failure like any
	// other); the dead letter gets its own time, bounded by the publisher.
	if err := DeadLetter(context.WithoutCancel(ctx), s.Publisher, s.Consumer, m, meta, reason); err != nil {
		// Not set aside, so not dropped either: try again later.
		s.log(m, delivered).Error("dead letter failed; retrying the message", "class", class, "err", err, "reason", reason)
		delay := s.Jitter(s.Retry.Delay(delivered))
		_ = m.NakWithDelay(delay)
		return s.count(OutcomeRetried, delay)
	}
	s.log(m, delivered).Error("message set aside in the dead letter stream", "class", class, "reason", reason)
	_ = m.TermWithReason(truncate(reason, 200))
	return s.count(OutcomeDeadLettered, 0)
}

func (s *Settler) count(outcome string, delay time.Duration) Settled {
	s.Metrics.handled.WithLabelValues(s.Consumer, outcome).Inc()
	return Settled{Outcome: outcome, Delay: delay}
}

func (s *Settler) log(m jetstream.Msg, delivered uint64) *slog.Logger {
	return s.Logger.With("consumer", s.Consumer, "subject", s.LogSubject(m.Subject()), "deliveries", delivered)
}

// LogSubject is subject with its last token (a member, contact or row id)
// replaced by a keyed hash: lines about one message can be told apart and
// matched, but not traced back to the person (profile subjects carry
// member ids), and the key changes with every process.
func (s *Settler) LogSubject(subject string) string {
	s.defaults()
	i := strings.LastIndexByte(subject, '.')
	mac := hmac.New(sha256.New, s.hashKey)
	mac.Write([]byte(subject[i+1:]))
	return subject[:i+1] + "#" + hex.EncodeToString(mac.Sum(nil)[:6])
}

// Headers on a dead-lettered message, beside the original headers.
const (
	HeaderDeadReason     = "Nac-Dead-Reason"
	HeaderDeadStream     = "Nac-Dead-Stream"
	HeaderDeadSubject    = "Nac-Dead-Subject"
	HeaderDeadSequence   = "Nac-Dead-Sequence"
	HeaderDeadDeliveries = "Nac-Dead-Deliveries"
)

// DeadLetter sets m aside on the dead letter subject of consumer, with the
// reason and where it came from in Nac-Dead-* headers and its original
// headers and data. JetStream's own headers (Nats-Expected-*, Nats-Msg-Id,
// Nats-TTL, ...) are dropped: they were the original publish's
// preconditions and would make the dead letter stream refuse it. meta may
// be nil. Deduplicated per stream sequence, so a repeated attempt stores
// it once.
func DeadLetter(ctx context.Context, pub RawPublisher, consumer string, m jetstream.Msg, meta *jetstream.MsgMetadata, reason string) error {
	h := nats.Header{}
	for k, v := range m.Headers() {
		if strings.HasPrefix(strings.ToLower(k), "nats-") {
			continue
		}
		h[k] = v
	}
	h.Set(HeaderDeadReason, reason)
	h.Set(HeaderDeadSubject, m.Subject())
	msgID := ""
	if meta != nil {
		h.Set(HeaderDeadStream, meta.Stream)
		h.Set(HeaderDeadSequence, strconv.FormatUint(meta.Sequence.Stream, 10))
		h.Set(HeaderDeadDeliveries, strconv.FormatUint(meta.NumDelivered, 10))
		msgID = fmt.Sprintf("%s-%d", meta.Stream, meta.Sequence.Stream)
	}
	return pub.Publish(ctx, DeadLetterSubject(consumer), msgID, m.Data(), h)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// LogLimiter lets a log line through at most once per Every for each key,
// and counts the lines it kept back meanwhile.
type LogLimiter struct {
	Every time.Duration    // default 10 s
	Now   func() time.Time // default time.Now

	mu         sync.Mutex
	last       map[string]time.Time
	suppressed map[string]int
}

// Allow reports whether a line for key may be logged now, and how many
// were kept back since the last one.
func (l *LogLimiter) Allow(key string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.last == nil {
		l.last, l.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now, every := time.Now(), l.Every
	if l.Now != nil {
		now = l.Now()
	}
	if every <= 0 {
		every = 10 * time.Second
	}
	if last, seen := l.last[key]; seen && now.Sub(last) < every {
		l.suppressed[key]++
		return false, 0
	}
	l.last[key] = now
	n := l.suppressed[key]
	delete(l.suppressed, key)
	return true, n
}
