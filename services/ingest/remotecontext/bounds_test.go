package remotecontext

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// received is when the changes of these tests arrive: after the
// OperationCreatedOn of buildContext.
var boundsReceived = time.UnixMilli(1700000000000).UTC().Add(time.Minute)

func targetWith(kv ...any) map[string]any {
	return map[string]any{"InputParameters": []any{map[string]any{"key": "Target", "value": map[string]any{
		"__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts", "LogicalName": "contact", "Id": rowID,
		"Attributes": attrs(kv...),
	}}}}
}

func lookup(table, id string) map[string]any {
	return map[string]any{"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": id, "LogicalName": table}
}

func millis(t time.Time) string { return "/Date(" + strconv.FormatInt(t.UnixMilli(), 10) + ")/" }

// TestParseRefusesWhatWouldCorruptTheState: each of these was accepted and
// published before, and each would have frozen a row, reached a subject or
// a URL, or broken the contract's Timestamp.
func TestParseRefusesWhatWouldCorruptTheState(t *testing.T) {
	future := boundsReceived.Add(MaxSkew + time.Second)
	for _, tc := range []struct {
		name   string
		extra  map[string]any
		field  string
		reason string
	}{
		{"modifiedon 9999-12-31", targetWith("firstname", "Ada", "modifiedon", "/Date(253402214400000)/"),
			"/InputParameters/0/value/Attributes/1", "modifiedon: 9999-12-31"},
		{"modifiedon just beyond the skew", targetWith("modifiedon", millis(future)),
			"/InputParameters/0/value/Attributes/0", "modifiedon"},
		{"createdon in the future", targetWith("createdon", millis(future)),
			"/InputParameters/0/value/Attributes/0", "createdon"},
		{"a date beyond a Timestamp", targetWith("birthdate", "/Date(99999999999999999)/"),
			"/InputParameters/0/value/Attributes/0", "birthdate: date /Date(99999999999999999)/ is outside years 1-9999"},
		{"a date beyond int64", targetWith("birthdate", "/Date(99999999999999999999)/"),
			"/InputParameters/0/value/Attributes/0", "birthdate"},
		{"future modifiedon in a post-image", map[string]any{"PostEntityImages": []any{map[string]any{"key": "post", "value": map[string]any{
			"LogicalName": "contact", "Id": rowID, "Attributes": attrs("modifiedon", millis(future))}}}},
			"/PostEntityImages/0/value/Attributes/0", "modifiedon"},
		{"OperationCreatedOn in the future", map[string]any{"OperationCreatedOn": millis(future)}, "/OperationCreatedOn", "after the change arrived"},
		{"OperationCreatedOn beyond a Timestamp", map[string]any{"OperationCreatedOn": "/Date(99999999999999999)/"}, "/OperationCreatedOn", "outside years"},
		{"parentcustomerid not a GUID", targetWith("parentcustomerid", lookup("account", "contoso")),
			"/InputParameters/0/value/Attributes/0", `parentcustomerid: EntityReference Id "contoso" is not a GUID`},
		{"ownerid with CRLF", targetWith("ownerid", lookup("systemuser", "a\r\nb")),
			"/InputParameters/0/value/Attributes/0", "ownerid"},
		{"lookup to a table that is no logical name", targetWith("parentcustomerid", lookup("account.x", rowID)),
			"/InputParameters/0/value/Attributes/0", "parentcustomerid"},
		{"Delete Target id not a GUID", map[string]any{"MessageName": "Delete", "InputParameters": []any{map[string]any{"key": "Target", "value": lookup("contact", "row-1")}}},
			"/InputParameters/0/value", "not a GUID"},
		{"related entity id not a GUID", map[string]any{"MessageName": "Associate", "PrimaryEntityName": "none", "InputParameters": []any{
			map[string]any{"key": "Target", "value": lookup("opportunity", rowID)},
			map[string]any{"key": "RelatedEntities", "value": []any{lookup("contact", "../x")}},
		}}, "/InputParameters/1/value/0", "not a GUID"},
		{"table that is no logical name", map[string]any{"PrimaryEntityName": "contact.\u00e9"}, "/PrimaryEntityName", "logical name"},
		{"UserId not a GUID", map[string]any{"UserId": "someone"}, "/UserId", "not a GUID"},
		{"InitiatingUserId not a GUID", map[string]any{"InitiatingUserId": "x"}, "/InitiatingUserId", "not a GUID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := Parse(buildContext(t, tc.extra), Options{ReceivedAt: boundsReceived})
			if err == nil {
				t.Fatalf("accepted: %s", show(ch))
			}
			var fe *problem.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v names no field", err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Reason, tc.reason) {
				t.Errorf("field %q reason %q; want field %q with %q", fe.Field, fe.Reason, tc.field, tc.reason)
			}
		})
	}
}

func TestParseTakesDatesWithinTheBounds(t *testing.T) {
	within := boundsReceived.Add(MaxSkew - time.Second)
	ch, err := Parse(buildContext(t, targetWith(
		"modifiedon", millis(within),
		"estimatedclosedate", "/Date(253402214400000)/", // a future date in a column that dates nothing
		"parentcustomerid", lookup("account", strings.ToUpper(rowID)),
	)), Options{ReceivedAt: boundsReceived})
	if err != nil {
		t.Fatal(err)
	}
	if got := ch.GetRowModifiedAt().AsTime(); !got.Equal(within.Truncate(time.Millisecond)) {
		t.Errorf("RowModifiedAt %v, want %v", got, within)
	}
	if got := ch.Columns["parentcustomerid"].GetReference().GetId(); got != rowID {
		t.Errorf("lookup id %q, want lower-case %q", got, rowID)
	}
	// Without a time of receipt (a replay, a test) nothing is in the future.
	if _, err := Parse(buildContext(t, targetWith("modifiedon", "/Date(253402214400000)/")), Options{}); err != nil {
		t.Errorf("without ReceivedAt: %v", err)
	}
}
