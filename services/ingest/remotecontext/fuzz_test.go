package remotecontext

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatal("no fixtures to seed from")
	}
	for _, file := range files {
		f.Add(readFixture(f, filepath.Base(file)), false)
	}
	// A few hand-made shapes the fixtures do not have.
	f.Add(buildContext(f, map[string]any{"MessageName": "Delete", "InputParameters": []any{map[string]any{"key": "Target", "value": map[string]any{
		"__type": "EntityReference:", "Id": rowID, "LogicalName": "contact"}}}}), false)
	f.Add(buildContext(f, map[string]any{"InputParameters": nil}), true)
	f.Add([]byte("{not json"), false)

	received := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, sizeExceeded bool) {
		ch, err := Parse(body, Options{SizeExceeded: sizeExceeded, ReceivedAt: received})
		if err != nil {
			if ch != nil {
				t.Fatalf("a change came with the error %v", err)
			}
			var fe *problem.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) names no field", err, err)
			}
			return
		}
		if ch.Operation == eventsv1.Operation_OPERATION_UNSPECIFIED {
			// An unknown message: acknowledged and dropped, never an event.
			if ch.EventId != "" || ch.MessageName != "" {
				t.Fatalf("unknown message kept EventId %q, MessageName %q", ch.EventId, ch.MessageName)
			}
			return
		}
		for i := 0; i < len(ch.EventId); i++ {
			if c := ch.EventId[i]; c <= ' ' || c > '~' {
				t.Fatalf("EventId %q holds byte %#x: only printable ASCII may reach an id", ch.EventId, c)
			}
		}
		if !IsLogicalName(ch.Table) {
			t.Fatalf("Table %q is not a logical name", ch.Table)
		}
		latest := received.Add(MaxSkew)
		for name, v := range ch.Columns {
			checkValue(t, name, v, latest)
		}
		for _, ref := range ch.Related {
			if !dataverse.IsGUID(ref.Id) || !IsLogicalName(ref.Table) {
				t.Fatalf("related reference %v: not a table and GUID", ref)
			}
		}
		if !dataverse.IsGUID(ch.RowId) || ch.RowId != strings.ToLower(ch.RowId) {
			t.Fatalf("RowId %q is not a lower-case GUID", ch.RowId)
		}
		if !dataverse.IsGUID(ch.OrganizationId) || !dataverse.IsGUID(ch.OperationId) {
			t.Fatalf("OrganizationId %q / OperationId %q not GUIDs", ch.OrganizationId, ch.OperationId)
		}
		if ch.EventId == "" || ch.EventId != EventID(ch) {
			t.Fatalf("EventId %q, want %q", ch.EventId, EventID(ch))
		}
		if ch.ReadBackRequired != sizeExceeded {
			t.Fatalf("ReadBackRequired = %v with SizeExceeded %v", ch.ReadBackRequired, sizeExceeded)
		}
		// The service publishes exactly this; it must encode.
		if _, err := proto.Marshal(ch); err != nil {
			t.Fatalf("proto.Marshal: %v", err)
		}
	})
}

// checkValue asserts what Parse promises of a column value: lookups name a
// GUID, dates fit a Timestamp, and the columns that date a row are not
// after the change arrived.
func checkValue(t *testing.T, name string, v *eventsv1.Value, latest time.Time) {
	t.Helper()
	if ref := v.GetReference(); ref != nil && (!dataverse.IsGUID(ref.Id) || !IsLogicalName(ref.Table)) {
		t.Fatalf("column %s: reference %v is not a table and GUID", name, ref)
	}
	if dt := v.GetDateTime(); dt != nil {
		if err := dt.CheckValid(); err != nil {
			t.Fatalf("column %s: %v", name, err)
		}
		if versionColumns[name] && !latest.IsZero() && dt.AsTime().After(latest) {
			t.Fatalf("column %s: %v is after the change arrived", name, dt.AsTime())
		}
	}
	for _, e := range v.GetCollection().GetEntities() {
		for n, cv := range e.GetColumns() {
			checkValue(t, n, cv, time.Time{}) // nested rows are not versions
		}
	}
}
