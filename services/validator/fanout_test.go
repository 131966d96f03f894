package validator

import (
	"fmt"
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// An account change affecting more contacts than InlineFanout goes to the
// work queue in chunks, once, and the chunks produce the decisions.
func TestLargeFanoutGoesToWorkQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc.cfg.InlineFanout, e.svc.cfg.ChunkSize = 5, 4
	const small = "a1b2c3d4-0000-4000-8000-000000000005"
	var many, few []string
	for i := range 11 {
		many = append(many, fmt.Sprintf("c1c1c1c1-0000-4000-8000-%012d", i))
	}
	for i := range 5 {
		few = append(few, fmt.Sprintf("c2c2c2c2-0000-4000-8000-%012d", i))
	}
	for _, c := range many {
		e.mustCRM(person(c, accountID, otherUser, 2))
		e.mustProfile(profileFor(c, 10))
	}
	for _, c := range few {
		e.mustCRM(person(c, small, otherUser, 2))
		e.mustProfile(profileFor(c, 10))
	}
	if n := e.published(bus.StreamDecisions); n != 0 {
		t.Fatalf("%d decisions before the accounts exist", n)
	}

	// Exactly InlineFanout contacts: evaluated inline.
	e.mustCRM(company(small, syncUser, 3))
	if got := e.evaluations("crm_account"); got != 5 {
		t.Errorf("evaluations{crm_account} = %v for an account of 5 contacts, want 5 (inline)", got)
	}
	if n := e.published(bus.StreamWork); n != 0 {
		t.Errorf("%d work messages for a fan-out of InlineFanout contacts", n)
	}
	for _, c := range few {
		e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "")
	}
	decisions := e.published(bus.StreamDecisions)

	// More: three chunks on the work queue, nothing inline.
	acct := company(accountID, syncUser, 3)
	acctMsg := msgOf(t, bus.CRMSubject(org, "account", accountID), acct)
	if err := e.svc.HandleCRM(e.ctx, acctMsg); err != nil {
		t.Fatal(err)
	}
	if got := e.evaluations("crm_account"); got != 5 {
		t.Errorf("evaluations{crm_account} = %v, want 5: the large fan-out evaluated %v inline", got, got-5)
	}
	if n := e.published(bus.StreamDecisions); n != decisions {
		t.Errorf("%d decisions published inline", n-decisions)
	}
	work := e.workMessages()
	if len(work) != 3 {
		t.Fatalf("%d work messages, want 3", len(work))
	}
	var covered []string
	var sizes []int
	seenIDs := map[string]bool{}
	for _, w := range work {
		req := w.req
		if w.subject != "nac.work."+org {
			t.Errorf("work subject %q", w.subject)
		}
		if req.GetOrganizationId() != org || req.GetKind() != "crm_account" || req.GetCauseEventId() != acct.GetEventId() {
			t.Errorf("work request %v", req)
		}
		if req.GetRequestId() == "" || seenIDs[req.GetRequestId()] || w.msgID != "work."+req.GetRequestId() {
			t.Errorf("work request id %q, Nats-Msg-Id %q", req.GetRequestId(), w.msgID)
		}
		seenIDs[req.GetRequestId()] = true
		covered = append(covered, req.GetContactIds()...)
		sizes = append(sizes, len(req.GetContactIds()))
	}
	slices.Sort(covered)
	if !slices.Equal(covered, many) {
		t.Errorf("work messages cover %v, want each of %v once", covered, many)
	}
	slices.Sort(sizes)
	if !slices.Equal(sizes, []int{3, 4, 4}) {
		t.Errorf("chunk sizes %v, want 4, 4, 3", sizes)
	}

	// The account change redelivered: the same chunks, deduplicated.
	acctMsg.Delivered = 2
	if err := e.svc.HandleCRM(e.ctx, acctMsg); err != nil {
		t.Fatal(err)
	}
	if n := e.published(bus.StreamWork); n != 3 {
		t.Errorf("%d work messages stored after the redelivery, want 3", n)
	}
	if got := e.evaluations("crm_account"); got != 5 {
		t.Errorf("the redelivery evaluated %v contacts inline", got-5)
	}

	// The work consumer's turn.
	for _, w := range work {
		if err := e.svc.HandleWork(e.ctx, &testkit.Msg{Subj: w.subject, Payload: w.data, Seq: w.seq}); err != nil {
			t.Fatalf("HandleWork(%s): %v", w.req.GetRequestId(), err)
		}
	}
	if got := e.evaluations("crm_account"); got != 5+11 {
		t.Errorf("evaluations{crm_account} = %v after the work, want 16", got)
	}
	for _, c := range many {
		e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, acct.GetEventId())
	}
	if n := e.published(bus.StreamDecisions); n != decisions+11 {
		t.Errorf("%d decisions from the work, want 11", n-decisions)
	}
	// A chunk redelivered: nothing new.
	if err := e.svc.HandleWork(e.ctx, &testkit.Msg{Subj: work[0].subject, Payload: work[0].data, Seq: work[0].seq, Delivered: 2}); err != nil {
		t.Fatal(err)
	}
	if n := e.published(bus.StreamDecisions); n != decisions+11 {
		t.Errorf("a redelivered chunk published %d decisions", n-decisions-11)
	}
}

type workMsg struct {
	subject, msgID string
	seq            uint64
	data           []byte
	req            *eventsv1.EvaluateRequest
}

// workMessages reads every message the work queue holds.
func (e *env) workMessages() []workMsg {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, bus.StreamWork)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	var out []workMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := s.GetMsg(e.ctx, seq)
		if err != nil {
			e.t.Fatalf("work message %d: %v", seq, err)
		}
		req := &eventsv1.EvaluateRequest{}
		if err := proto.Unmarshal(raw.Data, req); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, workMsg{subject: raw.Subject, msgID: raw.Header.Get(nats.MsgIdHdr), seq: seq, data: raw.Data, req: req})
	}
	if uint64(len(out)) != info.State.Msgs {
		e.t.Fatalf("read %d work messages, the stream holds %d", len(out), info.State.Msgs)
	}
	return out
}
