package writer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
	"unicode/utf8"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/memberkeys"
)

// The evidence columns travel in the flag's own PATCH or $batch part: a
// decision costs no extra request. What the evidence says about the member
// is sealed with the member's data key; the writer opens it with the key
// the validator keeps, so an erasure (which destroys the key) stops the
// writer as well: evidence it can no longer open is cleared in Dynamics,
// never written.

// MemberOpener opens what a decision's evidence says about the member;
// memberkeys.ErrShredded once the member is erased.
type MemberOpener interface {
	OpenMember(ctx context.Context, d *eventsv1.Decision) (*eventsv1.MemberEvidence, error)
}

// EvidenceConfig names the contact's evidence columns; Off writes the flag alone.
type EvidenceConfig struct {
	Off     bool
	Columns crmschema.Evidence
}

// Column lengths as provisioning creates them.
const (
	maxReason  = 400
	maxCompany = 200
)

// evidenceColumns returns the columns written beside d's flag: the
// evidence for Not at Company, nulls for No Feedback (a reversal), nothing
// for Ignore (never written) or when switched off.
func (s *Service) evidenceColumns(ctx context.Context, d *eventsv1.Decision) map[string]any {
	cols := s.cfg.Evidence.Columns
	if s.cfg.Evidence.Off || d.GetValue() == eventsv1.Flag_FLAG_IGNORE {
		return nil
	}
	cleared := map[string]any{cols.Reason: nil, cols.SuggestedCompany: nil, cols.DetectedOn: nil, cols.Confidence: nil}
	if d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		return cleared
	}
	var member *eventsv1.MemberEvidence
	if s.members != nil {
		var err error
		member, err = s.members.OpenMember(ctx, d)
		switch {
		case errors.Is(err, memberkeys.ErrShredded):
			return cleared
		case err != nil:
			s.log.Warn("evidence not opened: the flag is written without it", "decision", d.GetDecisionId(), "error", err)
			return nil
		}
	}
	reason, company := renderEvidence(d, member)
	out := map[string]any{cols.Reason: reason, cols.SuggestedCompany: nil,
		cols.Confidence: math.Round(d.GetConfidence()*100) / 100, cols.DetectedOn: nil}
	if company != "" {
		out[cols.SuggestedCompany] = company
	}
	if at := d.GetDecidedAt(); at != nil {
		out[cols.DetectedOn] = at.AsTime().UTC().Format(time.RFC3339)
	}
	return out
}

// renderEvidence puts d's evidence in a sentence, e.g. "Left Contoso in
// 2026-06; now Head of Buying at Tailspin Toys (profile 2026-11-01, email
// match, confidence 0.93)", and names the suggested new company. member is
// nil when the member's part is not at hand.
func renderEvidence(d *eventsv1.Decision, member *eventsv1.MemberEvidence) (reason, company string) {
	e := d.GetEvidence()
	var b strings.Builder
	left := member.GetEndedPosition().GetCompanyName()
	if left == "" {
		left = e.GetCompanyName()
	}
	if left != "" {
		b.WriteString("Left " + left)
	} else {
		b.WriteString("Left the company")
	}
	if ym := yearMonth(member.GetEndedPosition().GetEnd()); ym != "" {
		b.WriteString(" in " + ym)
	}
	if cur := member.GetCurrentPosition(); cur.GetCompanyName() != "" {
		company = cutChars(cur.GetCompanyName(), maxCompany)
		b.WriteString("; now ")
		if cur.GetTitle() != "" {
			b.WriteString(cur.GetTitle() + " at ")
		}
		b.WriteString(cur.GetCompanyName())
	}
	var notes []string
	if at := member.GetProfileObservedAt(); at != nil {
		notes = append(notes, "profile "+at.AsTime().UTC().Format("2006-01-02"))
	}
	if m := e.GetMemberMatch(); m != "" {
		notes = append(notes, m+" match")
	}
	notes = append(notes, fmt.Sprintf("confidence %.2f", math.Round(d.GetConfidence()*100)/100))
	if r := d.GetReviewer(); r != "" {
		notes = append(notes, "reviewed by "+r)
	}
	b.WriteString(" (" + strings.Join(notes, ", ") + ")")
	return cutChars(b.String(), maxReason), company
}

func yearMonth(ym *eventsv1.YearMonth) string {
	switch {
	case ym.GetYear() == 0:
		return ""
	case ym.GetMonth() == 0:
		return fmt.Sprintf("%04d", ym.GetYear())
	}
	return fmt.Sprintf("%04d-%02d", ym.GetYear(), ym.GetMonth())
}

// cutChars cuts s to at most n characters (Dataverse counts characters).
func cutChars(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
