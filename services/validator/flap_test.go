package validator

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Issue 11 §6: no decision rests on a read older than what the decision it
// replaces saw. Sync users are only added and every profile says the
// member left, so a contact's decisions may go 0 → 1 once and never back:
// a 1 followed by a 0 is a flap, made on a stale read of its scope.
//
// Each account's owner becomes a sync user while its member's profile
// changes (the member matches every contact of the account: the same
// person entered several times) and a fan-out chunk of the organization
// (the account's contacts around many others) keep being evaluated. A
// chunk reads the first contacts' scope before the owner is a sync user
// and decides the last ones after the owner's change has flagged them.
func TestNoFlapWhileSyncUsersAreAdded(t *testing.T) {
	t.Parallel()
	const (
		accounts = 4
		dupes    = 8   // contacts per member, all under the member's account
		fillers  = 150 // contacts out of scope, in every chunk
		feeders  = 2   // goroutines sending profile changes
	)
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute) // a long test on a loaded machine
	defer cancel()
	e.ctx = ctx
	acct := func(i int) string { return fmt.Sprintf("a7a7a7a7-0000-4000-8000-%012d", i) }
	const outOfScope = "a7a7a7a7-0000-4000-8000-999999999999"
	ownerOf := func(i int) string { return fmt.Sprintf("5e5e5e5e-0000-4000-8000-7%011d", i) }
	dupeOf := func(i, j int) string { return fmt.Sprintf("c7c7c7c7-0000-4000-8000-%06d%06d", i, j) }
	fillerOf := func(j int) string { return fmt.Sprintf("c8c8c8c8-0000-4000-8000-%012d", j) }
	mail := func(i int) string { return fmt.Sprintf("pat.dupe%d@contoso.com", i) }
	member := func(i int) string { return fmt.Sprintf("m-dupe-%d", i) }
	var observed [accounts]atomic.Int64
	profile := func(i int) *eventsv1.ProfileChange {
		n := int(observed[i].Add(1))
		return &eventsv1.ProfileChange{
			EventId: fmt.Sprintf("flap-%d-%d", i, n), Source: "feed", MemberId: member(i),
			FirstName: "Pat", LastName: fmt.Sprintf("Dupe%d", i), EmailSha256: []string{eventsv1.HashEmail(mail(i))},
			ObservedAt: at(10 + n),
			Positions: []*eventsv1.Position{
				{CompanyName: "Contoso", Title: "Engineer", Start: ymP(2018, 3), End: ymP(2024, 6)},
				// The title changes with every observation, the verdict never.
				{CompanyName: "Fabrikam", Title: fmt.Sprintf("Lead %d", n%3), Start: ymP(2024, 7), Current: true},
			},
		}
	}
	// Stored without evaluating: out of scope, they would decide nothing.
	contact := func(id, account, first, last, mail string) {
		ch := crmRow("contact", id, 3, map[string]*eventsv1.Value{
			"firstname": strV(first), "lastname": strV(last), "emailaddress1": strV(mail),
			"parentcustomerid": refV("account", account), "statecode": choiceV(0),
		})
		if _, _, _, err := e.svc.store.ApplyChange(e.ctx, ch); err != nil {
			t.Fatal(err)
		}
	}
	e.mustCRM(crmRow("account", outOfScope, 2, map[string]*eventsv1.Value{"name": strV("Contoso Ltd"), "statecode": choiceV(0)}))
	for j := range fillers {
		contact(fillerOf(j), outOfScope, "Sam", fmt.Sprintf("Filler%d", j), fmt.Sprintf("filler%d@contoso.com", j))
	}
	var watched []string
	for i := range accounts {
		e.mustCRM(crmRow("account", acct(i), 2, map[string]*eventsv1.Value{
			"name": strV("Contoso Ltd"), "ownerid": owner(ownerOf(i)), "statecode": choiceV(0),
		}))
		for j := range dupes {
			contact(dupeOf(i, j), acct(i), "Pat", fmt.Sprintf("Dupe%d", i), mail(i))
			watched = append(watched, dupeOf(i, j))
		}
		e.mustProfile(profile(i))
	}
	if n := e.published(bus.StreamDecisions); n != 0 {
		t.Fatalf("%d decisions before any owner is a sync user", n)
	}
	// A chunk: half the account's contacts, the fillers, the other half.
	chunk := func(i, n int) *testkit.Msg {
		ids := []string{}
		for j := range dupes / 2 {
			ids = append(ids, dupeOf(i, j))
		}
		for j := range fillers {
			ids = append(ids, fillerOf(j))
		}
		for j := dupes / 2; j < dupes; j++ {
			ids = append(ids, dupeOf(i, j))
		}
		id := fmt.Sprintf("flap-chunk-%d-%d", i, n)
		return msgOf(t, bus.WorkSubject(org), &eventsv1.EvaluateRequest{RequestId: id, OrganizationId: org, ContactIds: ids,
			Kind: "crm_account", CauseEventId: id})
	}

	// Every decision, in the order the stream took them.
	var mu sync.Mutex
	values := map[string][]eventsv1.Flag{}
	sub, err := e.js.Conn().Subscribe("nac.decision.>", func(m *nats.Msg) {
		var d eventsv1.Decision
		if err := proto.Unmarshal(m.Data, &d); err != nil {
			t.Errorf("decode decision: %v", err)
			return
		}
		mu.Lock()
		values[d.GetContactId()] = append(values[d.GetContactId()], d.GetValue())
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := e.js.Conn().Flush(); err != nil {
		t.Fatal(err)
	}

	// One account at a time: its member's profile changes and the chunks
	// keep coming while its owner becomes a sync user.
	for i := range accounts {
		stop := make(chan struct{})
		var feeding sync.WaitGroup
		loop := func(next func(n int) (*testkit.Msg, func(context.Context, jetstream.Msg) error)) {
			feeding.Go(func() {
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					msg, handle := next(n)
					if err := deliver(e, msg, handle); err != nil {
						t.Errorf("%s: %v", msg.Subj, err)
						return
					}
				}
			})
		}
		for range feeders {
			loop(func(int) (*testkit.Msg, func(context.Context, jetstream.Msg) error) {
				p := profile(i)
				return msgOf(t, bus.ProfileMemberSubject(p.GetMemberId()), p), e.svc.HandleProfile
			})
		}
		loop(func(n int) (*testkit.Msg, func(context.Context, jetstream.Msg) error) {
			return chunk(i, n), e.svc.HandleWork
		})
		time.Sleep(30 * time.Millisecond)
		change := msgOf(t, bus.AdminSyncUserSubject(org, ownerOf(i)), &eventsv1.SyncUserChange{
			EventId: fmt.Sprintf("su-flap-%d", i), OrganizationId: org, UserId: ownerOf(i), Enabled: true, ChangedAt: at(5),
		})
		if err := deliver(e, change, e.svc.HandleAdmin); err != nil {
			t.Fatalf("sync user %d: %v", i, err)
		}
		time.Sleep(100 * time.Millisecond)
		close(stop)
		feeding.Wait()
	}

	testkit.Eventually(t, "every contact of the accounts flagged", 10*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range watched {
			v := values[c]
			if len(v) == 0 || v[len(v)-1] != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
				return false
			}
		}
		return true
	})
	mu.Lock()
	defer mu.Unlock()
	flaps := 0
	for c, v := range values {
		if !slices.Contains(watched, c) {
			t.Errorf("contact %s, out of scope: decisions %s", c, flagRun(v))
			continue
		}
		for k := 1; k < len(v); k++ {
			if v[k-1] == eventsv1.Flag_FLAG_NOT_AT_COMPANY && v[k] != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
				flaps++
				t.Errorf("contact %s: decisions %s: back from 1 with no change of evidence", c, flagRun(v))
				break
			}
		}
	}
	t.Logf("%d contacts decided, %d flapped", len(values), flaps)
}

// deliver handles msg as a consumer would: again after a transient
// failure (a contended decision, here where every profile change makes the
// last decision stale at once), and once more after a hold.
func deliver(e *env, msg *testkit.Msg, handle func(context.Context, jetstream.Msg) error) error {
	var err error
	for range 10 {
		err = handle(e.ctx, msg)
		if bus.IsHold(err) {
			time.Sleep(state.ScopeSettle)
		} else if err == nil || bus.IsPermanent(err) {
			return err
		}
		msg = msg.Redelivered()
	}
	return err
}

func flagRun(v []eventsv1.Flag) string {
	var b strings.Builder
	for k, f := range v {
		if k > 0 {
			b.WriteString("→")
		}
		fmt.Fprint(&b, int(f))
	}
	return b.String()
}
