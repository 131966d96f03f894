package writer

import (
	"testing"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// A lone decision is written at once, however long the batch linger:
// nothing else is pending, so nothing is worth waiting for. A burst is
// written in batches.
func TestLoneDecisionIsNotHeldByTheLinger(t *testing.T) {
	cfg := testConfig()
	cfg.Linger, cfg.BatchSize, cfg.Workers = time.Second, 10, 1
	c := newCluster(t, 40, cfg, bus.DefaultOptions(), dataversetest.Options{})
	c.start(0)
	var worst time.Duration
	for i, id := range c.contacts[:5] {
		sent := time.Now()
		c.decide(id, eventsv1.Flag_FLAG_NOT_AT_COMPANY)
		testkit.Eventually(t, "the write", 5*time.Second, func() bool { return len(c.standin.Received()) == i+1 })
		got := c.standin.Received()[i]
		if got.ID != id {
			t.Fatalf("write %d of %s, want %s", i, got.ID, id)
		}
		worst = max(worst, got.At.Sub(sent))
	}
	// Generous for a loaded machine, and still far under the linger.
	if worst > cfg.Linger/4 {
		t.Errorf("a lone decision's write began up to %s after it was published, want well under the %s linger", worst, cfg.Linger)
	}
	t.Logf("lone decisions written within %s of being published (linger %s)", worst, cfg.Linger)

	before := len(c.standin.apiRequests())
	for _, id := range c.contacts[5:] {
		c.decide(id, eventsv1.Flag_FLAG_NOT_AT_COMPANY)
	}
	c.converge(10 * time.Second)
	if n := len(c.standin.apiRequests()) - before; n > 20 {
		t.Errorf("a burst of 35 decisions took %d requests, want batches", n)
	}
}
