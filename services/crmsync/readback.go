package crmsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

var guidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)

func validateRequest(r *eventsv1.SyncRequest, subject string) error {
	var errs []error
	if !guidRE.MatchString(r.GetOrganizationId()) {
		errs = append(errs, errors.New("organization_id: want a lower-case GUID"))
	} else if subject != bus.SyncRequestSubject(r.GetOrganizationId()) {
		errs = append(errs, fmt.Errorf("subject %s: not the organization's", subject))
	}
	if !requestIDRE.MatchString(r.GetRequestId()) {
		errs = append(errs, errors.New("request_id: want 1-128 letters, digits, '.', '_' or '-'"))
	}
	if !slices.Contains([]string{syncjobs.KindBackfill, syncjobs.KindSweep, syncjobs.KindEnable}, r.GetKind()) {
		errs = append(errs, fmt.Errorf("kind %q: want backfill, sweep or enable", r.GetKind()))
	}
	return errors.Join(errs...)
}

// HandleCRM reads back the row of a change that came without columns (its
// webhook was too large) and publishes it as a change of its own; and
// records a person's flag over our decision, which a webhook just brought.
func (s *Service) HandleCRM(ctx context.Context, msg jetstream.Msg) error {
	var ch eventsv1.CrmChange
	if err := proto.Unmarshal(msg.Data(), &ch); err != nil {
		return nil // the validator sets it aside; nothing to read back
	}
	org, table, id := ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId()
	if ch.GetMessageName() == MessageSync || !crmschema.Tracked(table) || !guidRE.MatchString(org) || !guidRE.MatchString(id) ||
		msg.Subject() != bus.CRMSubject(org, table, id) {
		return nil
	}
	if ch.GetReadBackRequired() {
		return s.readBack(ctx, &ch)
	}
	if table == "contact" && slices.Contains(ch.GetChangedColumns(), s.cfg.Columns.Flag) {
		return s.webhookOverride(ctx, &ch)
	}
	return nil
}

func (s *Service) readBack(ctx context.Context, ch *eventsv1.CrmChange) error {
	org, table, id := ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId()
	eventID := "readback." + ch.GetOperationId() + "." + id
	now := s.now()
	if ch.GetOperation() == eventsv1.Operation_OPERATION_DELETE {
		del := deleteOf(org, table, id, eventID, now)
		del.EventId, del.MessageName = eventID, ch.GetMessageName()
		s.m.readBacks.WithLabelValues("deleted").Inc()
		_, err := s.publishChanges(ctx, []*eventsv1.CrmChange{del})
		return err
	}
	t := s.d.Targets(org)
	if t == nil {
		s.m.readBacks.WithLabelValues("no_target").Inc()
		return nil
	}
	release, err := t.Acquire(ctx, 1)
	if err != nil {
		return bus.Hold(fmt.Errorf("waiting for the request budget: %w", err), time.Second)
	}
	row, err := t.Reader.GetRow(ctx, entitySets[table], id, selectOf(table, s.cfg.Columns)...)
	release()
	var se *dataverse.StatusError
	switch {
	case errors.As(err, &se) && se.Status == http.StatusNotFound:
		del := deleteOf(org, table, id, eventID, now)
		del.EventId, del.MessageName = eventID, ch.GetMessageName()
		s.m.readBacks.WithLabelValues("deleted").Inc()
		_, err := s.publishChanges(ctx, []*eventsv1.CrmChange{del})
		return err
	case errors.As(err, &se) && se.Status == http.StatusTooManyRequests:
		return bus.Hold(err, max(se.RetryAfter, time.Second))
	case errors.As(err, &se) && !se.Transient():
		return bus.Permanent(fmt.Errorf("read back %s %s: %w", table, id, err))
	case err != nil:
		return fmt.Errorf("read back %s %s: %w", table, id, err)
	}
	out, _, err := changeOf(org, table, row, s.cfg.Columns, now, ch.GetMessageName(), eventID)
	if err != nil {
		return bus.Permanent(err)
	}
	out.OperationId, out.CorrelationId, out.Tag = ch.GetOperationId(), ch.GetCorrelationId(), ch.GetTag()
	out.UserId, out.InitiatingUserId = ch.GetUserId(), ch.GetInitiatingUserId()
	s.m.readBacks.WithLabelValues("read").Inc()
	_, err = s.publishChanges(ctx, []*eventsv1.CrmChange{out})
	return err
}

// webhookOverride records a person's 0 or 1 over our last decision that a
// webhook brought (our own writes never get here: ingest drops them).
func (s *Service) webhookOverride(ctx context.Context, ch *eventsv1.CrmChange) error {
	org, contact := ch.GetOrganizationId(), ch.GetRowId()
	v := ch.GetColumns()[s.cfg.Columns.Flag]
	value := int(v.GetChoice())
	if value == flagIgnore {
		return nil
	}
	raw, err := s.decisionStream.GetLastMsgForSubject(ctx, bus.DecisionSubject(org, contact))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	var d eventsv1.Decision
	if proto.Unmarshal(raw.Data, &d) != nil || int(d.GetValue()) == value || d.GetValue() == eventsv1.Flag_FLAG_IGNORE {
		return nil
	}
	settings, _, err := s.orgs.Settings(ctx, org)
	if err != nil {
		return err
	}
	action := "restore"
	if settings.KeepPersonOverride {
		action = "keep"
	}
	at := time.Time{}
	if ch.GetRowModifiedAt() != nil {
		at = ch.GetRowModifiedAt().AsTime()
	} else if ch.GetOccurredAt() != nil {
		at = ch.GetOccurredAt().AsTime()
	}
	who := ch.GetInitiatingUserId()
	if who == "" {
		who = ch.GetUserId()
	}
	ref := decisionRef{seq: raw.Sequence, value: int(d.GetValue()), id: d.GetDecisionId(), decidedAt: d.GetDecidedAt().AsTime()}
	return s.auditOverride(ctx, org, contact, value, ref, who, at, action, "webhook")
}
