package state

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// storeEvent is one input of the store, applied by the method its type
// calls for.
type storeEvent struct {
	what string
	msg  proto.Message
}

func applyEvent(ctx context.Context, s *Store, ev storeEvent) error {
	var err error
	switch m := ev.msg.(type) {
	case *eventsv1.CrmChange:
		_, _, _, err = s.ApplyChange(ctx, m)
	case *eventsv1.ProfileChange:
		_, _, _, err = s.ApplyProfile(ctx, m)
	case *eventsv1.MemberErased:
		// The contacts to re-evaluate depend on what was there when the
		// erasure came; once they are (ErasureDone), nothing does.
		if _, _, err = s.EraseMember(ctx, m); err == nil {
			err = s.ErasureDone(ctx, m.GetMemberId())
		}
	case *eventsv1.CompanyChange:
		_, _, _, err = s.ApplyCompany(ctx, m)
	default:
		err = fmt.Errorf("no apply for %T", m)
	}
	return err
}

// propertyEvents are contacts, accounts, an opportunity and a system user
// changing over time, members observed again (one erased, then observed
// anew), and company pages.
func propertyEvents() []storeEvent {
	var evs []storeEvent
	row := func(table, id string, op eventsv1.Operation, v int, c cols) {
		ch := &eventsv1.CrmChange{OrganizationId: org, Table: table, RowId: id, Operation: op, Columns: c, RowModifiedAt: timestamppb.New(at(v))}
		evs = append(evs, storeEvent{fmt.Sprintf("%s %s %v v%d %v", table, id, op, v, slices.Sorted(maps.Keys(c))), ch})
	}
	const up, cr, del = eventsv1.Operation_OPERATION_UPDATE, eventsv1.Operation_OPERATION_CREATE, eventsv1.Operation_OPERATION_DELETE
	owner := ref("systemuser", "u1")
	// Contacts.
	row("contact", "c1", cr, 1, cols{"firstname": str("Ada"), "lastname": str("Lovelace"), "emailaddress1": str("ada@contoso.com"),
		"parentcustomerid": ref("account", "a1"), "ownerid": owner})
	row("contact", "c1", up, 3, cols{"parentcustomerid": ref("account", "a2")})
	row("contact", "c1", up, 6, cols{"parentcustomerid": ref("account", "a1"), "emailaddress1": str("ada@fabrikam.com")})
	row("contact", "c1", up, 7, cols{flagCol: choice(1)})
	row("contact", "c2", cr, 2, cols{"firstname": str("Grace"), "lastname": str("Hopper"), "emailaddress2": str("grace@contoso.com"),
		"parentcustomerid": ref("account", "a2")})
	row("contact", "c2", del, 5, nil)
	row("contact", "c2", cr, 8, cols{"firstname": str("Grace"), "lastname": str("Hopper"), "emailaddress1": str("grace@navy.mil"),
		"parentcustomerid": ref("account", "a3")})
	row("contact", "c3", cr, 1, cols{"firstname": str("Alan"), "lastname": str("Turing"), "parentcustomerid": ref("account", "a1")})
	row("contact", "c3", up, 4, cols{"lastname": str("Mathison"), "jobtitle": str("Fellow")})
	row("contact", "c3", up, 4, cols{"lastname": str("Turing"), "jobtitle": str("Fellow")}) // same version, another value
	row("contact", "c4", up, 2, cols{"emailaddress1": str("kay@contoso.com")})              // no create seen
	row("contact", "c4", up, 9, cols{"parentcustomerid": ref("account", "a3"), "firstname": str("Mary"), "lastname": str("Kay")})
	// Accounts.
	row("account", "a1", cr, 1, cols{"name": str("Contoso Ltd"), "websiteurl": str("https://www.contoso.com"), "ownerid": owner})
	row("account", "a1", up, 5, cols{"name": str("Contoso Group"), "websiteurl": str("contoso.co.uk")})
	row("account", "a2", cr, 2, cols{"name": str("Fabrikam"), "ownerid": ref("systemuser", "u2")})
	row("account", "a2", up, 3, cols{"ownerid": owner})
	row("account", "a2", del, 10, nil)
	row("account", "a3", cr, 4, cols{"name": str("Northwind"), "websiteurl": str("northwind.example")})
	row("account", "a3", up, 4, cols{"name": str("Northwind Traders")})
	// An opportunity and a system user.
	row("opportunity", "o1", cr, 2, cols{"parentcontactid": ref("contact", "c1"), "ownerid": owner})
	row("opportunity", "o1", up, 6, cols{"customerid": ref("contact", "c3")})
	row("opportunity", "o1", up, 7, cols{"parentcontactid": ref("contact", "c2")})
	row("systemuser", "u1", up, 1, cols{"isdisabled": boolV(false)})
	row("systemuser", "u1", up, 5, cols{"isdisabled": boolV(true)})

	// Members.
	h := eventsv1.HashEmail
	member := func(id string, observed int, hashes []string, url string, positions ...*eventsv1.Position) {
		p := profile(observed, hashes, positions...)
		p.MemberId, p.ProfileUrl = id, url
		evs = append(evs, storeEvent{fmt.Sprintf("profile %s t%d", id, observed), p})
	}
	erase := func(id string, observed int) {
		evs = append(evs, storeEvent{fmt.Sprintf("erase %s t%d", id, observed),
			&eventsv1.MemberErased{EventId: "erase-" + id, Source: "feed", MemberId: id, ObservedAt: timestamppb.New(at(observed))}})
	}
	member("m1", 10, []string{h("ada@contoso.com")}, "https://linkedin.com/in/ada", pos("Contoso", 2018, 2024, false), pos("Fabrikam", 2024, 0, true))
	member("m1", 15, []string{h("ada@contoso.com"), h("ada@lovelace.net")}, "", pos("Contoso", 2018, 0, true))
	member("m1", 20, []string{h("ada@fabrikam.com")}, "https://linkedin.com/in/ada-l", pos("Fabrikam", 2024, 0, true))
	member("m2", 10, []string{h("grace@contoso.com")}, "", pos("Contoso", 2015, 0, true))
	erase("m2", 20)
	member("m2", 15, []string{h("grace@contoso.com")}, "", pos("Navy", 2015, 0, true)) // before the erasure: stays erased
	member("m2", 25, []string{h("grace@navy.mil")}, "", pos("Navy", 2020, 0, true))    // after it: starts anew
	member("m3", 30, []string{h("alan@contoso.com")}, "", pos("Contoso", 2019, 0, true))
	erase("m3", 30) // at the same time: the erasure wins
	// Two sources observing one member in the same millisecond, differently.
	member("m4", 40, []string{h("kay@contoso.com")}, "", pos("Contoso", 2019, 0, true))
	member("m4", 40, []string{h("kay@fabrikam.com")}, "", pos("Contoso", 2019, 2025, false), pos("Fabrikam", 2025, 0, true))

	// Company pages.
	company := func(id string, observed int, name, parent string, domains ...string) {
		evs = append(evs, storeEvent{fmt.Sprintf("company %s t%d", id, observed), &eventsv1.CompanyChange{
			EventId: fmt.Sprintf("co-%s-%d", id, observed), Source: "feed", CompanyId: id, Name: name,
			Domains: domains, ParentCompanyId: parent, ObservedAt: timestamppb.New(at(observed))}})
	}
	company("co1", 10, "Contoso", "", "contoso.com")
	company("co1", 5, "Contoso Old", "", "contoso-old.com")
	company("co1", 20, "Contoso Group", "", "contoso.com", "contoso.co.uk")
	company("co2", 10, "Northwind", "")
	company("co2", 12, "Northwind Traders", "co1", "northwind.example")
	company("co3", 7, "Tailspin", "", "tailspin.example")
	company("co3", 7, "Tailspin Toys", "", "tailspintoys.example") // the same instant, another page
	return evs
}

func boolV(b bool) *eventsv1.Value { return &eventsv1.Value{Kind: &eventsv1.Value_Boolean{Boolean: b}} }

// propertyBuckets are the buckets the store's events fill.
var propertyBuckets = []string{bus.BucketContacts, bus.BucketAccounts, bus.BucketMembers, bus.BucketCompanies, bus.BucketIndex, bus.BucketRows}

func diffDumps(got, want map[string]string) []string {
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %s = %s", k, want[k]))
		case g != want[k]:
			diffs = append(diffs, fmt.Sprintf("%s = %s, want %s", k, g, want[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %s = %s", k, got[k]))
		}
	}
	return diffs
}

// The same events, in any order and repeated, leave the same state: rows,
// members, companies and index edges.
func TestStoreStateIsOrderIndependent(t *testing.T) {
	t.Parallel()
	evs := propertyEvents()
	ref, refJS := openStore(t)
	ctx := ctxT(t)
	for _, ev := range evs {
		if err := applyEvent(ctx, ref, ev); err != nil {
			t.Fatalf("reference: %s: %v", ev.what, err)
		}
	}
	want, err := testkit.DumpBuckets(ctx, refJS, propertyBuckets...)
	if err != nil {
		t.Fatal(err)
	}
	// The reference itself: what the events say, in the order they happened.
	hc, hf := eventsv1.HashEmail("ada@contoso.com"), eventsv1.HashEmail("ada@fabrikam.com")
	for key, present := range map[string]bool{
		accountContactsKey(org, "a1") + ".c1":                                           true,
		accountContactsKey(org, "a2") + ".c1":                                           false,
		accountContactsKey(org, "a3") + ".c2":                                           true,
		contactEmailKey(hf) + "." + org + ".c1":                                         true,
		contactEmailKey(hc) + "." + org + ".c1":                                         false,
		memberEmailKey(eventsv1.HashEmail("grace@navy.mil")) + "." + MemberKey("m2"):    true,
		memberEmailKey(eventsv1.HashEmail("grace@contoso.com")) + "." + MemberKey("m2"): false,
		memberEmailKey(eventsv1.HashEmail("alan@contoso.com")) + "." + MemberKey("m3"):  false,
		opportunityContactsKey(org, "o1") + ".c2":                                       true,
		opportunityContactsKey(org, "o1") + ".c1":                                       false,
		companyDomainKey("contoso.co.uk") + ".co1":                                      true,
		companyNameKey("contoso") + ".co1":                                              true,
		accountNameKey("contoso") + "." + org + ".a1":                                   true,
		ownedKey(org, "u1", "a") + ".a2":                                                false, // deleted
	} {
		if _, ok := want[bus.BucketIndex+"/"+key]; ok != present {
			t.Errorf("reference: %s present = %v, want %v", key, ok, present)
		}
	}
	if m2, m3 := want[bus.BucketMembers+"/"+MemberKey("m2")], want[bus.BucketMembers+"/"+MemberKey("m3")]; !strings.Contains(m3, `"erased":true`) ||
		strings.Contains(m2, `"erased"`) || !strings.Contains(m2, eventsv1.HashEmail("grace@navy.mil")) {
		t.Errorf("reference members: m2 %s, m3 %s", want[bus.BucketMembers+"/"+MemberKey("m2")], want[bus.BucketMembers+"/"+MemberKey("m3")])
	}
	if t.Failed() {
		t.FailNow()
	}

	for seed := uint64(1); seed <= 6; seed++ {
		rng := rand.New(rand.NewPCG(seed, 0x0dd))
		var delivery []storeEvent
		for _, ev := range evs {
			for range 1 + rng.IntN(3) {
				delivery = append(delivery, ev)
			}
		}
		rng.Shuffle(len(delivery), func(i, j int) { delivery[i], delivery[j] = delivery[j], delivery[i] })
		s, js := openStore(t)
		for _, ev := range delivery {
			if err := applyEvent(ctx, s, ev); err != nil {
				t.Fatalf("seed %d: %s: %v", seed, ev.what, err)
			}
		}
		got, err := testkit.DumpBuckets(ctx, js, propertyBuckets...)
		if err != nil {
			t.Fatal(err)
		}
		if diffs := diffDumps(got, want); len(diffs) > 0 {
			var order []string
			for _, ev := range delivery {
				order = append(order, ev.what)
			}
			t.Errorf("seed %d: the state differs from the in-order one:\n  %s\norder:\n  %s", seed, strings.Join(diffs, "\n  "), strings.Join(order, "\n  "))
		}
	}
}
