package validator

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Everything the validator decodes is checked before it is used: a message
// that fails is set aside in the dead letter stream with the reason and
// changes nothing. Reasons name the field, never its value when the value
// may identify a person (member ids are often email-like).

// guidRE is a Dataverse id as ingest normalizes it: a lower-case GUID.
var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

var (
	tableRE     = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)
	emailHashRE = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// maxOutsideID bounds ids that profile sources choose.
const maxOutsideID = 256

// maxWorkChunk is the most contacts one work chunk may name (the chunk
// size is at most 5000).
const maxWorkChunk = 5000

// joinErrs joins the errors that are not nil on one line ("; "): a reason
// travels in a dead letter's header.
func joinErrs(errs ...error) error {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	if len(msgs) == 0 {
		return nil
	}
	return errors.New(strings.Join(msgs, "; "))
}

func checkGUID(field, v string) error {
	if !guidRE.MatchString(v) {
		return fmt.Errorf("%s: want a lower-case GUID, got %d bytes", field, len(v))
	}
	return nil
}

// checkOutsideID accepts an id a profile source chose: 1-256 bytes with
// no control characters or spaces (proto3 already guarantees UTF-8).
func checkOutsideID(field, v string) error {
	switch {
	case v == "":
		return fmt.Errorf("%s: empty", field)
	case len(v) > maxOutsideID:
		return fmt.Errorf("%s: %d bytes, at most %d", field, len(v), maxOutsideID)
	case strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0:
		return fmt.Errorf("%s: contains a control character or space", field)
	}
	return nil
}

// checkEventID accepts an upstream event id: it ends up in message ids.
func checkEventID(v string) error { return checkOutsideID("event_id", v) }

func checkTime(field string, ts *timestamppb.Timestamp, required bool) error {
	if ts == nil {
		if required {
			return fmt.Errorf("%s: missing", field)
		}
		return nil
	}
	if err := ts.CheckValid(); err != nil {
		return fmt.Errorf("%s: %w", field, err)
	}
	return nil
}

func checkSubject(got, want string) error {
	if got != want {
		return errors.New("subject does not match the message's ids")
	}
	return nil
}

// referenceColumns are the lookup columns the state keeps.
var referenceColumns = []string{"parentcustomerid", "ownerid", "parentcontactid", "customerid", "parentaccountid"}

// validateCRM checks a change of a tracked table.
func validateCRM(ch *eventsv1.CrmChange, subject string) error {
	errs := []error{
		checkEventID(ch.GetEventId()),
		checkGUID("organization_id", ch.GetOrganizationId()),
		checkGUID("row_id", ch.GetRowId()),
		checkTime("row_modified_at", ch.GetRowModifiedAt(), false),
		checkTime("occurred_at", ch.GetOccurredAt(), false),
		checkTime("received_at", ch.GetReceivedAt(), false),
	}
	if op := ch.GetOperation(); op <= eventsv1.Operation_OPERATION_UNSPECIFIED || op > eventsv1.Operation_OPERATION_DISASSOCIATE {
		errs = append(errs, fmt.Errorf("operation: %d is not one the validator knows", op))
	}
	for _, col := range referenceColumns {
		if ref := ch.GetColumns()[col].GetReference(); ref != nil {
			errs = append(errs, checkReference("columns."+col, ref))
		}
	}
	for _, ref := range ch.GetRelated() {
		errs = append(errs, checkReference("related", ref))
	}
	if err := joinErrs(errs...); err != nil {
		return err
	}
	return checkSubject(subject, bus.CRMSubject(ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId()))
}

func checkReference(field string, ref *eventsv1.EntityReference) error {
	if !tableRE.MatchString(ref.GetTable()) {
		return fmt.Errorf("%s.table: not a Dataverse logical name", field)
	}
	return checkGUID(field+".id", ref.GetId())
}

func validateProfile(p *eventsv1.ProfileChange, subject string) error {
	errs := []error{
		checkEventID(p.GetEventId()),
		checkOutsideID("member_id", p.GetMemberId()),
		checkTime("observed_at", p.GetObservedAt(), true),
		checkTime("received_at", p.GetReceivedAt(), false),
	}
	for _, h := range p.GetEmailSha256() {
		if !emailHashRE.MatchString(h) {
			errs = append(errs, errors.New("email_sha256: want lower-case hex SHA-256"))
			break
		}
	}
	for _, pos := range p.GetPositions() {
		if id := pos.GetCompanyId(); id != "" {
			errs = append(errs, checkOutsideID("positions.company_id", id))
		}
	}
	if err := joinErrs(errs...); err != nil {
		return err
	}
	return checkSubject(subject, bus.ProfileMemberSubject(p.GetMemberId()))
}

func validateErasure(e *eventsv1.MemberErased, subject string) error {
	if err := joinErrs(checkEventID(e.GetEventId()), checkOutsideID("member_id", e.GetMemberId()),
		checkTime("observed_at", e.GetObservedAt(), true), checkTime("received_at", e.GetReceivedAt(), false)); err != nil {
		return err
	}
	return checkSubject(subject, bus.ProfileErasureSubject(e.GetMemberId()))
}

func validateCompany(c *eventsv1.CompanyChange, subject string) error {
	errs := []error{
		checkEventID(c.GetEventId()),
		checkOutsideID("company_id", c.GetCompanyId()),
		checkTime("observed_at", c.GetObservedAt(), true),
		checkTime("received_at", c.GetReceivedAt(), false),
	}
	for field, id := range map[string]string{"parent_company_id": c.GetParentCompanyId(), "successor_company_id": c.GetSuccessorCompanyId()} {
		if id != "" {
			errs = append(errs, checkOutsideID(field, id))
		}
	}
	for _, d := range c.GetDomains() {
		if d == "" || len(d) > 253 {
			errs = append(errs, errors.New("domains: want a domain name"))
			break
		}
	}
	if err := joinErrs(errs...); err != nil {
		return err
	}
	return checkSubject(subject, bus.ProfileCompanySubject(c.GetCompanyId()))
}

func validateSyncUser(c *eventsv1.SyncUserChange, subject string) error {
	if err := joinErrs(checkEventID(c.GetEventId()), checkGUID("organization_id", c.GetOrganizationId()),
		checkGUID("user_id", c.GetUserId()), checkTime("changed_at", c.GetChangedAt(), true)); err != nil {
		return err
	}
	return checkSubject(subject, bus.AdminSyncUserSubject(c.GetOrganizationId(), c.GetUserId()))
}

func validateSettings(c *eventsv1.OrgSettingsChange, subject string) error {
	errs := []error{checkEventID(c.GetEventId()), checkGUID("organization_id", c.GetOrganizationId()),
		checkTime("changed_at", c.GetChangedAt(), true)}
	if t := c.GetConfidenceThreshold(); math.IsNaN(t) || t < 0 || t > 1 {
		errs = append(errs, errors.New("confidence_threshold: want 0-1"))
	}
	if err := joinErrs(errs...); err != nil {
		return err
	}
	return checkSubject(subject, bus.AdminSettingsSubject(c.GetOrganizationId()))
}

func validateWork(r *eventsv1.EvaluateRequest, subject string) error {
	errs := []error{checkGUID("organization_id", r.GetOrganizationId()), checkOutsideID("kind", r.GetKind())}
	if n := len(r.GetContactIds()); n == 0 || n > maxWorkChunk {
		errs = append(errs, fmt.Errorf("contact_ids: %d, want 1-%d", n, maxWorkChunk))
	}
	for _, id := range r.GetContactIds() {
		if err := checkGUID("contact_ids", id); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if err := joinErrs(errs...); err != nil {
		return err
	}
	return checkSubject(subject, bus.WorkSubject(r.GetOrganizationId()))
}

// invalid marks a message that failed validation: set aside, never retried.
func invalid(what string, err error) error {
	return bus.Permanent(fmt.Errorf("invalid %s: %w", what, err))
}

// arrival is when msg reached JetStream, by the server's clock, which no
// sender sets; received is the sender's claim, used when the message has
// no such metadata.
func arrival(msg jetstream.Msg, received *timestamppb.Timestamp) time.Time {
	if meta, err := msg.Metadata(); err == nil && !meta.Timestamp.IsZero() {
		return meta.Timestamp
	}
	if received != nil {
		return received.AsTime()
	}
	return time.Time{}
}

// notAfterArrival returns received, or the arrival time when received
// claims a later time or is missing (zero arrival: received as is).
func notAfterArrival(received *timestamppb.Timestamp, arrived time.Time) *timestamppb.Timestamp {
	if !arrived.IsZero() && (received == nil || received.AsTime().After(arrived)) {
		return timestamppb.New(arrived)
	}
	return received
}

// clampTime bounds *ts to arrival + state.MaxClockSkew: a profile, company
// page or admin change dated in the far future would otherwise win over
// every later one.
func clampTime(ts **timestamppb.Timestamp, arrived time.Time) {
	if arrived.IsZero() || *ts == nil {
		return
	}
	if ceiling := arrived.Add(state.MaxClockSkew); (*ts).AsTime().After(ceiling) {
		*ts = timestamppb.New(ceiling)
	}
}
