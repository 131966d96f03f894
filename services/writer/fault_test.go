package writer

import (
	"errors"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestRandomizedFaults is the writer's invariant under everything at once:
// two replicas of four workers that are stopped and killed and come back,
// a Dataverse that is slow, times out, throttles and fails, deliveries
// duplicated and reordered, and contacts whose decision keeps flipping.
// Once it is all over, every contact's flag is its latest decision, and no
// two writes of a contact overlapped. NAC_FAULT_SEED picks the run (fixed
// by default, so a failure can be replayed); NAC_FAULT_CONTACTS and
// NAC_FAULT_ROUNDS make it longer (make soak).
func TestRandomizedFaults(t *testing.T) {
	seed := uint64(envInt("NAC_FAULT_SEED", 1))
	contacts, rounds := envInt("NAC_FAULT_CONTACTS", 30), envInt("NAC_FAULT_ROUNDS", 25)
	t.Logf("seed %d, %d contacts, %d rounds", seed, contacts, rounds)
	rngs := func(stream uint64) *lockedRand { return &lockedRand{r: rand.New(rand.NewPCG(seed, stream))} }
	faults, deliveries, monkey, decisions := rngs(1), rngs(2), rngs(3), rngs(4)

	cfg := testConfig()
	cfg.Workers, cfg.BatchSize, cfg.Budget = 4, 5, Budget{Off: true}
	cfg.RequestTimeout, cfg.HandleTimeout, cfg.LeaseTTL = time.Second, 2*time.Second, 3*time.Second
	topo := bus.DefaultOptions()
	// Messages of a killed replica come back soon; a decision is never
	// given up (the horizon outlasts the test), retried within moments.
	topo.AckWait = 3 * time.Second
	topo.Retry[bus.ConsumerWriter] = bus.RetryPolicy{MaxAttempts: 3, Horizon: time.Hour,
		Backoff: []time.Duration{20 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond}}
	c := newCluster(t, contacts, cfg, topo, dataversetest.Options{Faults: func() dataversetest.Fault {
		switch r := faults.Float64(); {
		case r < 0.05:
			return dataversetest.Fault{Status: http.StatusServiceUnavailable}
		case r < 0.07:
			return dataversetest.Fault{Status: http.StatusTooManyRequests, RetryAfter: time.Second}
		case r < 0.09:
			return dataversetest.Fault{Status: http.StatusBadGateway, Delay: 100 * time.Millisecond}
		case r < 0.11:
			return dataversetest.Fault{Delay: 1500 * time.Millisecond} // past the request timeout
		case r < 0.25:
			return dataversetest.Fault{Delay: time.Duration(faults.IntN(300)) * time.Millisecond}
		}
		return dataversetest.Fault{}
	}})
	c.wrap = func(cons jetstream.Consumer) jetstream.Consumer {
		return &chaosConsumer{Consumer: cons, rng: deliveries}
	}
	c.start(0)
	c.start(1)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var kills, stops int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(150+monkey.IntN(400)) * time.Millisecond):
			}
			i := monkey.IntN(2)
			if kills == 0 || monkey.Float64() < 0.5 {
				c.kill(i)
				kills++
			} else {
				c.stop(i)
				stops++
			}
			time.Sleep(time.Duration(50+monkey.IntN(300)) * time.Millisecond)
			c.start(i)
		}
	}()
	published := 0
	for range rounds {
		for _, id := range c.contacts {
			if decisions.Float64() < 0.7 {
				c.decide(id, eventsv1.Flag(decisions.IntN(2)))
				published++
			}
		}
		time.Sleep(time.Duration(20+decisions.IntN(150)) * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	t.Logf("%d decisions published; replicas killed %d times, stopped %d times", published, kills, stops)
	c.converge(2 * time.Minute)
}

// lockedRand is a seeded source shared by goroutines.
type lockedRand struct {
	mu sync.Mutex
	r  *rand.Rand
}

func (l *lockedRand) Float64() float64 { l.mu.Lock(); defer l.mu.Unlock(); return l.r.Float64() }
func (l *lockedRand) IntN(n int) int   { l.mu.Lock(); defer l.mu.Unlock(); return l.r.IntN(n) }

// chaosConsumer hands out some messages twice and some after the next one:
// duplicate and reordered deliveries, as redeliveries make them.
type chaosConsumer struct {
	jetstream.Consumer
	rng *lockedRand
}

func (c *chaosConsumer) Messages(opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	inner, err := c.Consumer.Messages(opts...)
	if err != nil {
		return nil, err
	}
	return &chaosIter{MessagesContext: inner, rng: c.rng}, nil
}

type chaosIter struct {
	jetstream.MessagesContext
	rng *lockedRand

	mu    sync.Mutex
	queue []jetstream.Msg // handed out before pulling again
	late  jetstream.Msg   // handed out after the next message
}

func (it *chaosIter) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	for {
		it.mu.Lock()
		if len(it.queue) > 0 {
			m := it.queue[0]
			it.queue = it.queue[1:]
			it.mu.Unlock()
			return m, nil
		}
		it.mu.Unlock()
		m, err := it.MessagesContext.Next(opts...)
		it.mu.Lock()
		if err != nil {
			late := it.late
			it.late = nil
			it.mu.Unlock()
			if late != nil && !errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return late, nil
			}
			// Closed with one held back: the server redelivers it.
			return nil, err
		}
		r := it.rng.Float64()
		switch {
		case r < 0.1 && it.late == nil:
			it.late = m
			it.mu.Unlock()
			continue
		case r < 0.15:
			it.queue = append(it.queue, m)
		}
		if it.late != nil {
			it.queue = append(it.queue, it.late)
			it.late = nil
		}
		it.mu.Unlock()
		return m, nil
	}
}
