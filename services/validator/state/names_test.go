package state

import (
	"encoding/base64"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// named is a contact's change: its name and account.
func named(id string, v int, first, last, account string) *eventsv1.CrmChange {
	c := cols{"firstname": str(first), "lastname": str(last)}
	if account != "" {
		c["parentcustomerid"] = ref("account", account)
	}
	return forRow(update(v, c), org, "contact", id)
}

// statsOf reads the name counts as an evaluation of contact id would.
func statsOf(t *testing.T, s *Store, id string, companies ...string) *decide.NameStats {
	t.Helper()
	row, err := s.Row(ctxT(t), org, "contact", id)
	if err != nil || row == nil {
		t.Fatalf("contact %s: %v %v", id, row, err)
	}
	st, err := s.NameStats(ctxT(t), org, row.Contact(s.cols), companies)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func wantStats(t *testing.T, what string, got *decide.NameStats, want decide.NameStats) {
	t.Helper()
	if got == nil || *got != want {
		t.Errorf("%s: name stats %+v, want %+v", what, got, want)
	}
}

func TestNameCountsFollowContacts(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	const c1, c2, c3 = "c-1", "c-2", "c-3"
	mustApply(t, s, named(c1, 1, "Ada", "Byron", "a1"))
	wantStats(t, "one contact", statsOf(t, s, c1), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 1})

	// The same name however written, on the same account and on another.
	mustApply(t, s, named(c2, 1, "ADA", "Býron", "a1"))
	mustApply(t, s, named(c3, 1, "Grace", "Hopper", "a2"))
	wantStats(t, "two of the name on the account", statsOf(t, s, c1), decide.NameStats{Contacts: 2, ContactsOnAccount: 2, Population: 3})
	wantStats(t, "another name", statsOf(t, s, c3), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 3})

	// Redelivered and replayed changes move nothing.
	for range 2 {
		mustApply(t, s, named(c2, 1, "ADA", "Býron", "a1"))
	}
	wantStats(t, "after redelivery", statsOf(t, s, c1), decide.NameStats{Contacts: 2, ContactsOnAccount: 2, Population: 3})

	// Moved to another account, then renamed, then deleted.
	mustApply(t, s, named(c2, 2, "Ada", "Byron", "a2"))
	wantStats(t, "moved", statsOf(t, s, c1), decide.NameStats{Contacts: 2, ContactsOnAccount: 1, Population: 3})
	mustApply(t, s, named(c2, 3, "Ada", "King", "a2"))
	wantStats(t, "renamed", statsOf(t, s, c1), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 3})
	mustApply(t, s, forRow(del(4), org, "contact", c3))
	wantStats(t, "deleted", statsOf(t, s, c1), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 2})

	// A single name is no full name: neither counted nor read.
	mustApply(t, s, named("c-4", 1, "Cher", "", "a1"))
	if st := statsOf(t, s, "c-4"); st != nil {
		t.Errorf("a single name has stats %+v", st)
	}
	wantStats(t, "after a single name", statsOf(t, s, c1), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 2})
	// The same name in another organization is counted there.
	mustApply(t, s, forRow(update(1, cols{"firstname": str("Ada"), "lastname": str("Byron")}), "org2", "contact", c1))
	wantStats(t, "after another organization's", statsOf(t, s, c1), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 2})
}

// A contact stored before counts were kept reads as unknown, until a
// back-fill reads it again.
func TestNameCountsUnknownUntilCounted(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	mustApply(t, s, named("c-1", 1, "Ada", "Byron", "a1"))
	stream, err := js.Stream(ctxT(t), namesStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range namesKeys(t, js) {
		if k != hashKeyKey {
			if err := stream.Purge(ctxT(t), jetstream.WithPurgeSubject(namesSubject(k))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if st := statsOf(t, s, "c-1"); st != nil {
		t.Errorf("uncounted contact has stats %+v, want unknown", st)
	}
	// A webhook's change of another column does not count it; a back-fill's
	// read of the row does, changed or not.
	mustApply(t, s, forRow(update(2, cols{"jobtitle": str("Buyer")}), org, "contact", "c-1"))
	if st := statsOf(t, s, "c-1"); st != nil {
		t.Errorf("after a title change: stats %+v, want still unknown", st)
	}
	read := named("c-1", 3, "Ada", "Byron", "a1")
	read.MessageName = messageTableRead
	mustApply(t, s, read)
	wantStats(t, "after the back-fill", statsOf(t, s, "c-1"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 1})
}

func memberProfile(id string, observed int, first, last string, companies ...string) *eventsv1.ProfileChange {
	p := &eventsv1.ProfileChange{EventId: fmt.Sprint(id, observed), Source: "feed", MemberId: id, FirstName: first, LastName: last,
		ObservedAt: timestamppb.New(at(observed))}
	for _, co := range companies {
		p.Positions = append(p.Positions, &eventsv1.Position{CompanyId: co, CompanyName: co, Start: &eventsv1.YearMonth{Year: 2020}})
	}
	return p
}

func TestNameCountsFollowMembersAndErasure(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	s.names.emptyTTL = time.Second
	ctx := ctxT(t)
	mustApply(t, s, named("c-1", 1, "Ada", "Byron", "a1"))
	before := namesKeys(t, js)

	apply := func(p *eventsv1.ProfileChange) {
		t.Helper()
		if _, _, _, err := s.ApplyProfile(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	apply(memberProfile("m-1", 1, "Ada", "Byron", "co-contoso", "co-fabrikam"))
	apply(memberProfile("m-2", 1, "Ada", "Byron", "co-fabrikam"))
	apply(memberProfile("m-3", 1, "Grace", "Hopper", "co-contoso"))
	wantStats(t, "three members", statsOf(t, s, "c-1", "co-contoso"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1,
		Members: 2, MembersAtCompany: 1, Population: 4})
	wantStats(t, "at fabrikam", statsOf(t, s, "c-1", "co-fabrikam"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1,
		Members: 2, MembersAtCompany: 2, Population: 4})
	apply(memberProfile("m-2", 1, "Ada", "Byron", "co-fabrikam")) // redelivered
	apply(memberProfile("m-2", 2, "Ada", "Byron", "co-contoso"))  // a new job
	wantStats(t, "moved", statsOf(t, s, "c-1", "co-contoso"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1,
		Members: 2, MembersAtCompany: 2, Population: 4})

	// Erased (twice: redelivered): out of every count, and, once the TTL
	// passes, no key of theirs is left.
	for range 2 {
		for _, id := range []string{"m-1", "m-2", "m-3"} {
			if _, _, err := s.EraseMember(ctx, &eventsv1.MemberErased{EventId: "e-" + id, MemberId: id, ObservedAt: timestamppb.New(at(5))}); err != nil {
				t.Fatal(err)
			}
		}
	}
	wantStats(t, "erased", statsOf(t, s, "c-1", "co-contoso"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Population: 1})
	testkit.Eventually(t, "the erased members' counts and records gone", 15*time.Second, func() bool {
		return slices.Equal(namesKeys(t, js), before)
	}, func() string { return fmt.Sprintf("keys %v, before the members %v", namesKeys(t, js), before) })
	// A profile observed after the erasure starts anew.
	apply(memberProfile("m-1", 9, "Ada", "Byron", "co-contoso"))
	wantStats(t, "anew", statsOf(t, s, "c-1", "co-contoso"), decide.NameStats{Contacts: 1, ContactsOnAccount: 1,
		Members: 1, MembersAtCompany: 1, Population: 2})
}

// namesKeys lists the names bucket's keys, from its stream's subjects (a
// key listing would trip over values expiring meanwhile).
func namesKeys(t *testing.T, js jetstream.JetStream) []string {
	t.Helper()
	stream, err := js.Stream(ctxT(t), namesStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctxT(t), jetstream.WithSubjectFilter(namesBase+">"))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for subject := range maps.Keys(info.State.Subjects) {
		keys = append(keys, namesKeyOf(subject))
	}
	slices.Sort(keys)
	return keys
}

// The bucket's keys and values hold no name, however encoded.
func TestNameCountsRevealNoName(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	mustApply(t, s, named("c-1", 1, "Zebulon", "Quattlebaum", "a1"))
	if _, _, _, err := s.ApplyProfile(ctxT(t), memberProfile("m-1", 1, "Zebulon", "Quattlebaum", "co-1")); err != nil {
		t.Fatal(err)
	}
	dump, err := testkit.DumpBuckets(ctxT(t), js, bus.BucketNames)
	if err != nil {
		t.Fatal(err)
	}
	if len(dump) < 8 {
		t.Fatalf("names bucket %v: want the counts and records", dump)
	}
	forms := []string{"zebulon", "quattlebaum", bus.Token("zebulon quattlebaum"), base64.RawURLEncoding.EncodeToString([]byte("zebulon"))}
	for k, v := range dump {
		for _, f := range forms {
			if strings.Contains(strings.ToLower(k), strings.ToLower(f)) || strings.Contains(strings.ToLower(v), strings.ToLower(f)) {
				t.Errorf("%s = %q shows the name (%s)", k, v, f)
			}
		}
	}
}

// Two replicas applying a shuffled, partly redelivered run of contact
// changes concurrently end with the counts the final rows imply.
func TestNameCountsTwoReplicas(t *testing.T) {
	t.Parallel()
	_, url := testkit.JetStream(t)
	var stores []*Store
	for range 2 {
		nc, err := nats.Connect(url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(ctxT(t), js, Columns{Flag: flagCol})
		if err != nil {
			t.Fatal(err)
		}
		stores = append(stores, s)
	}
	if !slices.Equal(stores[0].names.key, stores[1].names.key) {
		t.Fatal("the replicas hash names under different keys")
	}
	// 12 contacts, each renamed and moved a few times among 3 names and 2
	// accounts; a third of the changes delivered twice.
	names := [][2]string{{"Ada", "Byron"}, {"John", "Smith"}, {"Grace", "Hopper"}}
	rng := rand.New(rand.NewPCG(7, 7))
	var changes []*eventsv1.CrmChange
	final := map[string]*eventsv1.CrmChange{}
	for i := range 12 {
		id := fmt.Sprintf("c-%02d", i)
		for v := 1; v <= 4; v++ {
			n := names[rng.IntN(len(names))]
			ch := named(id, v, n[0], n[1], fmt.Sprint("a", rng.IntN(2)))
			changes = append(changes, ch)
			if rng.IntN(3) == 0 {
				changes = append(changes, ch)
			}
			final[id] = ch
		}
	}
	rng.Shuffle(len(changes), func(i, j int) { changes[i], changes[j] = changes[j], changes[i] })
	queue := make(chan *eventsv1.CrmChange, len(changes))
	for _, ch := range changes {
		queue <- ch
	}
	close(queue)
	var wg sync.WaitGroup
	errs := make(chan error, len(changes))
	for _, s := range stores {
		for range 3 {
			wg.Go(func() {
				for ch := range queue {
					if _, _, _, err := s.ApplyChange(ctxT(t), ch); err != nil {
						errs <- err
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// What the final rows imply.
	onName, onAccount := map[string]int{}, map[string]int{}
	for _, ch := range final {
		n := ch.GetColumns()["firstname"].GetString_() + " " + ch.GetColumns()["lastname"].GetString_()
		onName[n]++
		onAccount[n+"/"+ch.GetColumns()["parentcustomerid"].GetReference().GetId()]++
	}
	for id, ch := range final {
		n := ch.GetColumns()["firstname"].GetString_() + " " + ch.GetColumns()["lastname"].GetString_()
		want := decide.NameStats{Contacts: onName[n], ContactsOnAccount: onAccount[n+"/"+ch.GetColumns()["parentcustomerid"].GetReference().GetId()], Population: 12}
		for i, s := range stores {
			wantStats(t, fmt.Sprintf("replica %d, contact %s (%s)", i, id, n), statsOf(t, s, id), want)
		}
	}
}
