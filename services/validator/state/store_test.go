package state

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

const org = "00000000-0000-0000-0000-0000000000aa"

func openStore(t *testing.T) (*Store, jetstream.JetStream) {
	t.Helper()
	js, _ := testkit.JetStream(t)
	ctx := t.Context()
	s, err := Open(ctx, js, Columns{Flag: flagCol})
	if err != nil {
		t.Fatal(err)
	}
	return s, js
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// forRow returns a copy of ch for another org and row.
func forRow(ch *eventsv1.CrmChange, orgID, table, id string) *eventsv1.CrmChange {
	c := proto.Clone(ch).(*eventsv1.CrmChange)
	c.OrganizationId, c.Table, c.RowId = orgID, table, id
	return c
}

func mustApply(t *testing.T, s *Store, ch *eventsv1.CrmChange) (before, after *Row, changed bool) {
	t.Helper()
	before, after, changed, err := s.ApplyChange(ctxT(t), ch)
	if err != nil {
		t.Fatalf("ApplyChange: %v", err)
	}
	return before, after, changed
}

func sortRefs(refs []ContactRef) []ContactRef {
	sort.Slice(refs, func(i, j int) bool { return refs[i].Org+refs[i].ID < refs[j].Org+refs[j].ID })
	return refs
}

func wantRefs(t *testing.T, what string, got []ContactRef, err error, want ...ContactRef) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(sortRefs(got), sortRefs(want)) {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func TestStoreContactIndexes(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	const contactID = "7d8c4a0e-1111-4e57-9c1e-000000000001"
	c1 := ContactRef{Org: org, ID: contactID}
	hashAda, hashNew := eventsv1.HashEmail("ada@contoso.com"), eventsv1.HashEmail("ada@fabrikam.com")

	before, after, changed := mustApply(t, s, forRow(create(1, cols{
		"firstname": str("Ada"), "emailaddress1": str("Ada@Contoso.com"), "parentcustomerid": ref("account", "a1"),
	}), org, "contact", contactID))
	if !changed || before != nil || after == nil || after.Cols["firstname"].V != "Ada" {
		t.Fatalf("create: changed=%v before=%+v after=%+v", changed, before, after)
	}
	row, err := s.Row(ctx, org, "contact", contactID)
	if err != nil || row == nil || !reflect.DeepEqual(row, after) {
		t.Fatalf("Row = %+v, %v; want %+v", row, err, after)
	}
	refs, err := s.ContactsOfAccount(ctx, org, "a1")
	wantRefs(t, "ContactsOfAccount(a1)", refs, err, c1)
	refs, err = s.ContactsByEmail(ctx, hashAda)
	wantRefs(t, "ContactsByEmail(ada)", refs, err, c1)

	// The same email in another organization is another contact.
	mustApply(t, s, forRow(create(1, cols{"emailaddress2": str("ada@contoso.com")}), "org2", "contact", "c2"))
	refs, err = s.ContactsByEmail(ctx, hashAda)
	wantRefs(t, "ContactsByEmail(ada), two orgs", refs, err, c1, ContactRef{Org: "org2", ID: "c2"})
	refs, err = s.ContactsOfAccount(ctx, "org2", "a1")
	wantRefs(t, "ContactsOfAccount(org2, a1)", refs, err)

	// Move the contact to another account and change its email.
	_, _, changed = mustApply(t, s, forRow(update(2, cols{
		"parentcustomerid": ref("account", "a2"), "emailaddress1": str("ada@fabrikam.com"),
	}), org, "contact", contactID))
	if !changed {
		t.Fatal("move reported no change")
	}
	refs, err = s.ContactsOfAccount(ctx, org, "a1")
	wantRefs(t, "ContactsOfAccount(a1) after the move", refs, err)
	refs, err = s.ContactsOfAccount(ctx, org, "a2")
	wantRefs(t, "ContactsOfAccount(a2) after the move", refs, err, c1)
	refs, err = s.ContactsByEmail(ctx, hashAda)
	wantRefs(t, "ContactsByEmail(ada) after the change", refs, err, ContactRef{Org: "org2", ID: "c2"})
	refs, err = s.ContactsByEmail(ctx, hashNew)
	wantRefs(t, "ContactsByEmail(fabrikam) after the change", refs, err, c1)

	// A parent contact is no account: the account edge goes.
	mustApply(t, s, forRow(update(3, cols{"parentcustomerid": ref("contact", "c0")}), org, "contact", contactID))
	refs, err = s.ContactsOfAccount(ctx, org, "a2")
	wantRefs(t, "ContactsOfAccount(a2) after re-parenting to a contact", refs, err)
	mustApply(t, s, forRow(update(4, cols{"parentcustomerid": ref("account", "a2")}), org, "contact", contactID))

	// Deleting removes every edge.
	_, after, changed = mustApply(t, s, forRow(del(5), org, "contact", contactID))
	if !changed || !after.Deleted {
		t.Fatalf("delete: changed=%v after=%+v", changed, after)
	}
	refs, err = s.ContactsOfAccount(ctx, org, "a2")
	wantRefs(t, "ContactsOfAccount(a2) after the delete", refs, err)
	refs, err = s.ContactsByEmail(ctx, hashNew)
	wantRefs(t, "ContactsByEmail(fabrikam) after the delete", refs, err)
	row, err = s.Row(ctx, org, "contact", contactID)
	if err != nil || row == nil || !row.Deleted || len(row.Cols) != 0 {
		t.Errorf("Row after delete = %+v, %v; want a deleted row without columns", row, err)
	}
	// An older change arriving now changes nothing.
	if _, _, changed = mustApply(t, s, forRow(update(4, cols{"firstname": str("Augusta")}), org, "contact", contactID)); changed {
		t.Error("a change from before the delete reported a change")
	}
}

func TestStoreUnknownAndUntracked(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	if row, err := s.Row(ctx, org, "contact", "nobody"); row != nil || err != nil {
		t.Errorf("Row(unknown) = %+v, %v", row, err)
	}
	if _, err := s.Row(ctx, org, "lead", "x"); err == nil {
		t.Error("Row of an untracked table: no error")
	}
	before, after, changed, err := s.ApplyChange(ctx, forRow(update(1, cols{"name": str("x")}), org, "lead", "o1"))
	if before != nil || after != nil || changed || err != nil {
		t.Errorf("ApplyChange(untracked) = %v %v %v %v", before, after, changed, err)
	}
	if refs, err := s.ContactsOfAccount(ctx, org, "none"); len(refs) != 0 || err != nil {
		t.Errorf("ContactsOfAccount(empty index) = %v, %v", refs, err)
	}
}

func TestStoreAccountIndexes(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	a1 := ContactRef{Org: org, ID: "a1"}
	mustApply(t, s, forRow(create(1, cols{"name": str("Contoso Ltd"), "websiteurl": str("https://www.contoso.com")}), org, "account", "a1"))
	refs, err := s.AccountsByCompany(ctx, "CONTOSO GmbH", nil)
	wantRefs(t, "AccountsByCompany(name)", refs, err, a1)
	refs, err = s.AccountsByCompany(ctx, "", []string{"contoso.com"})
	wantRefs(t, "AccountsByCompany(domain)", refs, err, a1)
	refs, err = s.AccountsByCompany(ctx, "Fabrikam", []string{"fabrikam.com"})
	wantRefs(t, "AccountsByCompany(other)", refs, err)

	mustApply(t, s, forRow(update(2, cols{"name": str("Fabrikam"), "websiteurl": null()}), org, "account", "a1"))
	refs, err = s.AccountsByCompany(ctx, "Contoso", []string{"contoso.com"})
	wantRefs(t, "AccountsByCompany(old name and domain)", refs, err)
	refs, err = s.AccountsByCompany(ctx, "Fabrikam", nil)
	wantRefs(t, "AccountsByCompany(new name)", refs, err, a1)
	acct, err := s.Row(ctx, org, "account", "a1")
	if err != nil || acct.Account(Columns{}).Name != "Fabrikam" || acct.Account(Columns{}).Website != "" {
		t.Errorf("account = %+v, %v", acct, err)
	}
}

// A newer change that repeats a value is stored all the same, so that an
// older change with another value, arriving after it, loses.
func TestStoreKeepsNewerVersionOfSameValue(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	mustApply(t, s, forRow(update(1, cols{"firstname": str("Ada")}), org, "contact", "c1"))
	if _, _, changed := mustApply(t, s, forRow(update(3, cols{"firstname": str("Ada")}), org, "contact", "c1")); changed {
		t.Error("the same value again reported a change")
	}
	if _, _, changed := mustApply(t, s, forRow(update(2, cols{"firstname": str("Augusta")}), org, "contact", "c1")); changed {
		t.Error("an older value reported a change")
	}
	row, err := s.Row(ctx, org, "contact", "c1")
	if err != nil {
		t.Fatal(err)
	}
	if got := row.Cols["firstname"]; got.V != "Ada" || got.At != at(3).UnixMilli() {
		t.Errorf("firstname = %+v, want Ada at version 3", got)
	}
}

// Through the store, changes in any order and repeated give the same row
// and the same index edges as once each in version order.
func TestStoreApplyOrderIndependent(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	changes := []*eventsv1.CrmChange{
		create(1, cols{"firstname": str("Ada"), "emailaddress1": str("ada@contoso.com"), "parentcustomerid": ref("account", "a1")}),
		update(2, cols{"emailaddress2": str("ada@lovelace.net"), flagCol: choice(1)}),
		update(3, cols{"parentcustomerid": ref("account", "a2")}),
		del(4),
		create(5, cols{"emailaddress1": str("ada@fabrikam.com"), "parentcustomerid": ref("account", "a3")}),
		update(6, cols{"firstname": str("Augusta")}),
		update(6, cols{"firstname": str("Augusta")}),
		update(7, cols{"emailaddress1": str("ada@fabrikam.com")}),
	}
	var want *Row
	for _, ch := range changes { // already in version order
		want, _ = Apply(want, ch, flagCol)
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	for run := range 25 {
		id := "c-" + string(rune('a'+run))
		var delivery []*eventsv1.CrmChange
		for _, ch := range changes {
			for range 1 + rng.IntN(2) {
				delivery = append(delivery, forRow(ch, org, "contact", id))
			}
		}
		rng.Shuffle(len(delivery), func(i, j int) { delivery[i], delivery[j] = delivery[j], delivery[i] })
		for _, ch := range delivery {
			mustApply(t, s, ch)
		}
		got, err := s.Row(ctx, org, "contact", id)
		if err != nil {
			t.Fatal(err)
		}
		w := *want
		w.ID = id
		if !reflect.DeepEqual(got, &w) {
			t.Fatalf("seed %d run %d: row %+v, want %+v", seed, run, got, &w)
		}
		ref := ContactRef{Org: org, ID: id}
		for _, acct := range []string{"a1", "a2"} {
			refs, err := s.ContactsOfAccount(ctx, org, acct)
			if err != nil || slices.Contains(refs, ref) {
				t.Fatalf("seed %d run %d: %s still lists the contact: %v %v", seed, run, acct, refs, err)
			}
		}
		refs, err := s.ContactsOfAccount(ctx, org, "a3")
		if err != nil || !slices.Contains(refs, ref) {
			t.Fatalf("seed %d run %d: a3 does not list the contact: %v %v", seed, run, refs, err)
		}
		for email, listed := range map[string]bool{"ada@contoso.com": false, "ada@lovelace.net": false, "ada@fabrikam.com": true} {
			refs, err := s.ContactsByEmail(ctx, eventsv1.HashEmail(email))
			if err != nil || slices.Contains(refs, ref) != listed {
				t.Fatalf("seed %d run %d: ContactsByEmail(%s) = %v %v, want listed=%v", seed, run, email, refs, err, listed)
			}
		}
	}
}

const memberID = "urn:li:member:42" // not a subject token: stored encoded

func profile(observed int, hashes []string, positions ...*eventsv1.Position) *eventsv1.ProfileChange {
	return &eventsv1.ProfileChange{
		EventId: "p-" + strconv.Itoa(observed), Source: "feed", MemberId: memberID,
		FirstName: "Ada", LastName: "Lovelace", EmailSha256: hashes, Positions: positions,
		ObservedAt: timestamppb.New(at(observed)),
	}
}

func pos(company string, start, end int32, current bool) *eventsv1.Position {
	p := &eventsv1.Position{CompanyName: company, Title: "Engineer", Start: &eventsv1.YearMonth{Year: start, Month: 1}, Current: current}
	if end != 0 {
		p.End = &eventsv1.YearMonth{Year: end, Month: 6}
	}
	return p
}

func membersByEmail(t *testing.T, s *Store, hashes ...string) []*MemberRecord {
	t.Helper()
	ms, err := s.MembersByEmail(ctxT(t), hashes)
	if err != nil {
		t.Fatalf("MembersByEmail: %v", err)
	}
	return ms
}

func TestStoreProfile(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	ctx := ctxT(t)
	h1, h2 := eventsv1.HashEmail("ada@contoso.com"), eventsv1.HashEmail("ada@fabrikam.com")

	before, after, changed, err := s.ApplyProfile(ctx, profile(10, []string{h1, h1}, pos("Contoso", 2018, 2024, false), pos("Fabrikam", 2024, 0, true)))
	if err != nil || !changed || before != nil || after == nil {
		t.Fatalf("ApplyProfile = %v %v %v %v", before, after, changed, err)
	}
	ms := membersByEmail(t, s, h1)
	if len(ms) != 1 {
		t.Fatalf("MembersByEmail = %v, want one member", ms)
	}
	m := ms[0]
	if m.ID != memberID || m.Source != "feed" || m.ObservedAt != at(10).UnixMilli() || !reflect.DeepEqual(m.EmailHashes, []string{h1}) {
		t.Errorf("member = %+v", m)
	}
	wantPos := []decide.Position{
		{CompanyName: "Contoso", Title: "Engineer", Start: &decide.YearMonth{Year: 2018, Month: 1}, End: &decide.YearMonth{Year: 2024, Month: 6}},
		{CompanyName: "Fabrikam", Title: "Engineer", Start: &decide.YearMonth{Year: 2024, Month: 1}, Current: true},
	}
	if !reflect.DeepEqual(m.Positions, wantPos) {
		t.Errorf("positions = %+v, want %+v", m.Positions, wantPos)
	}
	if dm := m.Decision(); dm.ID != memberID || !dm.ObservedAt.Equal(at(10)) || len(dm.Positions) != 2 {
		t.Errorf("Decision() = %+v", dm)
	}
	if got := membersByEmail(t, s, h2); len(got) != 0 {
		t.Errorf("MembersByEmail(other) = %v", got)
	}
	// Looking up the same member through several hashes lists it once.
	if got := membersByEmail(t, s, h1, h1); len(got) != 1 {
		t.Errorf("MembersByEmail(h1, h1) = %d members", len(got))
	}

	members, err := js.KeyValue(ctx, bus.BucketMembers)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := members.Get(ctx, MemberKey(memberID))
	if err != nil {
		t.Fatal(err)
	}

	// The same observation again, and an older one, change nothing.
	for _, p := range []*eventsv1.ProfileChange{
		profile(10, []string{h1}, pos("Contoso", 2018, 2024, false), pos("Fabrikam", 2024, 0, true)),
		profile(5, []string{h2}, pos("Contoso", 2018, 0, true)),
	} {
		_, _, changed, err := s.ApplyProfile(ctx, p)
		if err != nil || changed {
			t.Errorf("ApplyProfile(observed %s) = changed %v, %v; want unchanged", p.GetObservedAt().AsTime(), changed, err)
		}
	}
	again, err := members.Get(ctx, MemberKey(memberID))
	if err != nil || again.Revision() != entry.Revision() {
		t.Errorf("members bucket written by an unchanged observation: revision %d, was %d (%v)", again.Revision(), entry.Revision(), err)
	}
	if got := membersByEmail(t, s, h2); len(got) != 0 {
		t.Errorf("an older observation indexed its email: %v", got)
	}
	if got := membersByEmail(t, s, h1); len(got) != 1 || len(got[0].Positions) != 2 {
		t.Errorf("an older observation changed the member: %+v", got)
	}

	// A newer observation with another email moves the edge.
	before, after, changed, err = s.ApplyProfile(ctx, profile(20, []string{h2}, pos("Contoso", 2018, 0, true)))
	if err != nil || !changed || before == nil || before.ObservedAt != at(10).UnixMilli() || after.ObservedAt != at(20).UnixMilli() {
		t.Fatalf("newer ApplyProfile = %+v %+v %v %v", before, after, changed, err)
	}
	if got := membersByEmail(t, s, h1); len(got) != 0 {
		t.Errorf("old email still finds the member: %v", got)
	}
	if got := membersByEmail(t, s, h2); len(got) != 1 || !got[0].Positions[0].Current {
		t.Errorf("MembersByEmail(new) = %+v", got)
	}
}

func TestStoreEraseMember(t *testing.T) {
	t.Parallel()
	s, js := openStore(t)
	ctx := ctxT(t)
	h1 := eventsv1.HashEmail("ada@contoso.com")
	if _, _, _, err := s.ApplyProfile(ctx, profile(10, []string{h1}, pos("Contoso", 2018, 2024, false))); err != nil {
		t.Fatal(err)
	}
	erasure := &eventsv1.MemberErased{EventId: "e1", Source: "feed", MemberId: memberID, ObservedAt: timestamppb.New(at(20))}
	affected, erased, err := s.EraseMember(ctx, erasure)
	if err != nil || !erased || len(affected) != 0 {
		t.Fatalf("EraseMember = %+v %v %v", affected, erased, err)
	}
	if got := membersByEmail(t, s, h1); len(got) != 0 {
		t.Errorf("MembersByEmail after erasure = %+v", got)
	}

	// The bucket holds only a tombstone: no email hashes, no positions, no source.
	assertTombstone := func(when string) {
		t.Helper()
		members, err := js.KeyValue(ctx, bus.BucketMembers)
		if err != nil {
			t.Fatal(err)
		}
		e, err := members.Get(ctx, MemberKey(memberID))
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		var raw map[string]any
		if err := json.Unmarshal(e.Value(), &raw); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"obs": float64(at(20).UnixMilli()), "erased": true}
		if !reflect.DeepEqual(raw, want) {
			t.Errorf("%s: stored member = %s, want only a tombstone %v", when, e.Value(), want)
		}
		// No revision of the key before it keeps the data either (History 1).
		hist, err := members.History(ctx, MemberKey(memberID))
		if err != nil || len(hist) != 1 {
			t.Errorf("%s: %d revisions kept (%v), want 1", when, len(hist), err)
		}
		index, err := js.KeyValue(ctx, bus.BucketIndex)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := index.ListKeysFiltered(ctx, "memail.>")
		if err != nil {
			t.Fatal(err)
		}
		var left []string
		for k := range keys.Keys() {
			left = append(left, k)
		}
		if len(left) != 0 {
			t.Errorf("%s: member email edges left: %v", when, left)
		}
	}
	assertTombstone("after erasure")

	// The same erasure again changes nothing.
	if _, erased, err := s.EraseMember(ctx, erasure); err != nil || erased {
		t.Errorf("repeated erasure = %v, %v", erased, err)
	}
	// A profile observed before the erasure, or at the same time, stays erased.
	for _, obs := range []int{15, 20} {
		_, _, changed, err := s.ApplyProfile(ctx, profile(obs, []string{h1}, pos("Contoso", 2018, 0, true)))
		if err != nil || changed {
			t.Errorf("profile observed at %d after an erasure at 20: changed=%v err=%v", obs, changed, err)
		}
	}
	assertTombstone("after late profiles")
	if got := membersByEmail(t, s, h1); len(got) != 0 {
		t.Errorf("MembersByEmail after a late profile = %+v", got)
	}

	// A profile observed after the erasure starts anew.
	_, _, changed, err := s.ApplyProfile(ctx, profile(30, []string{h1}, pos("Fabrikam", 2025, 0, true)))
	if err != nil || !changed {
		t.Fatalf("newer profile after erasure: changed=%v err=%v", changed, err)
	}
	if got := membersByEmail(t, s, h1); len(got) != 1 || got[0].Erased {
		t.Errorf("MembersByEmail after a newer profile = %+v", got)
	}
}

func TestStoreEraseUnknownMember(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	_, erased, err := s.EraseMember(ctx, &eventsv1.MemberErased{MemberId: "m9", ObservedAt: timestamppb.New(at(5))})
	if err != nil || !erased {
		t.Fatalf("EraseMember(unknown) = %v %v", erased, err)
	}
	_, _, changed, err := s.ApplyProfile(ctx, &eventsv1.ProfileChange{MemberId: "m9", EmailSha256: []string{"h"}, ObservedAt: timestamppb.New(at(4))})
	if err != nil || changed {
		t.Errorf("a profile older than the erasure of an unseen member: changed=%v err=%v", changed, err)
	}
}

func TestStoreCompanies(t *testing.T) {
	t.Parallel()
	s, _ := openStore(t)
	ctx := ctxT(t)
	co := &eventsv1.CompanyChange{CompanyId: "co.1", Name: "Contoso", Domains: []string{"contoso.com"}, ObservedAt: timestamppb.New(at(10))}
	_, after, changed, err := s.ApplyCompany(ctx, co)
	if err != nil || !changed || after.Name != "Contoso" {
		t.Fatalf("ApplyCompany = %+v %v %v", after, changed, err)
	}
	if _, _, changed, err := s.ApplyCompany(ctx, co); err != nil || changed {
		t.Errorf("same company again: changed=%v err=%v", changed, err)
	}
	older := proto.Clone(co).(*eventsv1.CompanyChange)
	older.Name, older.ObservedAt = "Old Contoso", timestamppb.New(at(5))
	if _, _, changed, err := s.ApplyCompany(ctx, older); err != nil || changed {
		t.Errorf("older company: changed=%v err=%v", changed, err)
	}
	got, err := s.Companies(ctx, []string{"co.1", "", "co.unknown"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]decide.Company{"co.1": {ID: "co.1", Name: "Contoso", Domains: []string{"contoso.com"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Companies = %+v, want %+v", got, want)
	}
}

func TestRedactKeepsOnlyTheKind(t *testing.T) {
	t.Parallel()
	key := memberNameKey("ada lovelace") + "." + MemberKey("ada@contoso.com")
	got := redact(key)
	if !strings.HasPrefix(got, "mname.h:") || strings.Contains(got, bus.Token("ada lovelace")) || strings.Contains(got, "ada") {
		t.Errorf("redact(%s) = %s", key, got)
	}
	if redact(key) != got || redact(memberNameKey("grace hopper")) == got {
		t.Error("redact is not a stable, distinguishing hash")
	}
}
