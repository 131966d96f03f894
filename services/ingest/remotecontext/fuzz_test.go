package remotecontext

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
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
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) names no field", err, err)
			}
			return
		}
		if !IsGUID(ch.RowId) || ch.RowId != strings.ToLower(ch.RowId) {
			t.Fatalf("RowId %q is not a lower-case GUID", ch.RowId)
		}
		if !IsGUID(ch.OrganizationId) || !IsGUID(ch.OperationId) {
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
