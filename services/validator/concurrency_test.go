package validator

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// scenarioEvent is one message of a scenario, for one of the handlers.
type scenarioEvent struct {
	handler string // crm, profile, admin
	subject string
	data    []byte
	what    string
}

func handleEvent(ctx context.Context, svc *Service, ev scenarioEvent, delivered uint64) error {
	msg := &testkit.Msg{Subj: ev.subject, Payload: ev.data, Delivered: delivered}
	handle := func(msg jetstream.Msg) error {
		switch ev.handler {
		case "crm":
			return svc.HandleCRM(ctx, msg)
		case "profile":
			return svc.HandleProfile(ctx, msg)
		case "admin":
			return svc.HandleAdmin(ctx, msg)
		}
		return fmt.Errorf("no handler %q", ev.handler)
	}
	return heldAgain(handle(msg), func() error { return handle(msg.Redelivered()) })
}

// scenario builds the events of a day in an organization: 30 contacts over
// 3 accounts, 10 members, one sync user. Versions (row modifiedon,
// observed_at, changed_at) increase in list order: the list is the order
// things happened in.
type scenario struct {
	events   []scenarioEvent
	contacts []string
	clock    int
}

func (s *scenario) tick() int { s.clock++; return s.clock }

func (s *scenario) add(handler, subject, what string, m proto.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	s.events = append(s.events, scenarioEvent{handler: handler, subject: subject, data: data, what: what})
}

func (s *scenario) crm(table, id string, cols map[string]*eventsv1.Value) {
	ch := crmRow(table, id, s.tick(), cols)
	s.add("crm", bus.CRMSubject(org, table, id), fmt.Sprintf("%s %s v%d %v", table, id, s.clock, keys(cols)), ch)
}

func (s *scenario) deleteRow(table, id string) {
	ch := crmRow(table, id, s.tick(), nil)
	ch.Operation = eventsv1.Operation_OPERATION_DELETE
	s.add("crm", bus.CRMSubject(org, table, id), fmt.Sprintf("delete %s %s v%d", table, id, s.clock), ch)
}

func keys(m map[string]*eventsv1.Value) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

var accountNames = []string{"Contoso Ltd", "Fabrikam", "Northwind Traders"}

func scAccount(i int) string { return fmt.Sprintf("a0a0a0a0-0000-4000-8000-%012d", i) }
func scContact(i int) string { return fmt.Sprintf("c1c1c1c1-0000-4000-8000-%012d", i) }
func scMail(j int) string    { return fmt.Sprintf("member%d@mail.test", j) }

// Profiles: where member j is, over time.
const (
	atFabrikam  = "fabrikam"  // left Contoso for Fabrikam
	backContoso = "contoso"   // then left Fabrikam, back at Contoso
	atNorthwind = "northwind" // then left Fabrikam for Northwind
)

func (s *scenario) profile(j int, where string) {
	positions := []*eventsv1.Position{
		{CompanyName: "Contoso", Title: "Engineer", Start: ymP(2018, 3), End: ymP(2024, 6)},
		{CompanyName: "Fabrikam", Title: "Lead", Start: ymP(2024, 7), Current: true},
	}
	switch where {
	case backContoso:
		positions[1].End, positions[1].Current = ymP(2025, 1), false
		positions = append(positions, &eventsv1.Position{CompanyName: "Contoso Ltd.", Title: "Principal", Start: ymP(2025, 2), Current: true})
	case atNorthwind:
		positions[1].End, positions[1].Current = ymP(2025, 1), false
		positions = append(positions, &eventsv1.Position{CompanyName: "Northwind Traders", Title: "Director", Start: ymP(2025, 2), Current: true})
	}
	observed := s.tick()
	member := fmt.Sprintf("m-%d", j)
	s.add("profile", bus.ProfileMemberSubject(member), fmt.Sprintf("profile %s %s t%d", member, where, observed), &eventsv1.ProfileChange{
		EventId: fmt.Sprintf("feed-%s-%d", member, observed), Source: "feed", MemberId: member,
		FirstName: "Pat", LastName: fmt.Sprintf("Member%d", j), EmailSha256: []string{eventsv1.HashEmail(scMail(j))},
		ObservedAt: at(observed), Positions: positions,
	})
}

func (s *scenario) syncUser(enabled bool) {
	changed := s.tick()
	s.add("admin", bus.AdminSyncUserSubject(org, syncUser), fmt.Sprintf("sync user enabled=%v t%d", enabled, changed), &eventsv1.SyncUserChange{
		EventId: fmt.Sprintf("su-%d", changed), OrganizationId: org, UserId: syncUser, Enabled: enabled, ChangedAt: at(changed)})
}

func (s *scenario) settings(threshold float64) {
	changed := s.tick()
	s.add("admin", bus.AdminSettingsSubject(org), fmt.Sprintf("settings threshold=%v t%d", threshold, changed), &eventsv1.OrgSettingsChange{
		EventId: fmt.Sprintf("settings-%d", changed), OrganizationId: org, DataValidation: true,
		ConfidenceThreshold: threshold, ChangedAt: at(changed)})
}

func buildScenario() *scenario {
	s := &scenario{}
	contactOwner := func(i int) string {
		if i%4 == 0 {
			return syncUser
		}
		return otherUser
	}
	// Accounts: Contoso and Fabrikam owned by the sync user, Northwind not.
	for i, name := range accountNames {
		own := syncUser
		if i == 2 {
			own = otherUser
		}
		s.crm("account", scAccount(i), map[string]*eventsv1.Value{"name": strV(name), "ownerid": owner(own), "statecode": choiceV(0)})
	}
	s.settings(0.9)
	for i := range 30 {
		id := scContact(i)
		s.contacts = append(s.contacts, id)
		s.crm("contact", id, map[string]*eventsv1.Value{
			"firstname": strV("Pat"), "lastname": strV(fmt.Sprintf("Member%d", i%10)), "emailaddress1": strV(scMail(i % 10)),
			"parentcustomerid": refV("account", scAccount(i%3)), "ownerid": owner(contactOwner(i)), "statecode": choiceV(0),
		})
		if i%3 == 0 {
			s.profile((i/3)%10, []string{atFabrikam, backContoso}[i%2])
		}
	}
	s.crm("opportunity", "0bb0b0b0-0000-4000-8000-0000000000f1", map[string]*eventsv1.Value{"ownerid": owner(syncUser), "parentcontactid": refV("contact", scContact(2)), "statecode": choiceV(0)})
	s.crm("opportunity", "0bb0b0b0-0000-4000-8000-0000000000f2", map[string]*eventsv1.Value{"ownerid": owner(syncUser), "customerid": refV("contact", scContact(17)), "statecode": choiceV(0)})
	s.settings(0.8)
	for j := range 10 {
		s.profile(j, atFabrikam)
		s.crm("contact", scContact(j*3+1), map[string]*eventsv1.Value{"jobtitle": strV("Engineer")})
	}
	// Moves, renames, a sync user switched off for a while.
	s.crm("contact", scContact(1), map[string]*eventsv1.Value{"parentcustomerid": refV("account", scAccount(0))})
	s.crm("contact", scContact(5), map[string]*eventsv1.Value{"parentcustomerid": refV("account", scAccount(0))})
	s.crm("contact", scContact(10), map[string]*eventsv1.Value{"parentcustomerid": refV("account", scAccount(2))})
	s.crm("contact", scContact(7), map[string]*eventsv1.Value{"emailaddress1": strV(scMail(3))})
	s.crm("account", scAccount(0), map[string]*eventsv1.Value{"name": strV("Contoso Group")})
	s.crm("account", scAccount(2), map[string]*eventsv1.Value{"name": strV("Tailspin Toys")})
	s.syncUser(false)
	s.crm("systemuser", syncUser, map[string]*eventsv1.Value{"isdisabled": boolV(true)})
	for j := range 10 {
		switch j % 3 {
		case 0, 2:
			s.profile(j, backContoso)
		case 1:
			s.profile(j, atNorthwind)
		}
		s.crm("contact", scContact(j*3), map[string]*eventsv1.Value{"jobtitle": strV("Lead")})
		if j == 4 {
			s.syncUser(true)
		}
		if j == 6 {
			s.crm("systemuser", syncUser, map[string]*eventsv1.Value{"isdisabled": boolV(false)})
		}
	}
	// Later: people leave again, things move back.
	s.crm("opportunity", "0bb0b0b0-0000-4000-8000-0000000000f1", map[string]*eventsv1.Value{"parentcontactid": refV("contact", scContact(14))})
	s.crm("contact", scContact(5), map[string]*eventsv1.Value{"parentcustomerid": refV("account", scAccount(2))})
	s.crm("contact", scContact(7), map[string]*eventsv1.Value{"emailaddress1": strV(scMail(7))})
	s.crm("account", scAccount(2), map[string]*eventsv1.Value{"name": strV("Northwind Traders")})
	s.crm("account", scAccount(1), map[string]*eventsv1.Value{"ownerid": owner(otherUser)})
	s.crm("account", scAccount(1), map[string]*eventsv1.Value{"name": strV("Fabrikam Inc")})
	for j := range 10 {
		if j%3 != 1 {
			s.profile(j, []string{atFabrikam, atNorthwind}[j%2])
		}
		s.crm("contact", scContact(j*3+2), map[string]*eventsv1.Value{"jobtitle": strV("Director")})
	}
	// The sources observe everyone once more; people fill in countries.
	for j := range 10 {
		switch j % 3 {
		case 0, 2:
			s.profile(j, []string{atFabrikam, atNorthwind}[j%2])
		case 1:
			s.profile(j, atNorthwind)
		}
	}
	for i := 0; i < 30; i += 2 {
		s.crm("contact", scContact(i), map[string]*eventsv1.Value{"address1_country": strV("NL")})
	}
	s.deleteRow("contact", scContact(9))
	s.crm("contact", scContact(11), map[string]*eventsv1.Value{"statecode": choiceV(1)})
	s.crm("contact", scContact(13), map[string]*eventsv1.Value{"emailaddress1": strV(scMail(0))})
	return s
}

// finalDecisions reads the last decision value of every contact that has one.
func finalDecisions(ctx context.Context, js jetstream.JetStream) (map[string]eventsv1.Flag, error) {
	stream, err := js.Stream(ctx, bus.StreamDecisions)
	if err != nil {
		return nil, err
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("nac.decision.>"))
	if err != nil {
		return nil, err
	}
	out := map[string]eventsv1.Flag{}
	prefix := "nac.decision." + org + "."
	for subject := range info.State.Subjects {
		contact, ok := strings.CutPrefix(subject, prefix)
		if !ok {
			return nil, fmt.Errorf("decision on %s, another organization", subject)
		}
		raw, err := stream.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return nil, err
		}
		var d eventsv1.Decision
		if err := proto.Unmarshal(raw.Data, &d); err != nil {
			return nil, err
		}
		if d.GetContactId() != contact {
			return nil, fmt.Errorf("decision for %s on %s", d.GetContactId(), subject)
		}
		out[contact] = d.GetValue()
	}
	return out, nil
}

// replicas opens n validators, each on its own connection, over one fresh
// embedded server, with the sync user enabled as newEnv does.
func replicas(t *testing.T, cfg Config, n int) ([]*Service, jetstream.JetStream) {
	t.Helper()
	ns := testkit.NATSServer(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var svcs []*Service
	var first jetstream.JetStream
	for i := range n {
		nc, err := nats.Connect(ns.ClientURL(), nats.Name("replica-"+strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = js
			if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
				t.Fatal(err)
			}
		}
		svc, err := Open(ctx, cfg, js, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, svc)
	}
	if _, _, err := svcs[0].store.ApplySyncUser(ctx, &eventsv1.SyncUserChange{EventId: "su", OrganizationId: org,
		UserId: syncUser, Enabled: true, ChangedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	return svcs, first
}

type delivery struct {
	ev        scenarioEvent
	delivered uint64
}

// deliveries is the scenario's events shuffled, about 30% of them twice
// (published twice, or redelivered).
func deliveries(events []scenarioEvent, seed uint64) []delivery {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var out []delivery
	for _, ev := range events {
		out = append(out, delivery{ev: ev, delivered: 1})
		if rng.IntN(10) < 3 {
			out = append(out, delivery{ev: ev, delivered: uint64(1 + rng.IntN(2))})
		}
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// handleConcurrently hands the deliveries to 3 goroutines per replica at
// once. A transient error is retried, as a redelivery, on the next replica.
func handleConcurrently(ctx context.Context, svcs []*Service, ds []delivery) []error {
	queue := make(chan delivery, len(ds))
	for _, d := range ds {
		queue <- d
	}
	close(queue)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for r := range svcs {
		for range 3 {
			wg.Go(func() {
				for d := range queue {
					var err error
					for attempt := range 10 {
						hctx, cancel := context.WithTimeout(ctx, 20*time.Second)
						err = handleEvent(hctx, svcs[(r+attempt)%len(svcs)], d.ev, d.delivered+uint64(attempt))
						cancel()
						if err == nil || bus.IsPermanent(err) {
							break
						}
						time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
					}
					if err != nil {
						mu.Lock()
						errs = append(errs, fmt.Errorf("%s: %w", d.ev.what, err))
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	return errs
}

// Three replicas handling a shuffled, partly duplicated day of events
// concurrently end with the decisions one validator reaches handling them
// in order.
func TestConcurrentReplicasMatchSequentialReference(t *testing.T) {
	t.Parallel()
	sc := buildScenario()
	if n := len(sc.events); n < 130 {
		t.Fatalf("scenario of %d events, want about 150", n)
	}

	// Reference: one validator, every event once, in order.
	ref := newEnv(t)
	for _, ev := range sc.events {
		if err := handleEvent(ref.ctx, ref.svc, ev, 1); err != nil {
			t.Fatalf("reference: %s: %v", ev.what, err)
		}
	}
	want := map[string]eventsv1.Flag{}
	published, err := finalDecisions(ref.ctx, ref.js)
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, c := range sc.contacts {
		want[c] = published[c] // none: No Feedback, the column's default
		_, decided := published[c]
		counts[fmt.Sprintf("%v decided=%v", want[c], decided)]++
	}
	for id := range published {
		if !slices.Contains(sc.contacts, id) {
			t.Errorf("reference: decision for an unknown contact %s", id)
		}
	}
	// Each final decision is what the final state implies.
	for _, c := range sc.contacts {
		if res, _ := ref.verdict(c); eventsv1.Flag(res.Value) != want[c] {
			t.Errorf("reference: contact %s ends %v; its final state implies %v (%s)", c, want[c], eventsv1.Flag(res.Value), res.Reason)
		}
	}
	// The scenario must exercise something: flags, and flags taken back.
	if counts["FLAG_NOT_AT_COMPANY decided=true"] < 4 || counts["FLAG_NO_FEEDBACK decided=true"] < 4 || counts["FLAG_NO_FEEDBACK decided=false"] < 4 {
		t.Fatalf("reference outcome too uniform to test anything: %v", counts)
	}
	t.Logf("%d events; reference outcome %v", len(sc.events), counts)
	// The contacts share names in threes: the name counts have something
	// to agree on.
	shared := 0
	for _, c := range sc.contacts {
		if st := namesOf(ref.ctx, t, ref.svc, c); st != nil && st.Contacts > 1 {
			shared++
		}
	}
	if shared < 20 {
		t.Fatalf("reference: %d contacts share their name with another, want most", shared)
	}

	wantState, err := testkit.DumpBuckets(ref.ctx, ref.js, validatorBuckets...)
	if err != nil {
		t.Fatal(err)
	}

	seeds := []uint64{1, 2, 3, 4, 5}
	if s := os.Getenv("NAC_TEST_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("NAC_TEST_SEED=%q: %v", s, err)
		}
		seeds = []uint64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel() // each seed on a server of its own
			svcs, js := replicas(t, ref.svc.cfg, 3)
			ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
			defer cancel()
			ds := deliveries(sc.events, seed)
			for _, err := range handleConcurrently(ctx, svcs, ds) {
				t.Errorf("seed %d: %v", seed, err)
			}
			got, err := finalDecisions(ctx, js)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range sc.contacts {
				if got[c] != want[c] {
					t.Errorf("seed %d: contact %s ends %v, the reference %v", seed, c, got[c], want[c])
				}
			}
			for c, v := range got {
				if !slices.Contains(sc.contacts, c) {
					t.Errorf("seed %d: decision %v for an unknown contact %s", seed, v, c)
				} else if v != want[c] {
					t.Errorf("seed %d: decision subject of %s holds %v; the reference state implies %v", seed, c, v, want[c])
				}
			}
			// The state is the same too. The index may keep an edge the
			// reference dropped (readers check the record behind it), but
			// never lacks one.
			gotState, err := testkit.DumpBuckets(ctx, js, validatorBuckets...)
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range slices.Sorted(maps.Keys(wantState)) {
				if g, ok := gotState[k]; !ok {
					t.Errorf("seed %d: %s missing", seed, k)
				} else if g != wantState[k] {
					t.Errorf("seed %d: %s = %s, the reference %s", seed, k, g, wantState[k])
				}
			}
			for k := range gotState {
				if _, ok := wantState[k]; !ok && !strings.HasPrefix(k, bus.BucketIndex+"/") {
					t.Errorf("seed %d: %s, which the reference does not have", seed, k)
				}
			}
			// And the name counts (each deployment hashes under a key of
			// its own, so they are compared as an evaluation reads them),
			// once a replica's populations reflect the others' moves.
			time.Sleep(state.ScopeLease)
			for _, c := range sc.contacts {
				for i, svc := range svcs {
					if g, w := namesOf(ctx, t, svc, c), namesOf(ctx, t, ref.svc, c); !reflect.DeepEqual(g, w) {
						t.Errorf("seed %d: replica %d reads the name counts of %s as %+v, the reference %+v", seed, i, c, g, w)
					}
				}
			}
			var conflicts, corrections float64
			for _, s := range svcs {
				conflicts += testutil.ToFloat64(s.metrics.conflicts)
				corrections += testutil.ToFloat64(s.metrics.corrections)
			}
			t.Logf("seed %d: %d deliveries; %v decision conflicts, %v corrections", seed, len(ds), conflicts, corrections)
		})
	}
}

// validatorBuckets are every bucket of the validator's state.
var validatorBuckets = []string{bus.BucketContacts, bus.BucketAccounts, bus.BucketMembers, bus.BucketCompanies,
	bus.BucketIndex, bus.BucketRows, bus.BucketSyncUsers, bus.BucketOrgs}
