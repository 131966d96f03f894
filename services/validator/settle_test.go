package validator

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// A new sync user's contacts are evaluated at once, and its change comes
// back ScopeSettle later to list them again: a contact that became the
// user's meanwhile, and that an evaluation on a cache without the user
// decided nothing for, is flagged by that second pass.
func TestScopeChangeSettles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const (
		user   = "5e5e5e5e-0000-4000-8000-0000000000a1"
		c1, c2 = "7d8c4a0e-0000-4000-8000-0000000000a1", "7d8c4a0e-0000-4000-8000-0000000000a2"
	)
	e.mustCRM(company(otherAccount, otherUser, 2))
	for _, c := range []string{c1, c2} {
		owned := otherUser
		if c == c1 {
			owned = user
		}
		e.mustCRM(person(c, otherAccount, owned, 3))
		e.mustProfile(profileFor(c, 10))
		e.wantNoDecision(c)
	}

	change := msgOf(t, bus.AdminSyncUserSubject(org, user), &eventsv1.SyncUserChange{
		EventId: "su-settle", OrganizationId: org, UserId: user, Enabled: true, ChangedAt: at(20),
	})
	err := e.svc.HandleAdmin(e.ctx, change)
	if !bus.IsHold(err) {
		t.Fatalf("first delivery: %v, want it held back for the settling pass", err)
	}
	e.wantDecision(c1, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "su-settle")
	e.wantNoDecision(c2)

	// c2 becomes the user's, stored without an evaluation: as if decided
	// on a cache that did not have the user yet, which decided nothing.
	if _, _, _, err := e.svc.store.ApplyChange(e.ctx, crmRow("contact", c2, 25, map[string]*eventsv1.Value{"ownerid": owner(user)})); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.HandleAdmin(e.ctx, change.Redelivered()); err != nil {
		t.Fatalf("second delivery: %v, want it settled", err)
	}
	e.wantDecision(c2, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "su-settle")
	if got := e.evaluations("sync_user"); got != 3 {
		t.Errorf("evaluations{sync_user} = %v, want 3 (c1, then c1 and c2)", got)
	}
}

// The settling pass comes after the lease, and before any redelivery of a
// failed first pass: every redelivery then finds the change settled.
func TestScopeSettleWithinTheFirstRedelivery(t *testing.T) {
	t.Parallel()
	if state.ScopeSettle <= state.ScopeLease {
		t.Errorf("ScopeSettle %s is not longer than ScopeLease %s", state.ScopeSettle, state.ScopeLease)
	}
	first := bus.ConsumerRetry().Delay(1)
	if least := first - first/5; state.ScopeSettle >= least {
		t.Errorf("ScopeSettle %s: a redelivery after a failure may come %s after it", state.ScopeSettle, least)
	}
	if state.ScopeSettle > time.Second {
		t.Errorf("ScopeSettle %s: a sync user's change takes that long to settle", state.ScopeSettle)
	}
}

// The settling pass of a large fan-out queues chunks of its own, which the
// work stream does not take for duplicates of the first pass's.
func TestScopeSettleQueuesItsOwnChunks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc.cfg.InlineFanout, e.svc.cfg.ChunkSize = 2, 2
	const user = "5e5e5e5e-0000-4000-8000-0000000000a2"
	e.mustCRM(company(otherAccount, user, 2))
	for i := range 3 {
		e.mustCRM(person(strings.Replace(contactID, "000000000001", "00000000010"+string(rune('0'+i)), 1), otherAccount, otherUser, 3))
	}
	change := msgOf(t, bus.AdminSyncUserSubject(org, user), &eventsv1.SyncUserChange{
		EventId: "su-chunks", OrganizationId: org, UserId: user, Enabled: true, ChangedAt: at(20),
	})
	if err := e.svc.HandleAdmin(e.ctx, change); !bus.IsHold(err) {
		t.Fatalf("first delivery: %v, want a hold", err)
	}
	first := len(e.workMessages())
	if first != 2 {
		t.Fatalf("%d chunks for 3 contacts in chunks of 2", first)
	}
	if err := e.svc.HandleAdmin(e.ctx, change.Redelivered()); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.HandleAdmin(e.ctx, change.Redelivered().Redelivered()); err != nil {
		t.Fatal(err)
	}
	if got := len(e.workMessages()); got != 2*first {
		t.Errorf("%d chunks after the settling pass and its redelivery, want %d", got, 2*first)
	}
}

// Where NAC_DECISIONS does not allow direct gets (replicated streams), the
// last decisions are read one by one from the leader, with the same
// outcome: a decision once, not again for the same evidence.
func TestLastDecisionsFromTheLeader(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cfg := e.stream(bus.StreamDecisions).CachedInfo().Config
	cfg.AllowDirect = false
	if _, err := e.js.UpdateStream(e.ctx, cfg); err != nil {
		t.Fatal(err)
	}
	e.svc.decisions = streamDecisions{js: e.js, stream: e.stream(bus.StreamDecisions), store: e.svc.store}
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", "https://www.contoso.com"))
	e.mustProfile(leftProfile("feed-leader-1", 10))
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "feed-leader-1")
	before := e.published(bus.StreamDecisions)
	e.mustProfile(leftProfile("feed-leader-2", 11))
	if n := e.published(bus.StreamDecisions); n != before {
		t.Errorf("%d decisions more for the same evidence", n-before)
	}
	last, seq, err := e.svc.decisions.Last(e.ctx, org, contactID)
	if err != nil || last == nil || seq != before || last.Value != decide.NotAtCompany || last.ContactRev == 0 {
		t.Errorf("Last = %+v, %d, %v; want the flag at %d with the contact's revision", last, seq, err, before)
	}
}

func (e *env) stream(name string) jetstream.Stream {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}
