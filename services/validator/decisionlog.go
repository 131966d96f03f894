package validator

import (
	"math"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

// logDecision is the diary's line for a decision published: ids, the
// value and the one before it, the rule that fired and its confidence,
// what caused it. Never a name, an email or a member id (the member's
// part of the evidence is sealed; the audit trail has it).
func (s *Service) logDecision(kind string, d *eventsv1.Decision) {
	if s.log == nil {
		return
	}
	s.log.Info("decision", "organization", d.GetOrganizationId(), "contact", d.GetContactId(), "decision", d.GetDecisionId(),
		"value", int32(d.GetValue()), "previous", int32(d.GetPrevious()), "reason", d.GetReason(),
		"confidence", math.Round(d.GetConfidence()*1000)/1000, "trigger", kind, "cause", d.GetCauseEventId())
}
