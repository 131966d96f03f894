// Package remotecontext parses the RemoteExecutionContext that Dataverse
// posts to a webhook and normalizes it into a CrmChange. It is pure: no I/O,
// no configuration beyond its arguments.
package remotecontext

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/problem"
	"google.golang.org/protobuf/types/known/timestamppb"
)

type keyValue struct {
	Key   string          `json:"key"`
	Value json.RawMessage `json:"value"`
}

type rawContext struct {
	MessageName        string     `json:"MessageName"`
	PrimaryEntityName  string     `json:"PrimaryEntityName"`
	PrimaryEntityID    string     `json:"PrimaryEntityId"`
	OrganizationID     string     `json:"OrganizationId"`
	OrganizationName   string     `json:"OrganizationName"`
	OperationID        string     `json:"OperationId"`
	CorrelationID      string     `json:"CorrelationId"`
	RequestID          *string    `json:"RequestId"`
	InitiatingUserID   string     `json:"InitiatingUserId"`
	UserID             string     `json:"UserId"`
	OperationCreatedOn string     `json:"OperationCreatedOn"`
	Depth              int        `json:"Depth"`
	Stage              int        `json:"Stage"`
	Mode               int        `json:"Mode"`
	InputParameters    []keyValue `json:"InputParameters"`
	PreEntityImages    []keyValue `json:"PreEntityImages"`
	PostEntityImages   []keyValue `json:"PostEntityImages"`
	SharedVariables    []keyValue `json:"SharedVariables"`
	ParentContext      *struct {
		SharedVariables []keyValue `json:"SharedVariables"`
	} `json:"ParentContext"`
}

// entity is a parsed Entity (a Target or an image).
type entity struct {
	Table   string
	ID      string
	Columns map[string]*eventsv1.Value
}

func (e *entity) proto() *eventsv1.Entity {
	return &eventsv1.Entity{Table: e.Table, Id: e.ID, Columns: e.Columns}
}

// attrError is a problem with one attribute of an entity.
type attrError struct {
	index int
	key   string
	err   error
}

func (e *attrError) Error() string {
	return fmt.Sprintf("Attributes/%d (%s): %v", e.index, e.key, e.err)
}

// versionColumns date a row's versions; a later one wins in the state, so
// none may claim a time after the change arrived.
var versionColumns = map[string]bool{"modifiedon": true, "createdon": true, "overriddencreatedon": true}

// convertEntity converts a parsed entity. When latest is set, the columns
// that date the row may not be after it.
func convertEntity(o *rawObject, latest time.Time) (*entity, error) {
	e := &entity{Columns: map[string]*eventsv1.Value{}, ID: strings.ToLower(o.ID)}
	if o.LogicalName != nil {
		e.Table = *o.LogicalName
	}
	if o.Attributes == nil {
		return e, nil
	}
	for i, a := range *o.Attributes {
		if a.Key == "" {
			return nil, &attrError{i, "", errors.New("no key")}
		}
		if a.Value.err != nil {
			return nil, &attrError{i, a.Key, a.Value.err}
		}
		if a.Value.v == nil {
			return nil, &attrError{i, a.Key, errors.New("no value")}
		}
		if dt := a.Value.v.GetDateTime(); dt != nil && versionColumns[a.Key] && !latest.IsZero() && dt.AsTime().After(latest) {
			return nil, &attrError{i, a.Key, fmt.Errorf("%s is after the change arrived", dt.AsTime().Format(time.RFC3339))}
		}
		e.Columns[a.Key] = a.Value.v
	}
	return e, nil
}

// entityError names the attribute of the entity at field that err is
// about, when it is about one.
func entityError(field string, err error) *problem.FieldError {
	var ae *attrError
	if errors.As(err, &ae) {
		return &problem.FieldError{Field: fmt.Sprintf("%s/Attributes/%d", field, ae.index), Reason: ae.key + ": " + ae.err.Error()}
	}
	return &problem.FieldError{Field: field, Reason: err.Error()}
}

// Options steer normalization.
type Options struct {
	// SizeExceeded is set when the request carried the
	// x-ms-dynamics-msg-size-exceeded header: the body has no parameters or
	// images, and the row must be read back.
	SizeExceeded bool
	// ReceivedAt is when the webhook arrived. A change may not be dated
	// more than MaxSkew after it (unset: no bound).
	ReceivedAt time.Time
}

// MaxSkew is how far ahead of our clock Dataverse's may be.
const MaxSkew = 5 * time.Minute

// knownMessages are the messages whose steps this service handles; each
// creates, changes, deletes or relates rows.
var knownMessages = map[string]eventsv1.Operation{
	"Create": eventsv1.Operation_OPERATION_CREATE, "Delete": eventsv1.Operation_OPERATION_DELETE,
	"Associate": eventsv1.Operation_OPERATION_ASSOCIATE, "Disassociate": eventsv1.Operation_OPERATION_DISASSOCIATE,
	// These leave the row in place with some columns changed.
	"Update": eventsv1.Operation_OPERATION_UPDATE, "SetState": eventsv1.Operation_OPERATION_UPDATE,
	"SetStateDynamicEntity": eventsv1.Operation_OPERATION_UPDATE, "Assign": eventsv1.Operation_OPERATION_UPDATE,
	"Merge": eventsv1.Operation_OPERATION_UPDATE,
}

// KnownMessage reports whether Parse turns message into a change.
func KnownMessage(message string) bool {
	_, ok := knownMessages[message]
	return ok
}

// Parse parses a RemoteExecutionContext body into a normalized change. A
// *problem.FieldError (wrapped) names what is missing or malformed.
func Parse(body []byte, opts Options) (*eventsv1.CrmChange, error) {
	c, err := ParseHeader(body, opts)
	if err != nil {
		return nil, err
	}
	return c.Change()
}

// Context is a RemoteExecutionContext whose header is parsed and checked
// (the message, the row, the organization, the users, the time and the
// shared variables) and whose Target and images are read only by Change:
// a change that is dropped on its header alone, such as the echo of our
// own write, costs no more than that.
type Context struct {
	rc     rawContext
	ch     *eventsv1.CrmChange
	opts   Options
	latest time.Time
	// What Change returned, once done.
	done    bool
	changed *eventsv1.CrmChange
	err     error
}

// ParseHeader parses body and checks its header; see Context.
func ParseHeader(body []byte, opts Options) (*Context, error) {
	c := &Context{opts: opts}
	rc := &c.rc
	if err := json.Unmarshal(body, rc); err != nil {
		return nil, &problem.FieldError{Field: "/", Reason: "not a RemoteExecutionContext JSON object: " + err.Error()}
	}
	if err := requireFields(rc); err != nil {
		return nil, err
	}
	ch := &eventsv1.CrmChange{
		OrganizationId:   strings.ToLower(rc.OrganizationID),
		Table:            rc.PrimaryEntityName,
		RowId:            strings.ToLower(rc.PrimaryEntityID),
		OperationId:      strings.ToLower(rc.OperationID),
		CorrelationId:    strings.ToLower(rc.CorrelationID),
		MessageName:      rc.MessageName,
		UserId:           strings.ToLower(rc.UserID),
		InitiatingUserId: strings.ToLower(rc.InitiatingUserID),
		Columns:          map[string]*eventsv1.Value{},
	}
	c.ch = ch
	if rc.RequestID != nil {
		ch.RequestId = strings.ToLower(*rc.RequestID)
	}
	op, known := knownMessages[rc.MessageName]
	if !known {
		// Acknowledged and dropped by the caller: no event id, nothing
		// from the body that could reach one.
		ch.MessageName = ""
		return c, nil
	}
	if !opts.ReceivedAt.IsZero() {
		ch.ReceivedAt = timestamppb.New(opts.ReceivedAt)
		c.latest = opts.ReceivedAt.Add(MaxSkew)
	}
	t, ok, err := parseDate(strings.ReplaceAll(rc.OperationCreatedOn, `\/`, "/"))
	switch {
	case err != nil:
		return nil, &problem.FieldError{Field: "/OperationCreatedOn", Reason: err.Error()}
	case ok && !c.latest.IsZero() && t.After(c.latest):
		return nil, &problem.FieldError{Field: "/OperationCreatedOn", Reason: t.Format(time.RFC3339) + " is after the change arrived"}
	case ok:
		ch.OccurredAt = timestamppb.New(t)
	}
	ch.Operation = op
	ch.Tag = sharedTag(rc)
	return c, nil
}

// Header is the change as the header says it, before Change: no columns
// and no related rows; the row id is PrimaryEntityId's (Change may take it
// from the Target), and there is no event id. A message Parse does not
// turn into a change has no operation. Change completes this same change.
func (c *Context) Header() *eventsv1.CrmChange { return c.ch }

// Change reads the Target and the images into the change and returns it,
// complete, as Parse does; a second call returns what the first did.
func (c *Context) Change() (*eventsv1.CrmChange, error) {
	if c.done {
		return c.changed, c.err
	}
	c.done = true
	c.changed, c.err = c.complete()
	return c.changed, c.err
}

func (c *Context) complete() (*eventsv1.CrmChange, error) {
	ch := c.ch
	if ch.Operation == eventsv1.Operation_OPERATION_UNSPECIFIED {
		return ch, nil
	}
	if c.opts.SizeExceeded {
		ch.ReadBackRequired = true
	} else if err := applyInputs(ch, &c.rc, c.latest); err != nil {
		return nil, err
	}
	if ch.RowId == "" || !dataverse.IsGUID(ch.RowId) {
		return nil, &problem.FieldError{Field: "/PrimaryEntityId", Reason: "no row id (a GUID) in PrimaryEntityId or the Target"}
	}
	if !IsLogicalName(ch.Table) {
		return nil, &problem.FieldError{Field: "/PrimaryEntityName", Reason: fmt.Sprintf("%q is not a table's logical name", truncate(ch.Table))}
	}
	if v := ch.Columns["modifiedon"]; v != nil && v.GetDateTime() != nil {
		ch.RowModifiedAt = v.GetDateTime()
	}
	ch.EventId = EventID(ch)
	return ch, nil
}

// EventID is the deduplication id of a change: the same Dataverse operation
// on the same row, delivered twice or by two steps, has the same id.
func EventID(ch *eventsv1.CrmChange) string {
	return fmt.Sprintf("dv.%s.%s.%s.%s.%s", ch.OrganizationId, ch.OperationId, strings.ToLower(ch.MessageName), ch.Table, ch.RowId)
}

func requireFields(rc *rawContext) error {
	var errs []error
	need := func(field, value string) {
		if strings.TrimSpace(value) == "" {
			errs = append(errs, &problem.FieldError{Field: "/" + field, Reason: "required"})
		}
	}
	need("MessageName", rc.MessageName)
	need("PrimaryEntityName", rc.PrimaryEntityName)
	need("OperationId", rc.OperationID)
	switch {
	case rc.OrganizationID == "":
		errs = append(errs, &problem.FieldError{Field: "/OrganizationId", Reason: "required"})
	case !dataverse.IsGUID(rc.OrganizationID):
		errs = append(errs, &problem.FieldError{Field: "/OrganizationId", Reason: "not a GUID"})
	}
	if rc.OperationID != "" && !dataverse.IsGUID(rc.OperationID) {
		errs = append(errs, &problem.FieldError{Field: "/OperationId", Reason: "not a GUID"})
	}
	for _, f := range []struct{ field, id string }{{"/UserId", rc.UserID}, {"/InitiatingUserId", rc.InitiatingUserID}, {"/CorrelationId", rc.CorrelationID}} {
		if f.id != "" && !dataverse.IsGUID(f.id) {
			errs = append(errs, &problem.FieldError{Field: f.field, Reason: "not a GUID"})
		}
	}
	if rc.RequestID != nil && *rc.RequestID != "" && !dataverse.IsGUID(*rc.RequestID) {
		errs = append(errs, &problem.FieldError{Field: "/RequestId", Reason: "not a GUID"})
	}
	return errors.Join(errs...)
}

func sharedTag(rc *rawContext) string {
	lists := [][]keyValue{rc.SharedVariables}
	if rc.ParentContext != nil {
		lists = append(lists, rc.ParentContext.SharedVariables)
	}
	for _, list := range lists {
		for _, kv := range list {
			if kv.Key != "tag" {
				continue
			}
			var s string
			if json.Unmarshal(kv.Value, &s) == nil {
				return s
			}
		}
	}
	return ""
}

// applyInputs fills the row id and columns from the Target and the images:
// pre-image, then post-image, then the Target, each overriding the last.
func applyInputs(ch *eventsv1.CrmChange, rc *rawContext, latest time.Time) error {
	images := func(list []keyValue, field string) error {
		for i, kv := range list {
			var img *rawObject
			if err := json.Unmarshal(kv.Value, &img); err != nil {
				return &problem.FieldError{Field: fmt.Sprintf("/%s/%d/value", field, i), Reason: "not an entity: " + err.Error()}
			}
			if img == nil {
				continue // a null image
			}
			e, err := convertEntity(img, latest)
			if err != nil {
				return entityError(fmt.Sprintf("/%s/%d/value", field, i), err)
			}
			mergeColumns(ch.Columns, e.Columns)
			if ch.RowId == "" {
				ch.RowId = e.ID
			}
		}
		return nil
	}
	if err := images(rc.PreEntityImages, "PreEntityImages"); err != nil {
		return err
	}
	if err := images(rc.PostEntityImages, "PostEntityImages"); err != nil {
		return err
	}
	var changed []string
	for i, kv := range rc.InputParameters {
		field := fmt.Sprintf("/InputParameters/%d/value", i)
		switch kv.Key {
		case "Target", "EntityMoniker":
			var o rawObject
			if err := json.Unmarshal(kv.Value, &o); err != nil || o.Type == "" && o.LogicalName == nil && o.Attributes == nil {
				return &problem.FieldError{Field: field, Reason: "Target is not an Entity or EntityReference"}
			}
			if o.typeName() == "EntityReference" || (o.typeName() == "" && o.Attributes == nil) {
				ref, err := convertReference(&o)
				if err != nil {
					return &problem.FieldError{Field: field, Reason: err.Error()}
				}
				if ref.Id != "" {
					ch.RowId = ref.Id
				}
				if ch.Table == "" || ch.Table == "none" {
					ch.Table = ref.Table // Associate steps run on "none"
				}
				continue
			}
			e, err := convertEntity(&o, latest)
			if err != nil {
				return entityError(field, err)
			}
			if e.ID != "" && e.ID != "00000000-0000-0000-0000-000000000000" {
				ch.RowId = e.ID
			}
			mergeColumns(ch.Columns, e.Columns)
			for k := range e.Columns {
				changed = append(changed, k)
			}
		case "Relationship":
			var o struct {
				SchemaName string `json:"SchemaName"`
			}
			if err := json.Unmarshal(kv.Value, &o); err == nil {
				ch.Relationship = o.SchemaName
			}
		case "RelatedEntities":
			var items []json.RawMessage
			if err := json.Unmarshal(kv.Value, &items); err != nil && string(bytes.TrimSpace(kv.Value)) != "null" {
				return &problem.FieldError{Field: field, Reason: "not an array of EntityReference"}
			}
			for j, item := range items {
				var o rawObject
				if err := json.Unmarshal(item, &o); err != nil {
					return &problem.FieldError{Field: fmt.Sprintf("%s/%d", field, j), Reason: "not an EntityReference"}
				}
				ref, err := convertReference(&o)
				if err != nil {
					return &problem.FieldError{Field: fmt.Sprintf("%s/%d", field, j), Reason: err.Error()}
				}
				ch.Related = append(ch.Related, ref)
			}
		case "State", "Status", "Assignee":
			// SetState and Assign carry the new values as parameters.
			val, err := convertRaw(kv.Value)
			if err != nil {
				return &problem.FieldError{Field: field, Reason: err.Error()}
			}
			col := map[string]string{"State": "statecode", "Status": "statuscode", "Assignee": "ownerid"}[kv.Key]
			ch.Columns[col] = val
			changed = append(changed, col)
		}
	}
	sort.Strings(changed)
	ch.ChangedColumns = changed
	return nil
}

func mergeColumns(dst, src map[string]*eventsv1.Value) {
	for k, v := range src {
		dst[k] = v
	}
}
