package ingest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/shared/memberkeys"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// Contacts of the explain tests, in contactOrg.
const (
	flaggedContact   = "c0000000-0000-4000-8000-000000000001"
	scopeContact     = "c0000000-0000-4000-8000-000000000002"
	candidateContact = "c0000000-0000-4000-8000-000000000003"
	erasedContact    = "c0000000-0000-4000-8000-000000000004"
	unknownContact   = "c0000000-0000-4000-8000-0000000000ff"
	riskOpportunity  = "0bb00000-0000-4000-8000-000000000001"
	explainAccount   = "a0000000-0000-4000-8000-000000000001"
	explainSyncUser  = "5e000000-0000-4000-8000-000000000001"
	explainOther     = "5e000000-0000-4000-8000-000000000002"
)

// explainStore is a JetStream with the topology, where the tests put what
// the validator and the writer would have.
type explainStore struct {
	t   *testing.T
	ctx context.Context
	js  jetstream.JetStream
	kv  jetstream.KeyValue
}

func newExplainStore(t *testing.T) *explainStore {
	t.Helper()
	js, _ := testkit.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	kv, err := js.KeyValue(ctx, bus.BucketEvaluations)
	if err != nil {
		t.Fatal(err)
	}
	return &explainStore{t: t, ctx: ctx, js: js, kv: kv}
}

// memberKey stores a member's data key, as the validator keeps it.
func (s *explainStore) memberKey() memberkeys.Key {
	s.t.Helper()
	id, k := make([]byte, 16), make([]byte, 32)
	_, _ = rand.Read(id)
	_, _ = rand.Read(k)
	key := memberkeys.Key{ID: hex.EncodeToString(id), Key: k}
	data, _ := json.Marshal(key)
	if _, err := s.js.Publish(s.ctx, bus.MemberKeyIDSubject(key.ID), data); err != nil {
		s.t.Fatal(err)
	}
	return key
}

// seal moves the member's part of d's evidence under key, as the validator does.
func (s *explainStore) seal(key memberkeys.Key, d *eventsv1.Decision) {
	s.t.Helper()
	e := d.GetEvidence()
	data, _ := proto.Marshal(&eventsv1.MemberEvidence{MemberId: e.GetMemberId(), EndedPosition: e.GetEndedPosition(),
		CurrentPosition: e.GetCurrentPosition(), Contradicts: e.GetContradicts(), ProfileObservedAt: e.GetProfileObservedAt(),
		Features: e.GetFeatures(), MatchWeight: e.GetMatchWeight(), Candidates: e.GetCandidates()})
	nonce := make([]byte, 12)
	_, _ = rand.Read(nonce)
	sealed, err := memberkeys.Seal(key, nonce, data, memberkeys.EvidenceAAD(d.GetOrganizationId(), d.GetContactId()))
	if err != nil {
		s.t.Fatal(err)
	}
	e.MemberId, e.EndedPosition, e.CurrentPosition, e.Contradicts, e.ProfileObservedAt = "", nil, nil, nil, nil
	e.Features, e.MatchWeight, e.Candidates = nil, 0, nil
	e.Sealed = sealed
}

func (s *explainStore) put(key string, m proto.Message) {
	s.t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.kv.Put(s.ctx, key, data); err != nil {
		s.t.Fatal(err)
	}
}

func (s *explainStore) index(key string) {
	s.t.Helper()
	if _, err := s.kv.Put(s.ctx, key, []byte(`{}`)); err != nil {
		s.t.Fatal(err)
	}
}

func (s *explainStore) publish(subject string, m proto.Message) {
	s.t.Helper()
	data, _ := proto.Marshal(m)
	if _, err := s.js.Publish(s.ctx, subject, data); err != nil {
		s.t.Fatal(err)
	}
}

func leftEvidence() *eventsv1.Evidence {
	return &eventsv1.Evidence{MemberId: "m-avery", MemberMatch: "email", MemberConfidence: 0.95,
		CompanyName: "Contoso Ltd", CompanyMatch: "name", CompanyConfidence: 0.9, ProfileSource: "demo-feed",
		ProfileObservedAt: timestamppb.New(fixedNow.Add(-time.Hour)),
		EndedPosition:     &eventsv1.Position{CompanyName: "Contoso Ltd", Title: "Buyer", Start: &eventsv1.YearMonth{Year: 2019, Month: 3}, End: &eventsv1.YearMonth{Year: 2026, Month: 9}},
		CurrentPosition:   &eventsv1.Position{CompanyName: "Fabrikam, Inc.", Title: "Head of Buying", Start: &eventsv1.YearMonth{Year: 2026, Month: 10}, Current: true},
		Contradicts:       map[string]string{"parentcustomerid": "Contoso Ltd", "suggested_company": "Fabrikam, Inc."},
		Features:          []*eventsv1.MatchFeature{{Name: "email", Level: "same", Weight: 9.5}},
	}
}

func inScope() *eventsv1.ScopePath {
	return &eventsv1.ScopePath{InScope: true, Via: "account_owner", UserId: explainSyncUser, Checks: []*eventsv1.ScopeCheck{
		{Via: "contact_owner", UserId: explainOther}, {Via: "account_owner", UserId: explainSyncUser, RowId: explainAccount, SyncUser: true}}}
}

// evaluation is a kept evaluation of contact.
func evaluation(contact string, value eventsv1.Flag, reason string, confidence float64, ev *eventsv1.Evidence) *eventsv1.Evaluation {
	return &eventsv1.Evaluation{
		Result: &eventsv1.Decision{OrganizationId: contactOrg, ContactId: contact, Value: value, Reason: reason, Confidence: confidence,
			Evidence: ev, DecidedAt: timestamppb.New(fixedNow.Add(-time.Minute)), CauseEventId: "feed-1"},
		Digest: "0123456789abcdef01234567", Scope: inScope(), Threshold: 0.8, MaxProfileAge: durationpb.New(548 * 24 * time.Hour),
		CrmFlag: eventsv1.Flag_FLAG_NO_FEEDBACK, CrmFlagVersion: timestamppb.New(fixedNow.Add(-48 * time.Hour)),
		EvidenceDigest: "89abcdef0123456789abcdef", AccountId: explainAccount,
	}
}

// seedExplain puts a flagged contact with its decision, write and an open
// opportunity at risk; an out-of-scope one; a candidate; a flagged one whose
// member was erased; a stray index key; and records of other contacts.
func seedExplain(s *explainStore) {
	key := s.memberKey()
	flagged := evaluation(flaggedContact, eventsv1.Flag_FLAG_NOT_AT_COMPANY, "left_company", 0.855, leftEvidence())
	flagged.OpenOpportunities = []*eventsv1.OpportunityRef{{OpportunityId: riskOpportunity, OwnerId: explainSyncUser, AccountId: explainAccount}}
	flagged.LastDecisionId = "d-1"
	s.seal(key, flagged.Result)
	s.put(evaluations.Key(contactOrg, flaggedContact), flagged)
	s.index(evaluations.FlaggedKey(contactOrg, flaggedContact))
	s.index(evaluations.AtRiskKey(contactOrg, riskOpportunity, flaggedContact))

	decision := proto.CloneOf(flagged.Result)
	decision.DecisionId, decision.Previous = "d-1", eventsv1.Flag_FLAG_NO_FEEDBACK
	s.publish(bus.DecisionSubject(contactOrg, flaggedContact), decision)
	other := &eventsv1.Decision{DecisionId: "d-other", OrganizationId: contactOrg, ContactId: scopeContact, Reason: "unmatched"}
	s.publish(bus.AuditSubject("decision", contactOrg), other)
	s.publish(bus.AuditSubject("decision", contactOrg), decision)
	s.publish(bus.AuditSubject("write", "5f0c7f10-0000-4000-8000-00000000000b"), &eventsv1.WriteOutcome{DecisionId: "d-else", ContactId: flaggedContact})
	s.publish(bus.AuditSubject("write", contactOrg), &eventsv1.WriteOutcome{DecisionId: "d-1", OrganizationId: contactOrg,
		ContactId: flaggedContact, Value: eventsv1.Flag_FLAG_NOT_AT_COMPANY, Outcome: "written", HttpStatus: 204, Attempts: 1,
		RecordedAt: timestamppb.New(fixedNow)})

	out := evaluation(scopeContact, eventsv1.Flag_FLAG_NO_FEEDBACK, "out_of_scope", 0, &eventsv1.Evidence{})
	out.Scope = &eventsv1.ScopePath{Checks: []*eventsv1.ScopeCheck{{Via: "contact_owner", UserId: explainOther},
		{Via: "account_owner", UserId: explainOther, RowId: explainAccount}}}
	s.put(evaluations.Key(contactOrg, scopeContact), out)
	s.index(evaluations.FlaggedKey(contactOrg, scopeContact)) // a stray: its evaluation does not back it

	cand := evaluation(candidateContact, eventsv1.Flag_FLAG_NO_FEEDBACK, "below_threshold", 0.62, leftEvidence())
	cand.Candidate, cand.Threshold = true, 0.8
	s.seal(key, cand.Result)
	s.put(evaluations.Key(contactOrg, candidateContact), cand)
	s.index(evaluations.CandidateKey(contactOrg, candidateContact))

	gone := evaluation(erasedContact, eventsv1.Flag_FLAG_NOT_AT_COMPANY, "left_company", 0.9, leftEvidence())
	s.seal(memberkeys.Key{ID: strings.Repeat("ab", 16), Key: make([]byte, 32)}, gone.Result) // a key that is not kept
	s.put(evaluations.Key(contactOrg, erasedContact), gone)
	s.index(evaluations.FlaggedKey(contactOrg, erasedContact))
}

func explainFixture(t *testing.T) *fixture {
	t.Helper()
	s := newExplainStore(t)
	seedExplain(s)
	r, err := evaluations.NewReader(s.ctx, s.js)
	if err != nil {
		t.Fatal(err)
	}
	f := adminFixture(t)
	f.svc.SetExplainReader(r)
	f.h = f.svc.Routes()
	return f
}

func withExplain(r ExplainReader) func(f *fixture) {
	return func(f *fixture) {
		f.svc.admin = fakeAdmin{}
		f.svc.SetExplainReader(r)
		f.h = f.svc.Routes()
	}
}

func getJSON[T any](t *testing.T, f *fixture, target string, status int) T {
	t.Helper()
	rec := f.do(t, http.MethodGet, target, "", nil, adminAuth())
	if rec.Code != status {
		t.Fatalf("GET %s: status %d, want %d: %s", target, rec.Code, status, rec.Body)
	}
	var out T
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExplainFlaggedContact(t *testing.T) {
	t.Parallel()
	f := explainFixture(t)
	x := getJSON[Explanation](t, f, "/admin/orgs/"+contactOrg+"/contacts/"+flaggedContact, http.StatusOK)
	ev := x.Evaluation
	if ev == nil || ev.Value != 1 || ev.ValueName != "not_at_company" || ev.Reason != "left_company" || ev.Confidence != 0.855 || ev.Threshold != 0.8 {
		t.Fatalf("evaluation %+v", ev)
	}
	if ev.Evidence.MemberID != "m-avery" || ev.Evidence.CurrentPosition == nil || ev.Evidence.CurrentPosition.CompanyName != "Fabrikam, Inc." || len(ev.Evidence.Features) != 1 ||
		ev.EvidenceErased {
		t.Errorf("evidence not opened: %+v", ev.Evidence)
	}
	if !ev.Scope.InScope || ev.Scope.Via != "account_owner" || ev.Scope.UserID != explainSyncUser || len(ev.Scope.Checks) != 2 {
		t.Errorf("scope %+v", ev.Scope)
	}
	if len(ev.OpenOpportunities) != 1 || ev.OpenOpportunities[0].OpportunityID != riskOpportunity {
		t.Errorf("open opportunities %+v", ev.OpenOpportunities)
	}
	if x.LastDecision == nil || x.LastDecision.DecisionID != "d-1" || x.LastDecision.Previous != 0 {
		t.Errorf("last decision %+v", x.LastDecision)
	}
	h := x.History
	if len(h.Entries) != 2 || h.Entries[0].Kind != "decision" || h.Entries[0].Decision.DecisionID != "d-1" ||
		h.Entries[1].Kind != "write" || h.Entries[1].Write.Outcome != "written" || !h.Complete || h.Scanned != 3 {
		t.Errorf("history %+v, want the contact's decision then its write, of the 3 records of the organization", h)
	}
	if x.LastWrite == nil || x.LastWrite.HTTPStatus != 204 || x.Dynamics.Source != "write" || x.Dynamics.Value == nil || *x.Dynamics.Value != 1 {
		t.Errorf("last write %+v, Dynamics %+v: want the written 1", x.LastWrite, x.Dynamics)
	}
	want := "Not at Company: left Contoso Ltd in 2026-09; now Head of Buying at Fabrikam, Inc. (email match, confidence 0.85, threshold 0.80)."
	if x.Summary != want {
		t.Errorf("summary %q, want %q", x.Summary, want)
	}
}

func TestExplainNoFeedbackAndUnknown(t *testing.T) {
	t.Parallel()
	f := explainFixture(t)
	x := getJSON[Explanation](t, f, "/admin/orgs/"+contactOrg+"/contacts/"+scopeContact, http.StatusOK)
	if x.Evaluation.Reason != "out_of_scope" || x.Evaluation.Scope.InScope || x.LastDecision != nil || x.LastWrite != nil ||
		x.Dynamics.Source != "crm" || *x.Dynamics.Value != 0 {
		t.Errorf("out of scope: %+v, Dynamics %+v", x.Evaluation, x.Dynamics)
	}
	if !strings.Contains(x.Summary, "out of scope: the contact's owner (user "+explainOther+") is not a sync user") {
		t.Errorf("summary %q", x.Summary)
	}
	gone := getJSON[Explanation](t, f, "/admin/orgs/"+contactOrg+"/contacts/"+erasedContact, http.StatusOK)
	if !gone.Evaluation.EvidenceErased || gone.Evaluation.Evidence.MemberID != "" || !strings.HasSuffix(gone.Summary, "The member's evidence is erased.") {
		t.Errorf("erased evidence: %+v %q", gone.Evaluation.Evidence, gone.Summary)
	}
	decodeProblem(t, f.do(t, http.MethodGet, "/admin/orgs/"+contactOrg+"/contacts/"+unknownContact, "", nil, adminAuth()), http.StatusNotFound, "not-found")
	decodeProblem(t, f.do(t, http.MethodGet, "/admin/orgs/"+contactOrg+"/contacts/nope", "", nil, adminAuth()), http.StatusBadRequest, "invalid-path")
	decodeProblem(t, f.do(t, http.MethodGet, "/admin/orgs/"+contactOrg+"/contacts/"+flaggedContact, "", nil, nil), http.StatusUnauthorized, "unauthorized")
}

func TestListsPageThroughTheirIndex(t *testing.T) {
	t.Parallel()
	f := explainFixture(t)
	base := "/admin/orgs/" + contactOrg
	first := getJSON[ListPage](t, f, base+"/flagged?limit=1", http.StatusOK)
	if len(first.Items) != 1 || first.Items[0].ContactID != flaggedContact || first.Items[0].Reason != "left_company" || first.Next == "" {
		t.Fatalf("first page %+v", first)
	}
	// The stray key of the out-of-scope contact is left out; the erased
	// member's contact is flagged still.
	rest := getJSON[ListPage](t, f, base+"/flagged?limit=5&cursor="+first.Next, http.StatusOK)
	if len(rest.Items) != 1 || rest.Items[0].ContactID != erasedContact || rest.Next != "" {
		t.Errorf("second page %+v, want the erased member's contact only", rest)
	}
	risk := getJSON[ListPage](t, f, base+"/at-risk", http.StatusOK)
	if len(risk.Items) != 1 || risk.Items[0].OpportunityID != riskOpportunity || risk.Items[0].ContactID != flaggedContact ||
		risk.Items[0].OwnerID != explainSyncUser || risk.Items[0].Evidence == nil || risk.Items[0].Evidence.MemberID != "m-avery" {
		t.Errorf("at risk %+v", risk)
	}
	cands := getJSON[ListPage](t, f, base+"/candidates", http.StatusOK)
	if len(cands.Items) != 1 || cands.Items[0].ContactID != candidateContact || cands.Items[0].Confidence != 0.62 ||
		cands.Items[0].Threshold != 0.8 || cands.Items[0].EvidenceDigest == "" {
		t.Errorf("candidates %+v", cands)
	}
	for _, q := range []string{"limit=0", "limit=201", "limit=x", "cursor=!!", "cursor=bm90LWEtY3Vyc29y"} {
		p := decodeProblem(t, f.do(t, http.MethodGet, base+"/flagged?"+q, "", nil, adminAuth()), http.StatusBadRequest, "invalid-query")
		if len(p.Errors) != 1 || !strings.HasPrefix(q, p.Errors[0].Field) {
			t.Errorf("%s: problem %+v, want the field named", q, p)
		}
	}
}

func TestReviewIsPublishedForTheValidator(t *testing.T) {
	t.Parallel()
	f := explainFixture(t)
	base := "/admin/orgs/" + contactOrg + "/candidates/"
	rec := f.do(t, http.MethodPost, base+candidateContact+"/approve", "application/json", []byte(`{"reviewer":"admin@contoso.example"}`), adminAuth())
	if rec.Code != http.StatusAccepted {
		t.Fatalf("approve: %d %s", rec.Code, rec.Body)
	}
	msgs := f.pub.stored()
	if len(msgs) != 1 || msgs[0].subject != bus.AdminReviewSubject(contactOrg, candidateContact) {
		t.Fatalf("published %+v", msgs)
	}
	var r eventsv1.ReviewAction
	if err := proto.Unmarshal(msgs[0].data, &r); err != nil {
		t.Fatal(err)
	}
	if r.GetAction() != "approve" || r.GetReviewer() != "admin@contoso.example" || r.GetEvidenceDigest() != "89abcdef0123456789abcdef" ||
		!r.GetRequestedAt().AsTime().Equal(fixedNow) || msgs[0].msgID != "admin."+r.GetEventId() {
		t.Errorf("review %v (msg id %q)", &r, msgs[0].msgID)
	}
	for _, tc := range []struct {
		target, body string
		status       int
		kind         string
	}{
		{flaggedContact + "/reject", `{"reviewer":"a"}`, http.StatusConflict, "not-a-candidate"},
		{unknownContact + "/approve", `{"reviewer":"a"}`, http.StatusNotFound, "not-found"},
		{candidateContact + "/approve", `{}`, http.StatusBadRequest, "invalid-body"},
		{candidateContact + "/approve", `{"reviewer":"  "}`, http.StatusBadRequest, "invalid-body"},
		{candidateContact + "/approve", `{"reviewer":"a\u0007b"}`, http.StatusBadRequest, "invalid-body"},
		{candidateContact + "/approve", `{"reviewer":"a","why":"x"}`, http.StatusBadRequest, "invalid-body"},
		{candidateContact + "/approve", `{"reviewer":"` + strings.Repeat("x", 101) + `"}`, http.StatusBadRequest, "invalid-body"},
		{"nope/approve", `{"reviewer":"a"}`, http.StatusBadRequest, "invalid-path"},
	} {
		decodeProblem(t, f.do(t, http.MethodPost, base+tc.target, "application/json", []byte(tc.body), adminAuth()), tc.status, tc.kind)
	}
	// No body: the reviewer is the one X-Nac-Actor names.
	header := adminAuth()
	header[HeaderActor] = "lead@contoso.example"
	if rec := f.do(t, http.MethodPost, base+candidateContact+"/reject", "", nil, header); rec.Code != http.StatusAccepted {
		t.Fatalf("reject with X-Nac-Actor: %d %s", rec.Code, rec.Body)
	}
	msgs = f.pub.stored()
	if len(msgs) != 2 || proto.Unmarshal(msgs[1].data, &r) != nil || r.GetReviewer() != "lead@contoso.example" || r.GetAction() != "reject" {
		t.Errorf("published %d, the last %v", len(msgs), &r)
	}
	p := decodeProblem(t, f.do(t, http.MethodPost, base+candidateContact+"/reject", "", nil, adminAuth()), http.StatusBadRequest, "invalid-body")
	if len(p.Errors) != 1 || p.Errors[0].Field != "/reviewer" {
		t.Errorf("no reviewer at all: %+v", p)
	}
	if n := len(f.pub.stored()); n != 2 {
		t.Errorf("%d messages published, want only the valid reviews", n)
	}
}

func TestOpenAPIConformanceExplain(t *testing.T) {
	t.Parallel()
	_, router := loadSpec(t)
	s := newExplainStore(t)
	seedExplain(s)
	r, err := evaluations.NewReader(s.ctx, s.js)
	if err != nil {
		t.Fatal(err)
	}
	tokens := func(c *Config) { c.AdminTokens = []string{testAdminToken} }
	prepare := withExplain(r)
	base := "/admin/orgs/" + contactOrg
	get, post := http.MethodGet, http.MethodPost
	reviewer := []byte(`{"reviewer":"admin@contoso.example"}`)
	noQuery := openapi3filter.Options{ExcludeRequestQueryParams: true}
	noBody := openapi3filter.Options{ExcludeRequestBody: true}
	for _, c := range []specCase{
		{name: "explain flagged", target: base + "/contacts/" + flaggedContact, status: http.StatusOK},
		{name: "explain out of scope", target: base + "/contacts/" + scopeContact, status: http.StatusOK},
		{name: "explain candidate", target: base + "/contacts/" + candidateContact, status: http.StatusOK},
		{name: "explain erased", target: base + "/contacts/" + erasedContact, status: http.StatusOK},
		{name: "explain unknown", target: base + "/contacts/" + unknownContact, status: http.StatusNotFound},
		{name: "flagged", target: base + "/flagged?limit=1", status: http.StatusOK},
		{name: "at risk", target: base + "/at-risk", status: http.StatusOK},
		{name: "candidates", target: base + "/candidates?limit=200", status: http.StatusOK},
		{name: "list bad limit", target: base + "/flagged?limit=0", requestOpts: noQuery, status: http.StatusBadRequest},
		{name: "approve", method: post, target: base + "/candidates/" + candidateContact + "/approve", contentType: "application/json",
			body: reviewer, status: http.StatusAccepted},
		{name: "reject", method: post, target: base + "/candidates/" + candidateContact + "/reject", contentType: "application/json",
			body: reviewer, status: http.StatusAccepted},
		{name: "approve not a candidate", method: post, target: base + "/candidates/" + flaggedContact + "/approve", contentType: "application/json",
			body: reviewer, status: http.StatusConflict},
		{name: "approve unknown", method: post, target: base + "/candidates/" + unknownContact + "/approve", contentType: "application/json",
			body: reviewer, status: http.StatusNotFound},
		{name: "approve without reviewer", method: post, target: base + "/candidates/" + candidateContact + "/approve", contentType: "application/json",
			body: []byte(`{}`), requestOpts: noBody, status: http.StatusBadRequest},
		{name: "approve text/plain", method: post, target: base + "/candidates/" + candidateContact + "/approve", contentType: "text/plain",
			body: reviewer, requestOpts: noBody, status: http.StatusUnsupportedMediaType},
		{name: "reject with X-Nac-Actor, no body", method: post, target: base + "/candidates/" + candidateContact + "/reject",
			header: map[string]string{"Authorization": "Bearer " + testAdminToken, HeaderActor: "ops"}, status: http.StatusAccepted},
		{name: "approve JetStream down", failPublish: true, method: post, target: base + "/candidates/" + candidateContact + "/approve",
			contentType: "application/json", body: reviewer, status: http.StatusServiceUnavailable},
	} {
		c.cfg, c.prepare = tokens, prepare
		if c.method == "" {
			c.method = get
		}
		if c.header == nil {
			c.header = adminAuth()
		}
		t.Run(c.name, func(t *testing.T) { checkAgainstSpec(t, router, c) })
	}
}
