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
	"google.golang.org/protobuf/types/known/timestamppb"
)

// FieldError names the part of a context that is missing or malformed.
type FieldError struct {
	Field  string // JSON pointer, e.g. "/OrganizationId"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

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

func convertEntity(o *rawObject) (*entity, error) {
	e := &entity{Columns: map[string]*eventsv1.Value{}, ID: strings.ToLower(o.ID)}
	if o.LogicalName != nil {
		e.Table = *o.LogicalName
	}
	if o.Attributes == nil {
		return e, nil
	}
	for i, a := range *o.Attributes {
		if a.Key == "" {
			return nil, fmt.Errorf("Attributes/%d: no key", i)
		}
		if a.Value.err != nil {
			return nil, fmt.Errorf("Attributes/%d (%s): %w", i, a.Key, a.Value.err)
		}
		if a.Value.v == nil {
			return nil, fmt.Errorf("Attributes/%d (%s): no value", i, a.Key)
		}
		e.Columns[a.Key] = a.Value.v
	}
	return e, nil
}

// Options steer normalization.
type Options struct {
	// SizeExceeded is set when the request carried the
	// x-ms-dynamics-msg-size-exceeded header: the body has no parameters or
	// images, and the row must be read back.
	SizeExceeded bool
	// ReceivedAt is when the webhook arrived.
	ReceivedAt time.Time
}

// Parse parses a RemoteExecutionContext body into a normalized change. A
// *FieldError (wrapped) names what is missing or malformed.
func Parse(body []byte, opts Options) (*eventsv1.CrmChange, error) {
	var rc rawContext
	if err := json.Unmarshal(body, &rc); err != nil {
		return nil, &FieldError{Field: "/", Reason: "not a RemoteExecutionContext JSON object: " + err.Error()}
	}
	if err := requireFields(&rc); err != nil {
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
	if rc.RequestID != nil {
		ch.RequestId = strings.ToLower(*rc.RequestID)
	}
	if t, ok := parseDate(strings.ReplaceAll(rc.OperationCreatedOn, `\/`, "/")); ok {
		ch.OccurredAt = timestamppb.New(t)
	}
	if !opts.ReceivedAt.IsZero() {
		ch.ReceivedAt = timestamppb.New(opts.ReceivedAt)
	}
	ch.Operation = operationOf(rc.MessageName)
	ch.Tag = sharedTag(&rc)

	if opts.SizeExceeded {
		ch.ReadBackRequired = true
	} else if err := applyInputs(ch, &rc); err != nil {
		return nil, err
	}
	if ch.RowId == "" || !IsGUID(ch.RowId) {
		return nil, &FieldError{Field: "/PrimaryEntityId", Reason: "no row id (a GUID) in PrimaryEntityId or the Target"}
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
			errs = append(errs, &FieldError{Field: "/" + field, Reason: "required"})
		}
	}
	need("MessageName", rc.MessageName)
	need("PrimaryEntityName", rc.PrimaryEntityName)
	need("OperationId", rc.OperationID)
	switch {
	case rc.OrganizationID == "":
		errs = append(errs, &FieldError{Field: "/OrganizationId", Reason: "required"})
	case !IsGUID(rc.OrganizationID):
		errs = append(errs, &FieldError{Field: "/OrganizationId", Reason: "not a GUID"})
	}
	if rc.OperationID != "" && !IsGUID(rc.OperationID) {
		errs = append(errs, &FieldError{Field: "/OperationId", Reason: "not a GUID"})
	}
	return errors.Join(errs...)
}

func operationOf(message string) eventsv1.Operation {
	switch message {
	case "Create":
		return eventsv1.Operation_OPERATION_CREATE
	case "Delete":
		return eventsv1.Operation_OPERATION_DELETE
	case "Associate":
		return eventsv1.Operation_OPERATION_ASSOCIATE
	case "Disassociate":
		return eventsv1.Operation_OPERATION_DISASSOCIATE
	default:
		// Update, SetState, SetStateDynamicEntity, Assign, Merge... all
		// leave the row in place with some columns changed.
		return eventsv1.Operation_OPERATION_UPDATE
	}
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
func applyInputs(ch *eventsv1.CrmChange, rc *rawContext) error {
	images := func(list []keyValue, field string) error {
		for i, kv := range list {
			var img *rawObject
			if err := json.Unmarshal(kv.Value, &img); err != nil {
				return &FieldError{Field: fmt.Sprintf("/%s/%d/value", field, i), Reason: "not an entity: " + err.Error()}
			}
			if img == nil {
				continue // a null image
			}
			e, err := convertEntity(img)
			if err != nil {
				return &FieldError{Field: fmt.Sprintf("/%s/%d/value", field, i), Reason: err.Error()}
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
				return &FieldError{Field: field, Reason: "Target is not an Entity or EntityReference"}
			}
			if o.typeName() == "EntityReference" || (o.typeName() == "" && o.Attributes == nil) {
				ref, err := convertReference(&o)
				if err != nil {
					return &FieldError{Field: field, Reason: err.Error()}
				}
				if ref.Id != "" {
					ch.RowId = ref.Id
				}
				if ch.Table == "" || ch.Table == "none" {
					ch.Table = ref.Table // Associate steps run on "none"
				}
				continue
			}
			e, err := convertEntity(&o)
			if err != nil {
				return &FieldError{Field: field, Reason: err.Error()}
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
				return &FieldError{Field: field, Reason: "not an array of EntityReference"}
			}
			for j, item := range items {
				var o rawObject
				if err := json.Unmarshal(item, &o); err != nil {
					return &FieldError{Field: fmt.Sprintf("%s/%d", field, j), Reason: "not an EntityReference"}
				}
				ref, err := convertReference(&o)
				if err != nil {
					return &FieldError{Field: fmt.Sprintf("%s/%d", field, j), Reason: err.Error()}
				}
				ch.Related = append(ch.Related, ref)
			}
		case "State", "Status", "Assignee":
			// SetState and Assign carry the new values as parameters.
			val, err := convertRaw(kv.Value)
			if err != nil {
				return &FieldError{Field: field, Reason: err.Error()}
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
