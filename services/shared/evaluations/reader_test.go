package evaluations_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const (
	org      = "0f000000-0000-4000-8000-000000000001"
	otherOrg = "0f000000-0000-4000-8000-000000000002"
	contact  = "c0000000-0000-4000-8000-000000000001"
)

func contactN(i int) string { return fmt.Sprintf("c0000000-0000-4000-8000-%012d", i) }

func TestPageWalksTheIndexInOrder(t *testing.T) {
	js, _ := testkit.JetStream(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, bus.BucketEvaluations)
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{5, 2, 4, 1, 3} {
		_, _ = kv.Put(ctx, evaluations.FlaggedKey(org, contactN(i)), []byte(`{}`))
	}
	_, _ = kv.Put(ctx, evaluations.FlaggedKey(otherOrg, contactN(9)), []byte(`{}`))
	_, _ = kv.Put(ctx, evaluations.CandidateKey(org, contactN(8)), []byte(`{}`))
	_, _ = kv.Put(ctx, evaluations.Key(org, contactN(7)), []byte(`x`))
	// A key that went: its purge marker is not listed.
	_, _ = kv.Put(ctx, evaluations.FlaggedKey(org, contactN(6)), []byte(`{}`))
	_ = kv.Purge(ctx, evaluations.FlaggedKey(org, contactN(6)))
	r, err := evaluations.NewReader(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for pages := 0; ; pages++ {
		refs, next, err := r.Page(ctx, org, evaluations.IndexFlagged, cursor, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, ref := range refs {
			got = append(got, ref.Contact)
		}
		if next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		cursor = next
	}
	if fmt.Sprint(got) != fmt.Sprint([]string{contactN(5), contactN(2), contactN(4), contactN(1), contactN(3)}) {
		t.Errorf("pages hold %v", got)
	}

	const opp = "0bb00000-0000-4000-8000-000000000001"
	_, _ = kv.Put(ctx, evaluations.AtRiskKey(org, opp, contact), []byte(`{}`))
	refs, next, err := r.Page(ctx, org, evaluations.IndexAtRisk, "", 10)
	if err != nil || next != "" || len(refs) != 1 || refs[0].Opportunity != opp || refs[0].Contact != contact {
		t.Errorf("at risk %+v %q %v", refs, next, err)
	}
	if _, _, err := r.Page(ctx, org, evaluations.IndexFlagged, "", evaluations.MaxPage+1); err == nil {
		t.Error("a page larger than the most accepted")
	}
}

func decision(org, contact string, i int) *eventsv1.Decision {
	return &eventsv1.Decision{DecisionId: fmt.Sprint("d-", i), OrganizationId: org, ContactId: contact}
}

// The history keeps the contact's newest records of the organization's
// trail, oldest first, within the limit and the budget, and says when it is
// not all of it.
func TestHistoryIsBounded(t *testing.T) {
	js, _ := testkit.JetStream(t)
	ctx := context.Background()
	publish := func(subject string, m proto.Message) {
		data, _ := proto.Marshal(m)
		if _, err := js.Publish(ctx, subject, data); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		publish(bus.AuditSubject("decision", org), decision(org, contact, i))
		publish(bus.AuditSubject("decision", org), decision(org, contactN(2), 100+i))
		publish(bus.AuditSubject("decision", otherOrg), decision(otherOrg, contact, 200+i))
	}
	publish(bus.AuditSubject("write", org), &eventsv1.WriteOutcome{DecisionId: "d-29", ContactId: contact, Outcome: "written"})
	publish(bus.AuditSubject("review", org), &eventsv1.ReviewAction{EventId: "r-1", ContactId: contact, Outcome: "applied"})
	publish(bus.AuditSubject("override", org), &eventsv1.FlagOverride{EventId: "o-1", ContactId: contact})
	publish(bus.AuditSubject("erasure", "all"), &eventsv1.MemberErased{EventId: "e-1"})
	r, err := evaluations.NewReader(ctx, js)
	if err != nil {
		t.Fatal(err)
	}

	all, err := r.History(ctx, org, contact, evaluations.DefaultHistory(time.Now()).With(100, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Entries) != 33 || !all.Complete || all.Scanned != 63 {
		t.Fatalf("history of %d entries (complete %v, scanned %d), want 33 of 63, complete", len(all.Entries), all.Complete, all.Scanned)
	}
	kinds := ""
	for i, e := range all.Entries {
		if i > 0 && e.Sequence <= all.Entries[i-1].Sequence {
			t.Fatalf("entries out of order at %d", i)
		}
		if i >= 29 {
			kinds += e.Kind + " "
		}
	}
	if kinds != "decision write review override " || all.Entries[0].Decision.GetDecisionId() != "d-0" {
		t.Errorf("the newest entries are %q, the first %v", kinds, all.Entries[0].Decision)
	}

	newest, err := r.History(ctx, org, contact, evaluations.DefaultHistory(time.Now()).With(5, 1000))
	if err != nil {
		t.Fatal(err)
	}
	if len(newest.Entries) != 5 || newest.Complete || newest.Entries[4].Override.GetEventId() != "o-1" || newest.Entries[0].Decision.GetDecisionId() != "d-28" {
		t.Errorf("limited to 5: %d entries, complete %v, first %v", len(newest.Entries), newest.Complete, newest.Entries[0])
	}

	bounded, err := r.History(ctx, org, contact, evaluations.DefaultHistory(time.Now()).With(100, 20))
	if err != nil {
		t.Fatal(err)
	}
	if bounded.Scanned > 20 || bounded.Complete {
		t.Errorf("budget 20: scanned %d, complete %v", bounded.Scanned, bounded.Complete)
	}
}
