package deadletters

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

// Event is what a dead letter's payload says, as far as an admin needs it
// to decide between redrive and discard: ids, kinds, values and times.
// Names, emails, titles, URLs and column values are left out (member,
// contact and row ids stay: they say which record, not who).
type Event struct {
	// ID is the event's id (event, decision or request id).
	ID string `json:"id,omitempty"`
	// At is when the event happened: a change's OperationCreatedOn, an
	// observation's time, a decision's or request's time.
	At *time.Time `json:"at,omitempty"`
	// CrmChange.
	Table          string   `json:"table,omitempty"`
	Row            string   `json:"row,omitempty"`
	Operation      string   `json:"operation,omitempty"`
	Message        string   `json:"message,omitempty"`
	ChangedColumns []string `json:"changedColumns,omitempty"`
	ReadBack       bool     `json:"readBack,omitempty"`
	// Decision.
	Contact    string   `json:"contact,omitempty"`
	Value      *int32   `json:"value,omitempty"`
	Previous   *int32   `json:"previous,omitempty"`
	Rule       string   `json:"rule,omitempty"`
	Confidence *float64 `json:"confidence,omitempty"`
	Cause      string   `json:"cause,omitempty"`
	// Profile events.
	Source    string `json:"source,omitempty"`
	Member    string `json:"member,omitempty"`
	Company   string `json:"company,omitempty"`
	Positions *int   `json:"positions,omitempty"`
	// Admin changes, sync and evaluation requests.
	User     string `json:"user,omitempty"`
	Enabled  *bool  `json:"enabled,omitempty"`
	Kind     string `json:"kind,omitempty"`
	Contacts *int   `json:"contacts,omitempty"`
}

// Kinds of payload, by the event contract their origin subject carries.
const (
	KindCrmChange         = "CrmChange"
	KindDecision          = "Decision"
	KindProfileChange     = "ProfileChange"
	KindCompanyChange     = "CompanyChange"
	KindMemberErased      = "MemberErased"
	KindSyncUserChange    = "SyncUserChange"
	KindOrgSettingsChange = "OrgSettingsChange"
	KindEvaluateRequest   = "EvaluateRequest"
	KindSyncRequest       = "SyncRequest"
	KindUnknown           = "unknown"
)

// kindOf is the contract of an origin subject (see bus's subject builders).
func kindOf(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 3 || parts[0] != "nac" {
		return KindUnknown
	}
	switch {
	case parts[1] == "crm":
		return KindCrmChange
	case parts[1] == "decision":
		return KindDecision
	case parts[1] == "profile" && parts[2] == "member":
		return KindProfileChange
	case parts[1] == "profile" && parts[2] == "company":
		return KindCompanyChange
	case parts[1] == "profile" && parts[2] == "erasure":
		return KindMemberErased
	case parts[1] == "admin" && len(parts) > 3 && parts[3] == "syncuser":
		return KindSyncUserChange
	case parts[1] == "admin" && len(parts) > 3 && parts[3] == "settings":
		return KindOrgSettingsChange
	case parts[1] == "work":
		return KindEvaluateRequest
	case parts[1] == "sync":
		return KindSyncRequest
	}
	return KindUnknown
}

// decode reads a payload as the contract of its origin subject.
func decode(subject string, data []byte) (*Event, error) {
	kind := kindOf(subject)
	var m proto.Message
	switch kind {
	case KindCrmChange:
		m = &eventsv1.CrmChange{}
	case KindDecision:
		m = &eventsv1.Decision{}
	case KindProfileChange:
		m = &eventsv1.ProfileChange{}
	case KindCompanyChange:
		m = &eventsv1.CompanyChange{}
	case KindMemberErased:
		m = &eventsv1.MemberErased{}
	case KindSyncUserChange:
		m = &eventsv1.SyncUserChange{}
	case KindOrgSettingsChange:
		m = &eventsv1.OrgSettingsChange{}
	case KindEvaluateRequest:
		m = &eventsv1.EvaluateRequest{}
	case KindSyncRequest:
		m = &eventsv1.SyncRequest{}
	default:
		return nil, fmt.Errorf("no event contract is published on %s", redactedSubject(subject))
	}
	if err := proto.Unmarshal(data, m); err != nil {
		return nil, fmt.Errorf("not a %s: %w", kind, err)
	}
	return summarize(m), nil
}

// summarize keeps the ids, kinds, values and times of m.
func summarize(m proto.Message) *Event {
	switch e := m.(type) {
	case *eventsv1.CrmChange:
		return &Event{ID: e.GetEventId(), At: at(e.GetOccurredAt()), Table: e.GetTable(), Row: e.GetRowId(),
			Operation: e.GetOperation().String(), Message: e.GetMessageName(), ChangedColumns: e.GetChangedColumns(),
			ReadBack: e.GetReadBackRequired(), User: e.GetInitiatingUserId()}
	case *eventsv1.Decision:
		v, p, c := int32(e.GetValue()), int32(e.GetPrevious()), e.GetConfidence()
		return &Event{ID: e.GetDecisionId(), At: at(e.GetDecidedAt()), Contact: e.GetContactId(), Value: &v, Previous: &p,
			Rule: e.GetReason(), Confidence: &c, Cause: e.GetCauseEventId()}
	case *eventsv1.ProfileChange:
		n := len(e.GetPositions())
		return &Event{ID: e.GetEventId(), At: at(e.GetObservedAt()), Source: e.GetSource(), Member: e.GetMemberId(), Positions: &n}
	case *eventsv1.CompanyChange:
		return &Event{ID: e.GetEventId(), At: at(e.GetObservedAt()), Source: e.GetSource(), Company: e.GetCompanyId()}
	case *eventsv1.MemberErased:
		return &Event{ID: e.GetEventId(), At: at(e.GetObservedAt()), Source: e.GetSource(), Member: e.GetMemberId()}
	case *eventsv1.SyncUserChange:
		on := e.GetEnabled()
		return &Event{ID: e.GetEventId(), At: at(e.GetChangedAt()), User: e.GetUserId(), Enabled: &on}
	case *eventsv1.OrgSettingsChange:
		on := e.GetDataValidation()
		return &Event{ID: e.GetEventId(), At: at(e.GetChangedAt()), Enabled: &on}
	case *eventsv1.EvaluateRequest:
		n := len(e.GetContactIds())
		return &Event{ID: e.GetRequestId(), Kind: e.GetKind(), Contacts: &n, Cause: e.GetCauseEventId()}
	case *eventsv1.SyncRequest:
		return &Event{ID: e.GetRequestId(), At: at(e.GetRequestedAt()), Kind: e.GetKind()}
	}
	return &Event{}
}

func at(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime().UTC()
	return &t
}
