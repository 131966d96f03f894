package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// cluster is writer replicas over one embedded JetStream and one stand-in,
// each replica with its own connection, started, stopped and killed at
// will, the way pods of a deployment come and go.
type cluster struct {
	t        testing.TB
	js       jetstream.JetStream
	url      string
	standin  *standin
	cfg      Config
	topo     bus.Options
	contacts []string
	// wrap, when set, stands between a replica and its consumer (to
	// duplicate and reorder deliveries).
	wrap func(jetstream.Consumer) jetstream.Consumer

	mu       sync.Mutex
	replicas map[int]*replica
	expected map[string]eventsv1.Flag // contact → value of its latest decision
}

type replica struct {
	nc     *nats.Conn
	cancel context.CancelFunc
	done   chan error
}

func newCluster(t testing.TB, contacts int, cfg Config, topo bus.Options, standinOpts dataversetest.Options) *cluster {
	t.Helper()
	js, url := testkit.JetStream(t)
	ctx := t.Context()
	if err := bus.Declare(ctx, js, topo); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, js: js, url: url, cfg: cfg, topo: topo, replicas: map[int]*replica{}, expected: map[string]eventsv1.Flag{}}
	for range contacts {
		c.contacts = append(c.contacts, uuid.NewString())
	}
	c.standin = newStandin(t, standinOpts, c.contacts...)
	c.cfg.Default = c.standin.target("")
	settings, err := js.KeyValue(ctx, bus.BucketOrgs)
	if err != nil {
		t.Fatal(err)
	}
	on, _ := json.Marshal(orgs.Settings{DataValidation: true})
	if _, err := settings.Put(ctx, orgs.SettingsKey(orgA), on); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.stopAll)
	return c
}

// start runs replica i until stopped or killed.
func (c *cluster) start(i int) {
	c.t.Helper()
	nc, err := nats.Connect(c.url, nats.Name(fmt.Sprintf("writer-%d", i)))
	if err != nil {
		c.t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	svc, cons, err := Open(ctx, c.cfg, c.topo, js, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		c.t.Fatal(err)
	}
	if c.wrap != nil {
		cons = c.wrap(cons)
	}
	r := &replica{nc: nc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- svc.Runner(cons).Run(ctx) }()
	c.mu.Lock()
	c.replicas[i] = r
	c.mu.Unlock()
}

func (c *cluster) take(i int) *replica {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.replicas[i]
	delete(c.replicas, i)
	return r
}

// stop shuts replica i down cleanly: it finishes what it holds.
func (c *cluster) stop(i int) {
	if r := c.take(i); r != nil {
		r.cancel()
		<-r.done
		r.nc.Close()
	}
}

// kill cuts replica i off JetStream at once: its acks, naks and lease
// releases are lost, its messages come back after the ack wait and its
// leases expire; the writes it already began go on (harsher than a kill
// -9, which would stop them).
func (c *cluster) kill(i int) {
	if r := c.take(i); r != nil {
		r.nc.Close()
		r.cancel()
		<-r.done
	}
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	ids := make([]int, 0, len(c.replicas))
	for i := range c.replicas {
		ids = append(ids, i)
	}
	c.mu.Unlock()
	for _, i := range ids {
		c.stop(i)
	}
}

// decide publishes a decision for contact, as the validator does, and
// records it as the contact's latest.
func (c *cluster) decide(contact string, v eventsv1.Flag) {
	c.t.Helper()
	d := &eventsv1.Decision{DecisionId: uuid.NewString(), OrganizationId: orgA, ContactId: contact, Value: v,
		Reason: "left_company", DecidedAt: timestamppb.Now()}
	data, err := proto.Marshal(d)
	if err != nil {
		c.t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Under the lock, so that the stream's order is the order recorded.
	if _, err := c.js.Publish(context.Background(), bus.DecisionSubject(orgA, contact), data, jetstream.WithMsgID(d.GetDecisionId())); err != nil {
		c.t.Fatal(err)
	}
	c.expected[contact] = v
}

// drained reports whether the writer's consumer holds nothing back.
func (c *cluster) drained() bool {
	cons, err := c.js.Consumer(context.Background(), bus.StreamDecisions, bus.ConsumerWriter)
	if err != nil {
		return false
	}
	info, err := cons.Info(context.Background())
	return err == nil && info.NumPending == 0 && info.NumAckPending == 0
}

// diverged lists the contacts whose flag differs from their latest decision.
func (c *cluster) diverged() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, id := range c.contacts {
		want, ok := c.expected[id]
		row, _ := c.standin.Row("contacts", id)
		if ok && row[flagCol] != float64(want) {
			out = append(out, id)
		}
	}
	return out
}

// converge waits until every decision is settled and every flag is its
// contact's latest decision, and reports the writes each contact needed.
func (c *cluster) converge(within time.Duration) {
	c.t.Helper()
	// Settled is not enough: a decision superseded in the stream no longer
	// counts as pending there, while a write of it may still be on its way.
	deadline := time.Now().Add(within)
	for !(c.drained() && c.standin.idle() && len(c.diverged()) == 0) {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	bad := c.diverged()
	writes := map[string]int{}
	for _, r := range c.standin.Received() {
		writes[r.ID]++
	}
	counts := make([]int, 0, len(c.contacts))
	total := 0
	for _, id := range c.contacts {
		counts = append(counts, writes[id])
		total += writes[id]
	}
	slices.Sort(counts)
	c.t.Logf("converged: %d of %d contacts; writes per contact: min %d, median %d, max %d, mean %.1f; overlapping writes %d",
		len(c.contacts)-len(bad), len(c.contacts), counts[0], counts[len(counts)/2], counts[len(counts)-1],
		float64(total)/math.Max(1, float64(len(counts))), c.standin.Overlaps())
	if len(bad) > 0 {
		c.t.Errorf("%d contacts differ from their latest decision (drained %v, stand-in idle %v), e.g. %s", len(bad), c.drained(), c.standin.idle(), bad[0])
	}
	if n := c.standin.Overlaps(); n != 0 {
		c.t.Errorf("%d writes of a contact overlapped another of the same contact", n)
	}
}
