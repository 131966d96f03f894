package writer

// logOutcome is the diary's line for a write outcome recorded: ids, the
// value, the outcome and the decision's rule, Dataverse's status; a
// failure at warn with its class and error. Never a name or an email.
func (s *Service) logOutcome(it *item) {
	if s.log == nil {
		return
	}
	out := it.out
	attrs := []any{"organization", out.GetOrganizationId(), "contact", out.GetContactId(), "decision", out.GetDecisionId(),
		"value", int32(out.GetValue()), "outcome", out.GetOutcome(), "reason", it.decision.GetReason(),
		"status", out.GetHttpStatus(), "attempts", out.GetAttempts()}
	if l := out.GetLatency(); l != nil {
		attrs = append(attrs, "latency", l.AsDuration())
	}
	switch out.GetOutcome() {
	case OutcomeFailed, OutcomeObsolete:
		s.log.Warn("write", append(attrs, "class", it.class, "err", out.GetError())...)
	default:
		s.log.Info("write", attrs...)
	}
}
