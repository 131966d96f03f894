package writer

import (
	"fmt"
	"testing"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

// orderConfig is a writer of 4 workers, without a budget.
func orderConfig(batch int) Config {
	cfg := testConfig()
	cfg.Workers, cfg.BatchSize, cfg.Budget = 4, batch, Budget{Off: true}
	cfg.RequestTimeout, cfg.HandleTimeout, cfg.LeaseTTL = 5*time.Second, 10*time.Second, 15*time.Second
	return cfg
}

// Two replicas of four workers each; the first write Dataverse gets is
// answered seconds late, while every contact flips between 0 and 1 many
// times. However the deliveries interleave, every flag ends as its
// contact's latest decision, and no two writes of a contact overlap. (With
// no leases, the late first write landed after the contact's last one.)
func TestWriteOrderUnderConcurrency(t *testing.T) {
	t.Parallel()
	for _, batch := range []int{1, 10} {
		t.Run(fmt.Sprintf("batch size %d", batch), func(t *testing.T) {
			t.Parallel()
			c := newCluster(t, 20, orderConfig(batch), bus.DefaultOptions(), dataversetest.Options{})
			c.standin.Inject(dataversetest.Fault{Delay: 2 * time.Second, Count: 1})
			c.start(0)
			c.start(1)
			for _, id := range c.contacts {
				c.decide(id, eventsv1.Flag_FLAG_NOT_AT_COMPANY)
			}
			// Until the late write is on its way.
			deadline := time.Now().Add(5 * time.Second)
			for c.standin.started.Load() == 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			for round := range 9 {
				v := eventsv1.Flag_FLAG_NO_FEEDBACK
				if round%2 == 1 {
					v = eventsv1.Flag_FLAG_NOT_AT_COMPANY
				}
				for _, id := range c.contacts {
					c.decide(id, v) // the last round is 0: unlike the late write
				}
			}
			c.converge(30 * time.Second)
		})
	}
}
