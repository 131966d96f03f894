package writer

import (
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// decodeDecision decodes a decision and checks what the writer relies on:
// a contact id that is a GUID (it goes into the Web API's URL), a value
// the flag column has, and the subject the decision was published on. A
// decision that fails is set aside: no retry can mend it.
func decodeDecision(m jetstream.Msg) (*eventsv1.Decision, error) {
	var d eventsv1.Decision
	if err := proto.Unmarshal(m.Data(), &d); err != nil {
		return nil, fmt.Errorf("decode Decision: %w", err)
	}
	var errs []error
	if d.GetDecisionId() == "" {
		errs = append(errs, errors.New("decisionId: missing"))
	}
	if d.GetOrganizationId() == "" {
		errs = append(errs, errors.New("organizationId: missing"))
	}
	if !dataverse.IsGUID(d.GetContactId()) {
		errs = append(errs, fmt.Errorf("contactId %q: not a GUID", truncate(d.GetContactId(), 64)))
	}
	switch d.GetValue() {
	case eventsv1.Flag_FLAG_NO_FEEDBACK, eventsv1.Flag_FLAG_NOT_AT_COMPANY, eventsv1.Flag_FLAG_IGNORE:
	default:
		errs = append(errs, fmt.Errorf("value %d: not a flag value", d.GetValue()))
	}
	if len(errs) == 0 && m.Subject() != bus.DecisionSubject(d.GetOrganizationId(), d.GetContactId()) {
		errs = append(errs, errors.New("published on another contact's subject"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid Decision: %w", err)
	}
	return &d, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
