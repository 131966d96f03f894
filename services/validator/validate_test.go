package validator

import (
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

// snapshot is the whole state and how many messages every stream got.
func (e *env) snapshot() (map[string]string, map[string]uint64) {
	e.t.Helper()
	kv, err := testkit.DumpBuckets(e.ctx, e.js, validatorBuckets...)
	if err != nil {
		e.t.Fatal(err)
	}
	seqs := map[string]uint64{}
	for _, s := range []string{bus.StreamDecisions, bus.StreamAudit, bus.StreamWork, bus.StreamMemberKeys} {
		seqs[s] = e.published(s)
	}
	return kv, seqs
}

func TestInvalidMessagesAreRefusedAndChangeNothing(t *testing.T) {
	t.Parallel()
	const member = "ada@contoso.com" // an email-like member id: personal data
	ptr := func(s string) *string { return &s }
	valid := func() *eventsv1.CrmChange { return contactCreate(contactID, email) }
	crm := func(edit func(*eventsv1.CrmChange)) *eventsv1.CrmChange { ch := valid(); edit(ch); return ch }
	cases := []struct {
		name    string
		handler string // crm, profile, admin, work
		subject *string
		msg     proto.Message
		reason  string
	}{
		{"empty profile message", "profile", ptr(bus.ProfileMemberSubject("")), &eventsv1.ProfileChange{}, "member_id: empty"},
		{"profile of another member than its subject's", "profile", ptr(bus.ProfileMemberSubject("someone@else.com")),
			&eventsv1.ProfileChange{EventId: "p1", MemberId: member, ObservedAt: at(1)}, "subject does not match"},
		{"profile without a time", "profile", nil, &eventsv1.ProfileChange{EventId: "p1", MemberId: member}, "observed_at: missing"},
		{"profile email hash that is none", "profile", nil,
			&eventsv1.ProfileChange{EventId: "p1", MemberId: member, ObservedAt: at(1), EmailSha256: []string{"a.b"}}, "email_sha256"},
		{"member id with a newline", "profile", nil, &eventsv1.ProfileChange{EventId: "p1", MemberId: "m\r\n1", ObservedAt: at(1)}, "control character"},
		{"empty erasure", "profile", ptr(bus.ProfileErasureSubject("")), &eventsv1.MemberErased{}, "member_id: empty"},
		{"empty company", "profile", ptr(bus.ProfileCompanySubject("")), &eventsv1.CompanyChange{}, "company_id: empty"},
		{"crm row id not a GUID", "crm", nil, crm(func(ch *eventsv1.CrmChange) { ch.RowId = "x.y" }), "row_id"},
		{"crm organization with CRLF", "crm", nil, crm(func(ch *eventsv1.CrmChange) { ch.OrganizationId = "a\r\nb" }), "organization_id"},
		{"crm lookup id not a GUID", "crm", nil, crm(func(ch *eventsv1.CrmChange) {
			ch.Columns["parentcustomerid"] = refV("account", "') or 1=1")
		}), "columns.parentcustomerid.id"},
		{"crm unknown operation", "crm", nil, crm(func(ch *eventsv1.CrmChange) { ch.Operation = 42 }), "operation"},
		{"crm for another row than its subject's", "crm", ptr(bus.CRMSubject(org, "contact", otherID)), valid(), "subject does not match"},
		{"sync user id not a GUID", "admin", ptr(bus.AdminSyncUserSubject(org, "x")),
			&eventsv1.SyncUserChange{EventId: "s1", OrganizationId: org, UserId: "x", Enabled: true, ChangedAt: at(1)}, "user_id"},
		{"settings threshold out of range", "admin", ptr(bus.AdminSettingsSubject(org)),
			&eventsv1.OrgSettingsChange{EventId: "o1", OrganizationId: org, ConfidenceThreshold: 2, ChangedAt: at(1)}, "confidence_threshold"},
		{"work chunk with a bad contact id", "work", ptr(bus.WorkSubject(org)),
			&eventsv1.EvaluateRequest{OrganizationId: org, ContactIds: []string{"../x"}, Kind: "account"}, "contact_ids"},
		{"empty work chunk", "work", ptr(bus.WorkSubject(org)), &eventsv1.EvaluateRequest{OrganizationId: org, Kind: "account"}, "contact_ids"},
	}
	// One validator for every case, in turn: each case finds the state as
	// the one before it left it, which the case checks is as it found it.
	shared := newEnv(t)
	shared.mustCRM(accountCreate("Contoso Ltd", ""))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := &env{t: t, svc: shared.svc, reg: shared.reg, js: shared.js, ctx: shared.ctx}
			kv, seqs := e.snapshot()
			var subject string
			switch m := tc.msg.(type) {
			case *eventsv1.ProfileChange:
				subject = bus.ProfileMemberSubject(m.GetMemberId())
			case *eventsv1.CrmChange:
				subject = bus.CRMSubject(m.GetOrganizationId(), m.GetTable(), m.GetRowId())
			}
			if tc.subject != nil {
				subject = *tc.subject
			}
			handle := map[string]func(*testkit.Msg) error{
				"crm":     func(m *testkit.Msg) error { return e.svc.HandleCRM(e.ctx, m) },
				"profile": func(m *testkit.Msg) error { return e.svc.HandleProfile(e.ctx, m) },
				"admin":   func(m *testkit.Msg) error { return e.svc.HandleAdmin(e.ctx, m) },
				"work":    func(m *testkit.Msg) error { return e.svc.HandleWork(e.ctx, m) },
			}[tc.handler]
			err := handle(msgOf(t, subject, tc.msg))
			if !bus.IsPermanent(err) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("error %v, want a permanent one naming %q", err, tc.reason)
			}
			// The reason lands in logs and dead letter headers: it names
			// the field, never the member.
			if strings.Contains(err.Error(), member) || strings.Contains(err.Error(), bus.Token(member)) {
				t.Errorf("reason %q names the member", err)
			}
			kvAfter, seqsAfter := e.snapshot()
			if len(kvAfter) != len(kv) {
				t.Errorf("state went from %d to %d keys", len(kv), len(kvAfter))
			}
			for k, v := range kvAfter {
				if kv[k] != v {
					t.Errorf("state changed at %s: %s", k, v)
				}
			}
			for s, n := range seqsAfter {
				if n != seqs[s] {
					t.Errorf("%s got %d messages", s, n-seqs[s])
				}
			}
		})
	}
}

// An empty protobuf message on a profile subject is set aside in the dead
// letter stream with its reason; no member with id "" is ever stored.
func TestEmptyProfileIsDeadLettered(t *testing.T) {
	t.Parallel()
	p := startPipeline(t)
	subject := bus.ProfileMemberSubject("")
	if _, err := p.js.Publish(p.ctx, subject, nil); err != nil {
		t.Fatal(err)
	}
	dead, err := p.js.Stream(p.ctx, bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var raw *jetstream.RawStreamMsg
	testkit.Eventually(t, "the empty profile dead-lettered", 20*time.Second, func() bool {
		raw, err = dead.GetLastMsgForSubject(p.ctx, bus.DeadLetterSubject(bus.ConsumerValidatorProfile))
		return err == nil
	})
	if got := raw.Header.Get(bus.HeaderDeadReason); !strings.HasPrefix(got, "invalid ProfileChange: ") || !strings.Contains(got, "member_id: empty") {
		t.Errorf("dead letter reason %q", got)
	}
	members, err := p.js.KeyValue(p.ctx, bus.BucketMembers)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{bus.Token(""), "b64_", "m" /* prefix of every pseudonym */} {
		if _, err := members.Get(p.ctx, key); err == nil {
			t.Errorf("a member stored under %q", key)
		}
	}
	if keys, err := members.ListKeys(p.ctx); err == nil {
		for k := range keys.Keys() {
			t.Errorf("a member stored: %s", k)
		}
	}
}

// A CRM change and a profile dated in the far future hold their row or
// member only until a real change made after JetStream received them.
func TestFarFutureVersionsDoNotFreezeState(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	arrived := t0.Add(30 * time.Minute)
	farFuture := timestamppb.New(time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))
	handleCRM := func(ch *eventsv1.CrmChange, arrived time.Time) {
		t.Helper()
		m := msgOf(t, bus.CRMSubject(org, ch.GetTable(), ch.GetRowId()), ch)
		m.Stored = arrived
		if err := e.svc.HandleCRM(e.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	handleProfile := func(p *eventsv1.ProfileChange, arrived time.Time) {
		t.Helper()
		m := msgOf(t, bus.ProfileMemberSubject(p.GetMemberId()), p)
		m.Stored = arrived
		if err := e.svc.HandleProfile(e.ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	handleCRM(accountCreate("Contoso Ltd", ""), arrived)
	handleCRM(contactCreate(contactID, email), arrived)

	// The far-future change even claims to have been received then.
	bogus := contactChange(contactID, 0, map[string]*eventsv1.Value{"jobtitle": strV("Forged")})
	bogus.EventId, bogus.RowModifiedAt, bogus.ReceivedAt = "crm-bogus", farFuture, farFuture
	handleCRM(bogus, arrived)
	later := arrived.Add(10 * time.Minute)
	real := contactChange(contactID, 0, map[string]*eventsv1.Value{"jobtitle": strV("Engineer")})
	real.EventId, real.RowModifiedAt, real.ReceivedAt = "crm-real", timestamppb.New(later), timestamppb.New(later)
	handleCRM(real, later)
	if row, err := e.svc.store.Row(e.ctx, org, "contact", contactID); err != nil || row.Cols["jobtitle"].V != "Engineer" {
		t.Errorf("jobtitle after a real update = %+v, %v; want Engineer", row, err)
	}

	// A profile observed in the far future, then a real one.
	forged := leftProfile("feed-forged", 0)
	forged.ObservedAt, forged.ReceivedAt = farFuture, farFuture
	handleProfile(forged, arrived)
	back := backProfile("feed-back", 0)
	back.ObservedAt = timestamppb.New(later)
	handleProfile(back, later)
	members, err := e.svc.store.Candidates(e.ctx, decide.Contact{EmailHashes: []string{eventsv1.HashEmail(email)}})
	if err != nil || len(members) != 1 || !members[0].Decision().ObservedAt.Equal(later) {
		t.Fatalf("member after a real profile = %+v, %v; want the one observed %s", members, err, later)
	}
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonStillThere, "feed-back")
}
