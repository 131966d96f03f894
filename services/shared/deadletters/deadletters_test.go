package deadletters

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

func TestSubjectParts(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		subject, org, kind, redacted string
	}{
		{bus.CRMSubject(orgA, "contact", rowA), orgA, KindCrmChange, bus.CRMSubject(orgA, "contact", rowA)},
		{bus.DecisionSubject(orgA, contactA), orgA, KindDecision, bus.DecisionSubject(orgA, contactA)},
		{bus.ProfileMemberSubject("m@example.com"), "", KindProfileChange, "nac.profile.member.*"},
		{bus.ProfileCompanySubject("c-1"), "", KindCompanyChange, "nac.profile.company.*"},
		{bus.ProfileErasureSubject("m-1"), "", KindMemberErased, "nac.profile.erasure.*"},
		{bus.AdminSyncUserSubject(orgB, rowA), orgB, KindSyncUserChange, bus.AdminSyncUserSubject(orgB, rowA)},
		{bus.AdminSettingsSubject(orgB), orgB, KindOrgSettingsChange, bus.AdminSettingsSubject(orgB)},
		{bus.WorkSubject(orgA), orgA, KindEvaluateRequest, bus.WorkSubject(orgA)},
		{bus.SyncRequestSubject(orgA), orgA, KindSyncRequest, bus.SyncRequestSubject(orgA)},
		{bus.CRMSubject("org.with.dots", "contact", rowA), "org.with.dots", KindCrmChange, bus.CRMSubject("org.with.dots", "contact", rowA)},
		{"t.bad", "", KindUnknown, "t.bad"},
		{"", "", KindUnknown, ""},
	} {
		if got := organizationOf(c.subject); got != c.org {
			t.Errorf("organizationOf(%q) = %q, want %q", c.subject, got, c.org)
		}
		if got := kindOf(c.subject); got != c.kind {
			t.Errorf("kindOf(%q) = %q, want %q", c.subject, got, c.kind)
		}
		if got := redactedSubject(c.subject); got != c.redacted {
			t.Errorf("redactedSubject(%q) = %q, want %q", c.subject, got, c.redacted)
		}
	}
}

// someDeadLetters sets aside a CRM change of each organization, a decision
// of organization A and a profile event, in that order.
func someDeadLetters(t *testing.T, f *fixture) (crmA, crmB, decision, profile uint64) {
	t.Helper()
	crmA = f.deadLetter(t, bus.ConsumerValidatorCRM,
		f.origin(t, bus.CRMSubject(orgA, "contact", rowA), &eventsv1.CrmChange{EventId: "e-a", OrganizationId: orgA, Table: "contact", RowId: rowA}, nil, 8), "gave up")
	crmB = f.deadLetter(t, bus.ConsumerValidatorCRM,
		f.origin(t, bus.CRMSubject(orgB, "contact", rowA), &eventsv1.CrmChange{EventId: "e-b", OrganizationId: orgB, Table: "contact", RowId: rowA}, nil, 8), "gave up")
	decision = f.deadLetter(t, bus.ConsumerWriter,
		f.origin(t, bus.DecisionSubject(orgA, contactA), &eventsv1.Decision{DecisionId: "d-1", OrganizationId: orgA, ContactId: contactA}, nil, 1), "400")
	profile = f.deadLetter(t, bus.ConsumerValidatorProfile,
		f.origin(t, bus.ProfileMemberSubject("m-1"), &eventsv1.ProfileChange{EventId: "p-1", MemberId: "m-1"}, nil, 1), "bad")
	return
}

func seqs(p Page) []uint64 {
	var out []uint64
	for _, l := range p.DeadLetters {
		out = append(out, l.Sequence)
	}
	return out
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestListFiltersAndPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	crmA, crmB, decision, profile := someDeadLetters(t, f)
	for _, c := range []struct {
		name   string
		filter Filter
		want   []uint64
	}{
		{"all", Filter{}, []uint64{crmA, crmB, decision, profile}},
		{"one consumer", Filter{Consumer: bus.ConsumerValidatorCRM}, []uint64{crmA, crmB}},
		{"one organization", Filter{Organization: orgA}, []uint64{crmA, decision}},
		{"organization upper case", Filter{Organization: strings.ToUpper(orgB)}, []uint64{crmB}},
		{"consumer and organization", Filter{Consumer: bus.ConsumerWriter, Organization: orgB}, nil},
		{"unknown consumer", Filter{Consumer: "nobody"}, nil},
	} {
		p, err := f.store.List(ctx(t), c.filter, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !equalSeqs(seqs(p), c.want) || p.Next != 0 {
			t.Errorf("%s: %v next %d, want %v and no next", c.name, seqs(p), p.Next, c.want)
		}
	}

	// Pages of two: the cursor goes on where the last page ended.
	p1, err := f.store.List(ctx(t), Filter{}, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := f.store.List(ctx(t), Filter{}, p1.Next, 2)
	if err != nil {
		t.Fatal(err)
	}
	p3, err := f.store.List(ctx(t), Filter{}, p2.Next, 2)
	if err != nil {
		t.Fatal(err)
	}
	if !equalSeqs(seqs(p1), []uint64{crmA, crmB}) || !equalSeqs(seqs(p2), []uint64{decision, profile}) || len(p3.DeadLetters) != 0 || p3.Next != 0 {
		t.Errorf("pages %v (next %d), %v (next %d), %v (next %d)", seqs(p1), p1.Next, seqs(p2), p2.Next, seqs(p3), p3.Next)
	}

	l := p1.DeadLetters[0]
	if l.Consumer != bus.ConsumerValidatorCRM || l.Reason != "gave up" || l.OriginStream != bus.StreamCRM || l.OriginSequence != 1 ||
		l.OriginSubject != bus.CRMSubject(orgA, "contact", rowA) || l.OrganizationID != orgA || l.Deliveries != 8 ||
		l.Kind != KindCrmChange || l.Size == 0 || l.DeadLetteredAt.IsZero() {
		t.Errorf("letter %+v", l)
	}
}

func TestListEmpty(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	p, err := f.store.List(ctx(t), Filter{}, 0, 10)
	if err != nil || len(p.DeadLetters) != 0 || p.Next != 0 {
		t.Fatalf("empty stream: %+v, %v", p, err)
	}
	if b, _ := json.Marshal(p); string(b) != `{"deadLetters":[]}` {
		t.Errorf("empty page encodes as %s", b)
	}
}

// Show tells what the payload is about without the names, emails, titles
// or URLs it carries.
func TestGetShowsIdsNotPersonalData(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	observed := timestamppb.Now()
	profile := &eventsv1.ProfileChange{EventId: "p-7", Source: "feed", MemberId: "member-42", FirstName: "Avery", LastName: "Quinn",
		ProfileUrl: "https://profiles.example.com/avery-quinn", EmailSha256: []string{strings.Repeat("ab", 32)},
		Positions:  []*eventsv1.Position{{CompanyName: "Contoso", Title: "Head of Buying"}, {CompanyName: "Fabrikam", Title: "Buyer"}},
		ObservedAt: observed}
	seq := f.deadLetter(t, bus.ConsumerValidatorProfile,
		f.origin(t, bus.ProfileMemberSubject("member-42"), profile, map[string][]string{"X-Trace": {"t-1"}}, 3), "decode failed")
	d, err := f.store.Get(ctx(t), seq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(d)
	for _, personal := range []string{"Avery", "Quinn", "avery-quinn", "Contoso", "Fabrikam", "Head of Buying", strings.Repeat("ab", 32)} {
		if strings.Contains(string(b), personal) {
			t.Errorf("show holds %q: %s", personal, b)
		}
	}
	if d.Kind != KindProfileChange || d.Event == nil || d.Event.Member != "member-42" || d.Event.ID != "p-7" || d.Event.Source != "feed" ||
		d.Event.Positions == nil || *d.Event.Positions != 2 || d.Event.At == nil || !d.Event.At.Equal(observed.AsTime()) {
		t.Errorf("event %+v", d.Event)
	}
	if d.Deliveries != 3 || d.Reason != "decode failed" || d.OriginSubject != bus.ProfileMemberSubject("member-42") || d.OrganizationID != "" {
		t.Errorf("letter %+v", d.Letter)
	}
	if len(d.Headers) != 1 || d.Headers[0] != "X-Trace" {
		t.Errorf("headers %v, want the original one only", d.Headers)
	}

	decision := &eventsv1.Decision{DecisionId: "d-9", OrganizationId: orgA, ContactId: contactA, Value: eventsv1.Flag_FLAG_NOT_AT_COMPANY,
		Reason: "left_company", Confidence: 0.93, CauseEventId: "p-7",
		Evidence: &eventsv1.Evidence{CompanyName: "Contoso Ltd", CurrentPosition: &eventsv1.Position{Title: "Head of Buying"}}}
	seq = f.deadLetter(t, bus.ConsumerWriter, f.origin(t, bus.DecisionSubject(orgA, contactA), decision, nil, 1), "400 Bad Request")
	d, err = f.store.Get(ctx(t), seq)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(d)
	if strings.Contains(string(b), "Contoso") || strings.Contains(string(b), "Head of Buying") {
		t.Errorf("show of a decision holds its evidence: %s", b)
	}
	if e := d.Event; e.Contact != contactA || *e.Value != 1 || *e.Previous != 0 || e.Rule != "left_company" || *e.Confidence != 0.93 || d.OrganizationID != orgA {
		t.Errorf("decision event %+v", e)
	}
}

func TestGetUndecodableAndMissing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	seq := f.deadLetter(t, bus.ConsumerValidatorCRM, f.originRaw(t, bus.CRMSubject(orgA, "contact", rowA), []byte{0xff, 0xff, 0xff}, nil, 1), "decode CrmChange")
	d, err := f.store.Get(ctx(t), seq)
	if err != nil {
		t.Fatal(err)
	}
	if d.Event != nil || !strings.HasPrefix(d.DecodeError, "not a CrmChange") {
		t.Errorf("undecodable payload: event %+v, decode error %q", d.Event, d.DecodeError)
	}
	if _, err := f.store.Get(ctx(t), seq+100); !errors.Is(err, ErrNotFound) {
		t.Errorf("a sequence past the end: %v, want ErrNotFound", err)
	}
}
