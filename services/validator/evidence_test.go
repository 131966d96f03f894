package validator

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// auditedDecisions reads every decision record of the audit trail.
func (p *pipeline) auditedDecisions() []*eventsv1.Decision {
	p.t.Helper()
	s, err := p.js.Stream(p.ctx, bus.StreamAudit)
	if err != nil {
		p.t.Fatal(err)
	}
	info, err := s.Info(p.ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	var out []*eventsv1.Decision
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(p.ctx, seq)
		if err != nil || m.Subject != bus.AuditSubject("decision", org) {
			continue
		}
		var d eventsv1.Decision
		if err := proto.Unmarshal(m.Data, &d); err != nil {
			p.t.Fatal(err)
		}
		out = append(out, &d)
	}
	return out
}

func TestEvidenceReadableUntilTheMemberIsErased(t *testing.T) {
	t.Parallel()
	p, before, kept := erasureScenario(t)

	// The audit still holds the decision the member's profile led to, but
	// what it said about the member is gone with the member's key.
	var flagged *eventsv1.Decision
	for _, d := range p.auditedDecisions() {
		if d.GetDecisionId() == before.GetDecisionId() {
			flagged = d
		}
	}
	if flagged == nil {
		t.Fatal("the flag's decision is not in the audit trail")
	}
	ev, err := p.svc.OpenEvidence(p.ctx, flagged)
	if !errors.Is(err, ErrShredded) || ev.GetMemberId() != "" || ev.GetCurrentPosition() != nil {
		t.Errorf("evidence of the erased member: %v, %v; want it shredded", ev, err)
	}
	if flagged.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || ev.GetCompanyName() != "Contoso Ltd" || ev.GetMemberMatch() != "email" {
		t.Errorf("what the audit keeps of the decision: %v %v", flagged.GetValue(), ev)
	}

	// The other member's evidence still reads in full.
	ev, err = p.svc.OpenEvidence(p.ctx, kept)
	if err != nil || ev.GetMemberId() != keptMember || ev.GetCurrentPosition().GetCompanyName() != "US Navy" ||
		ev.GetEndedPosition().GetTitle() != "Engineer" || ev.GetContradicts()["suggested_company"] != "US Navy" {
		t.Errorf("evidence of the member not erased: %v, %v", ev, err)
	}
	// Sealed evidence is bound to its contact: moved to another, it does not open.
	moved := proto.CloneOf(kept)
	moved.ContactId = contactID
	if _, err := p.svc.OpenEvidence(p.ctx, moved); err == nil || errors.Is(err, ErrShredded) {
		t.Errorf("evidence moved to another contact opened: %v", err)
	}
}
