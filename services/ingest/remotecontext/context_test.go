package remotecontext

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/problem"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Value builders for expectations.

func vStr(s string) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: s}}
}
func vInt(n int64) *eventsv1.Value { return &eventsv1.Value{Kind: &eventsv1.Value_Integer{Integer: n}} }
func vDec(f float64) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Decimal{Decimal: f}}
}
func vBool(b bool) *eventsv1.Value { return &eventsv1.Value{Kind: &eventsv1.Value_Boolean{Boolean: b}} }
func vMoney(f float64) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Money{Money: f}}
}
func vChoice(n int32) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: n}}
}
func vChoices(n ...int32) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Choices{Choices: &eventsv1.Choices{Values: n}}}
}
func vGUID(s string) *eventsv1.Value { return &eventsv1.Value{Kind: &eventsv1.Value_Guid{Guid: s}} }
func vNull() *eventsv1.Value         { return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}} }
func vDate(ms int64) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_DateTime{DateTime: timestamppb.New(time.UnixMilli(ms))}}
}
func vRef(table, id, name string) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Reference{Reference: &eventsv1.EntityReference{Table: table, Id: id, Name: name}}}
}

func show(m proto.Message) string {
	if m == nil {
		return "<nil>"
	}
	return prototext.Format(m)
}

// wantColumn asserts that columns[key] is exactly want.
func wantColumn(t *testing.T, columns map[string]*eventsv1.Value, key string, want *eventsv1.Value) {
	t.Helper()
	got, ok := columns[key]
	if !ok {
		t.Errorf("column %q missing", key)
		return
	}
	if !proto.Equal(got, want) {
		t.Errorf("column %q = %s, want %s", key, show(got), show(want))
	}
}

func wantTime(t *testing.T, what string, got *timestamppb.Timestamp, ms int64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s is nil, want %d ms", what, ms)
		return
	}
	if g := got.AsTime().UnixMilli(); g != ms {
		t.Errorf("%s = %d ms (%s), want %d ms (%s)", what, g, got.AsTime(), ms, time.UnixMilli(ms).UTC())
	}
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fieldErrors collects every *problem.FieldError in err's tree (joined or wrapped).
func fieldErrors(err error) []*problem.FieldError {
	var out []*problem.FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if fe, ok := err.(*problem.FieldError); ok {
			out = append(out, fe)
			return
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

func fieldNames(err error) []string {
	var names []string
	for _, fe := range fieldErrors(err) {
		names = append(names, fe.Field)
	}
	return names
}

type fixtureWant struct {
	org, table, row, operationID, message string
	operation                             eventsv1.Operation
	correlationID, requestID, userID      string
	occurredAtMs, rowModifiedAtMs         int64
	changed                               []string
	columnCount                           int
	check                                 func(t *testing.T, ch *eventsv1.CrmChange)
}

var fixtures = map[string]fixtureWant{
	"msdocs-update-contact.json": {
		org: "00aa00aa-bb11-cc22-dd33-44ee44ee44ee", table: "contact", row: "6d81597f-0f9f-e711-8122-000d3aa2331c",
		operationID: "4af10637-4ea2-e711-8122-000d3aa2331c", message: "Update", operation: eventsv1.Operation_OPERATION_UPDATE,
		correlationID: "aaaa0000-bb11-2222-33cc-444444dddddd", requestID: "", userID: "11bb11bb-cc22-dd33-ee44-55ff55ff55ff",
		// "/Date(1506409448000-0700)/": the milliseconds are UTC, the offset is ignored.
		occurredAtMs: 1506409448000, rowModifiedAtMs: 1506384247000,
		changed:     []string{"contactid", "firstname", "fullname", "modifiedby", "modifiedon", "modifiedonbehalfby", "yomifullname"},
		columnCount: 7,
		check: func(t *testing.T, ch *eventsv1.CrmChange) {
			wantColumn(t, ch.Columns, "firstname", vStr("James"))
			wantColumn(t, ch.Columns, "fullname", vStr("James Glynn (sample)"))
			wantColumn(t, ch.Columns, "modifiedon", vDate(1506384247000))
			if got := ch.Columns["modifiedon"].GetDateTime().AsTime(); !got.Equal(time.Date(2017, 9, 26, 0, 4, 7, 0, time.UTC)) {
				t.Errorf("modifiedon = %s, want 2017-09-26T00:04:07Z", got)
			}
			wantColumn(t, ch.Columns, "modifiedby", vRef("systemuser", "11bb11bb-cc22-dd33-ee44-55ff55ff55ff", ""))
			wantColumn(t, ch.Columns, "modifiedonbehalfby", vNull())
			wantColumn(t, ch.Columns, "contactid", vGUID("6d81597f-0f9f-e711-8122-000d3aa2331c"))
		},
	},
	"albanianxrm-update-account.json": {
		org: "b0714265-8e72-4d3b-8239-ecf0970a3da6", table: "account", row: "ec4e2f7d-9d60-e811-a95a-000d3af24950",
		operationID: "08fec203-ec78-4f7a-a024-c96e329a64fe", message: "Update", operation: eventsv1.Operation_OPERATION_UPDATE,
		correlationID: "39499111-e689-42a1-ae8a-5b14a84514ce", requestID: "08fec203-ec78-4f7a-a024-c96e329a64fe",
		userID:       "df010dad-f103-4589-ba66-76a5a04c2a11",
		occurredAtMs: 1527757530151, rowModifiedAtMs: 1527757524000,
		changed:     []string{"accountid", "modifiedby", "modifiedon", "modifiedonbehalfby", "telephone1"},
		columnCount: 5,
		check: func(t *testing.T, ch *eventsv1.CrmChange) {
			wantColumn(t, ch.Columns, "telephone1", vStr("1111"))
			wantColumn(t, ch.Columns, "accountid", vGUID("ec4e2f7d-9d60-e811-a95a-000d3af24950"))
			wantColumn(t, ch.Columns, "modifiedby", vRef("systemuser", "df010dad-f103-4589-ba66-76a5a04c2a11", ""))
		},
	},
	"albanianxrm-create-albxrm_alltypes.json": {
		org: "0ba4ce62-d2d6-4681-bc25-b3bfb695d4d6", table: "albxrm_alltypes", row: "44bfc2a7-903e-eb11-a813-000d3ad9c2e1",
		operationID: "45bfc2a7-903e-eb11-a813-000d3ad9c2e1", message: "Create", operation: eventsv1.Operation_OPERATION_CREATE,
		correlationID: "9d4c7524-a578-4783-b608-73f7b0b68fd2", requestID: "3fab629b-b795-4834-a2ca-5a09b2cc6934",
		userID: "a0bde583-0537-eb11-bf68-0022489b563d",
		// "/Date(1608007658000+0000)/"
		occurredAtMs: 1608007658000, rowModifiedAtMs: 1608007658000,
		changed: []string{"albxrm_alltypesid", "albxrm_currency", "albxrm_currency_base", "albxrm_customer",
			"albxrm_dateandtime", "albxrm_decimal", "albxrm_float", "albxrm_lookupaccount", "albxrm_multiplelinesoftext",
			"albxrm_multiselectoptionset", "albxrm_name", "albxrm_optionset", "albxrm_twooptions", "albxrm_wholenumber",
			"createdby", "createdon", "exchangerate", "modifiedby", "modifiedon", "modifiedonbehalfby", "ownerid",
			"owningbusinessunit", "statecode", "statuscode", "timezoneruleversionnumber", "transactioncurrencyid"},
		columnCount: 26,
		check: func(t *testing.T, ch *eventsv1.CrmChange) {
			wantColumn(t, ch.Columns, "albxrm_currency", vMoney(2154.32))
			wantColumn(t, ch.Columns, "albxrm_currency_base", vMoney(2154.32))
			wantColumn(t, ch.Columns, "albxrm_optionset", vChoice(257760001))
			wantColumn(t, ch.Columns, "albxrm_multiselectoptionset", vChoices(257760001, 257760002))
			wantColumn(t, ch.Columns, "albxrm_twooptions", vBool(true))
			wantColumn(t, ch.Columns, "albxrm_wholenumber", vInt(987654321))
			wantColumn(t, ch.Columns, "albxrm_float", vDec(2365.12))
			wantColumn(t, ch.Columns, "albxrm_decimal", vDec(10.01))
			wantColumn(t, ch.Columns, "exchangerate", vDec(1)) // "1.0000000000" is not an integer
			wantColumn(t, ch.Columns, "timezoneruleversionnumber", vInt(0))
			wantColumn(t, ch.Columns, "albxrm_multiplelinesoftext", vStr("sdafasf\nasdfas\nafsd"))
			wantColumn(t, ch.Columns, "albxrm_name", vStr("Test Betim"))
			wantColumn(t, ch.Columns, "albxrm_dateandtime", vDate(1608015600000))
			wantColumn(t, ch.Columns, "createdon", vDate(1608007658000))
			wantColumn(t, ch.Columns, "statecode", vChoice(0))
			wantColumn(t, ch.Columns, "statuscode", vChoice(1))
			wantColumn(t, ch.Columns, "albxrm_lookupaccount", vRef("account", "b76b3f4b-1be7-e611-8101-e0071b6af231", ""))
			wantColumn(t, ch.Columns, "albxrm_customer", vRef("account", "ad6b3f4b-1be7-e611-8101-e0071b6af231", ""))
			wantColumn(t, ch.Columns, "transactioncurrencyid", vRef("transactioncurrency", "083081e1-0737-eb11-bf68-0022489b563d", ""))
			wantColumn(t, ch.Columns, "albxrm_alltypesid", vGUID("44bfc2a7-903e-eb11-a813-000d3ad9c2e1"))
			wantColumn(t, ch.Columns, "modifiedonbehalfby", vNull())
		},
	},
	"albanianxrm-create-shko_allfields.json": {
		org: "b015df52-a05f-ee11-a382-000d3a64db73", table: "shko_allfields", row: "6420f0cc-916b-ee11-9ae6-000d3a688809",
		operationID: "1ecf6213-9296-4772-b37c-c09138dd0d59", message: "Create", operation: eventsv1.Operation_OPERATION_CREATE,
		correlationID: "b5940787-bdf1-4d42-89aa-671ba512a488", requestID: "1ecf6213-9296-4772-b37c-c09138dd0d59",
		userID: "c7877889-0f5f-ee11-8def-000d3adbef1f",
		// Unescaped "/Date(1697398446012)/".
		occurredAtMs: 1697398446012, rowModifiedAtMs: 1697398445000,
		changed: []string{"createdby", "createdon", "exchangerate", "modifiedby", "modifiedon", "modifiedonbehalfby",
			"ownerid", "owningbusinessunit", "shko_allfieldsid", "shko_boolean", "shko_choice", "shko_choices",
			"shko_currency", "shko_currency_base", "shko_datetime", "shko_decimal", "shko_integer", "shko_lookup",
			"shko_name", "shko_string", "statecode", "statuscode", "timezoneruleversionnumber", "transactioncurrencyid"},
		columnCount: 24,
		check: func(t *testing.T, ch *eventsv1.CrmChange) {
			// Unescaped "__type": "Money:http://..." and "/Date(..)/" forms.
			wantColumn(t, ch.Columns, "shko_currency", vMoney(100))
			wantColumn(t, ch.Columns, "shko_datetime", vDate(1697526000000))
			wantColumn(t, ch.Columns, "shko_choice", vChoice(342490000))
			wantColumn(t, ch.Columns, "shko_choices", vChoices(342490001, 342490002))
			wantColumn(t, ch.Columns, "shko_boolean", vBool(false))
			wantColumn(t, ch.Columns, "shko_integer", vInt(321))
			wantColumn(t, ch.Columns, "shko_decimal", vDec(10.12))
			wantColumn(t, ch.Columns, "shko_string", vStr("This is a String"))
			wantColumn(t, ch.Columns, "shko_name", vStr("Betim Beja"))
			wantColumn(t, ch.Columns, "shko_lookup", vRef("systemuser", "c7877889-0f5f-ee11-8def-000d3adbef1f", ""))
			wantColumn(t, ch.Columns, "owningbusinessunit", vRef("businessunit", "d5807889-0f5f-ee11-8def-000d3adbef1f", ""))
			wantColumn(t, ch.Columns, "exchangerate", vInt(1))
			wantColumn(t, ch.Columns, "createdon", vDate(1697398445000))
		},
	},
	"albanianxrm-update-new_customactivity.json": {
		org: "e4032af2-cacf-4dd0-92aa-9036176934a5", table: "new_customactivity", row: "841579d9-7e63-ef11-9e4a-00155d0001ea",
		operationID: "b51579d9-7e63-ef11-9e4a-00155d0001ea", message: "Update", operation: eventsv1.Operation_OPERATION_UPDATE,
		correlationID: "3860c444-0576-4d79-9877-b0ca8e4e9bd4", requestID: "3123f7a7-784a-4523-809a-11d47f16313a",
		userID: "400075a6-19a2-49aa-8fa0-330ba2810540",
		// "/Date(1724647396000+0300)/"
		occurredAtMs: 1724647396000, rowModifiedAtMs: 1724658196000,
		// parentExecutionId is an input parameter but no column.
		changed:     []string{"activityid", "modifiedby", "modifiedon", "modifiedonbehalfby", "statecode", "statuscode"},
		columnCount: 11,
		check: func(t *testing.T, ch *eventsv1.CrmChange) {
			// The Target (statecode 3, statuscode 4) wins over the pre-image (0, 1).
			wantColumn(t, ch.Columns, "statecode", vChoice(3))
			wantColumn(t, ch.Columns, "statuscode", vChoice(4))
			// Columns only the images carry.
			wantColumn(t, ch.Columns, "description", vStr("asdf"))
			wantColumn(t, ch.Columns, "subject", vStr("This is a subject"))
			wantColumn(t, ch.Columns, "regardingobjectid", vRef("new_otherentity", "8b1579d9-7e63-ef11-9e4a-00155d0001ea", "Other entity name"))
			if _, ok := ch.Columns["parentExecutionId"]; ok {
				t.Error("parentExecutionId became a column")
			}
			for _, c := range []struct {
				key, id, partyTable, partyID, partyName string
				columns                                 int
				mask                                    int32
			}{
				{"from", "861579d9-7e63-ef11-9e4a-00155d0001ea", "contact", "a76c0a41-4dec-ea11-a2d1-00155d04e323", "Some Contact", 13, 1},
				{"to", "871579d9-7e63-ef11-9e4a-00155d0001ea", "queue", "64b14206-8fbb-e611-80ef-005056bd19ee", "Queue Name", 9, 2},
			} {
				coll := ch.Columns[c.key].GetCollection()
				if coll == nil {
					t.Errorf("column %q = %s, want an EntityCollection", c.key, show(ch.Columns[c.key]))
					continue
				}
				if coll.Table != "activityparty" || len(coll.Entities) != 1 {
					t.Errorf("%s: table %q with %d entities, want activityparty with 1", c.key, coll.Table, len(coll.Entities))
					continue
				}
				e := coll.Entities[0]
				if e.Table != "activityparty" || e.Id != c.id {
					t.Errorf("%s: entity %s/%s, want activityparty/%s", c.key, e.Table, e.Id, c.id)
				}
				if len(e.Columns) != c.columns {
					t.Errorf("%s: %d columns, want %d", c.key, len(e.Columns), c.columns)
				}
				wantColumn(t, e.Columns, "partyid", vRef(c.partyTable, c.partyID, c.partyName))
				wantColumn(t, e.Columns, "participationtypemask", vChoice(c.mask))
				wantColumn(t, e.Columns, "activitypartyid", vGUID(c.id))
				wantColumn(t, e.Columns, "ispartydeleted", vBool(false))
				wantColumn(t, e.Columns, "scheduledend", vDate(1724701394000))
				wantColumn(t, e.Columns, "activityid", vRef("activitypointer", "841579d9-7e63-ef11-9e4a-00155d0001ea", ""))
			}
		},
	},
}

func TestEveryFixtureHasExpectations(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata")
	}
	for _, f := range files {
		if _, ok := fixtures[filepath.Base(f)]; !ok {
			t.Errorf("fixture %s has no expectations in this test", f)
		}
	}
	if len(files) != len(fixtures) {
		t.Errorf("%d fixtures on disk, %d with expectations", len(files), len(fixtures))
	}
}

// targetKeys reads the Target's attribute keys straight from the JSON, sorted.
func targetKeys(t *testing.T, body []byte) []string {
	t.Helper()
	var doc struct {
		InputParameters []struct {
			Key   string          `json:"key"`
			Value json.RawMessage `json:"value"`
		} `json:"InputParameters"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, p := range doc.InputParameters {
		if p.Key != "Target" {
			continue
		}
		var target struct {
			Attributes []struct {
				Key string `json:"key"`
			} `json:"Attributes"`
		}
		if err := json.Unmarshal(p.Value, &target); err != nil {
			t.Fatal(err)
		}
		for _, a := range target.Attributes {
			keys = append(keys, a.Key)
		}
	}
	slices.Sort(keys)
	return keys
}

func TestParseFixtures(t *testing.T) {
	received := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for name, want := range fixtures {
		t.Run(strings.TrimSuffix(name, ".json"), func(t *testing.T) {
			body := readFixture(t, name)
			ch, err := Parse(body, Options{ReceivedAt: received})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ch.OrganizationId != want.org {
				t.Errorf("OrganizationId = %q, want %q", ch.OrganizationId, want.org)
			}
			if ch.Table != want.table {
				t.Errorf("Table = %q, want %q", ch.Table, want.table)
			}
			if ch.RowId != want.row {
				t.Errorf("RowId = %q, want %q", ch.RowId, want.row)
			}
			if ch.Operation != want.operation {
				t.Errorf("Operation = %v, want %v", ch.Operation, want.operation)
			}
			if ch.MessageName != want.message {
				t.Errorf("MessageName = %q, want %q", ch.MessageName, want.message)
			}
			if ch.OperationId != want.operationID {
				t.Errorf("OperationId = %q, want %q", ch.OperationId, want.operationID)
			}
			if ch.CorrelationId != want.correlationID {
				t.Errorf("CorrelationId = %q, want %q", ch.CorrelationId, want.correlationID)
			}
			if ch.RequestId != want.requestID {
				t.Errorf("RequestId = %q, want %q", ch.RequestId, want.requestID)
			}
			if ch.UserId != want.userID || ch.InitiatingUserId != want.userID {
				t.Errorf("UserId, InitiatingUserId = %q, %q, want %q", ch.UserId, ch.InitiatingUserId, want.userID)
			}
			wantEventID := "dv." + want.org + "." + want.operationID + "." + strings.ToLower(want.message) + "." + want.table + "." + want.row
			if ch.EventId != wantEventID {
				t.Errorf("EventId = %q, want %q", ch.EventId, wantEventID)
			}
			if ch.EventId != EventID(ch) {
				t.Errorf("EventId %q differs from EventID(ch) %q", ch.EventId, EventID(ch))
			}
			wantTime(t, "OccurredAt", ch.OccurredAt, want.occurredAtMs)
			wantTime(t, "RowModifiedAt", ch.RowModifiedAt, want.rowModifiedAtMs)
			if ch.ReceivedAt == nil || !ch.ReceivedAt.AsTime().Equal(received) {
				t.Errorf("ReceivedAt = %v, want %s", ch.ReceivedAt, received)
			}
			if ch.ReadBackRequired {
				t.Error("ReadBackRequired = true for a complete body")
			}
			if ch.Tag != "" {
				t.Errorf("Tag = %q, want none", ch.Tag)
			}
			if !slices.Equal(ch.ChangedColumns, want.changed) {
				t.Errorf("ChangedColumns = %v, want %v", ch.ChangedColumns, want.changed)
			}
			if keys := targetKeys(t, body); !slices.Equal(ch.ChangedColumns, keys) {
				t.Errorf("ChangedColumns = %v, want the Target's attribute keys %v", ch.ChangedColumns, keys)
			}
			if !slices.IsSorted(ch.ChangedColumns) {
				t.Errorf("ChangedColumns not sorted: %v", ch.ChangedColumns)
			}
			if len(ch.Columns) != want.columnCount {
				t.Errorf("%d columns, want %d", len(ch.Columns), want.columnCount)
			}
			want.check(t, ch)

			// What the service publishes must survive the wire.
			data, err := proto.Marshal(ch)
			if err != nil {
				t.Fatalf("proto.Marshal: %v", err)
			}
			var back eventsv1.CrmChange
			if err := proto.Unmarshal(data, &back); err != nil || !proto.Equal(&back, ch) {
				t.Errorf("round trip through protobuf changed the change (err %v)", err)
			}
		})
	}
}

func TestParseIsDeterministic(t *testing.T) {
	body := readFixture(t, "albanianxrm-update-new_customactivity.json")
	a, err := Parse(body, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(body, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(a, b) {
		t.Error("two parses of one body differ")
	}
	if a.ReceivedAt != nil {
		t.Errorf("ReceivedAt = %v without Options.ReceivedAt, want unset", a.ReceivedAt)
	}
}

const (
	orgID  = "2a6b1c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d"
	opID   = "7f6e5d4c-3b2a-4190-8f7e-6d5c4b3a2910"
	rowID  = "9c8b7a69-5847-4362-a514-f3e2d1c0b9a8"
	userID = "1234abcd-0000-4000-8000-00000000abcd"
)

// buildContext builds a minimal RemoteExecutionContext; extra keys are merged in
// (a nil value removes the key).
func buildContext(t testing.TB, extra map[string]any) []byte {
	t.Helper()
	doc := map[string]any{
		"MessageName":        "Update",
		"PrimaryEntityName":  "contact",
		"PrimaryEntityId":    rowID,
		"OrganizationId":     orgID,
		"OperationId":        opID,
		"CorrelationId":      "aaaa0000-bb11-2222-33cc-444444dddddd",
		"InitiatingUserId":   userID,
		"UserId":             userID,
		"OperationCreatedOn": `/Date(1700000000000)/`,
		"InputParameters": []any{map[string]any{"key": "Target", "value": map[string]any{
			"__type":      "Entity:http://schemas.microsoft.com/xrm/2011/Contracts",
			"LogicalName": "contact",
			"Id":          rowID,
			"Attributes":  []any{map[string]any{"key": "firstname", "value": "Ada"}},
		}}},
		"PreEntityImages":  []any{},
		"PostEntityImages": []any{},
		"SharedVariables":  []any{},
		"ParentContext":    nil,
	}
	for k, v := range extra {
		if v == nil {
			delete(doc, k)
			continue
		}
		doc[k] = v
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func attrs(kv ...any) []any {
	var out []any
	for i := 0; i < len(kv); i += 2 {
		out = append(out, map[string]any{"key": kv[i], "value": kv[i+1]})
	}
	return out
}

func TestParseDeleteWithEntityReferenceTarget(t *testing.T) {
	upper := strings.ToUpper(rowID)
	body := buildContext(t, map[string]any{
		"MessageName":     "Delete",
		"PrimaryEntityId": nil, // the row id must come from the Target reference
		"InputParameters": []any{map[string]any{"key": "Target", "value": map[string]any{
			"__type":      "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
			"Id":          upper,
			"LogicalName": "contact",
			"Name":        nil,
		}}},
		"PreEntityImages": []any{map[string]any{"key": "PreImage", "value": map[string]any{
			"LogicalName": "contact",
			"Attributes": attrs(
				"emailaddress1", "ada@example.com",
				"parentcustomerid", map[string]any{
					"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
					"Id":     "5B3A2C1D-0000-4000-8000-000000000001", "LogicalName": "account", "Name": "Contoso",
				},
				"statecode", map[string]any{"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": 1},
			),
		}}},
	})
	ch, err := Parse(body, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if ch.Operation != eventsv1.Operation_OPERATION_DELETE {
		t.Errorf("Operation = %v, want DELETE", ch.Operation)
	}
	if ch.RowId != rowID {
		t.Errorf("RowId = %q, want %q (lower-cased from the Target reference)", ch.RowId, rowID)
	}
	if len(ch.ChangedColumns) != 0 {
		t.Errorf("ChangedColumns = %v, want none for a Delete", ch.ChangedColumns)
	}
	if len(ch.Columns) != 3 {
		t.Errorf("%d columns, want the pre-image's 3: %v", len(ch.Columns), ch.Columns)
	}
	wantColumn(t, ch.Columns, "emailaddress1", vStr("ada@example.com"))
	wantColumn(t, ch.Columns, "parentcustomerid", vRef("account", "5b3a2c1d-0000-4000-8000-000000000001", "Contoso"))
	wantColumn(t, ch.Columns, "statecode", vChoice(1))
	if want := "dv." + orgID + "." + opID + ".delete.contact." + rowID; ch.EventId != want {
		t.Errorf("EventId = %q, want %q", ch.EventId, want)
	}
	if ch.ReadBackRequired {
		t.Error("ReadBackRequired set")
	}
}

func TestParseSizeExceeded(t *testing.T) {
	body := buildContext(t, map[string]any{"InputParameters": nil, "PreEntityImages": nil, "PostEntityImages": nil})
	ch, err := Parse(body, Options{SizeExceeded: true})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if !ch.ReadBackRequired {
		t.Error("ReadBackRequired = false, want true")
	}
	if len(ch.Columns) != 0 || len(ch.ChangedColumns) != 0 {
		t.Errorf("columns %v, changed %v; want none", ch.Columns, ch.ChangedColumns)
	}
	if ch.RowId != rowID || ch.Table != "contact" || ch.Operation != eventsv1.Operation_OPERATION_UPDATE {
		t.Errorf("row %q table %q operation %v", ch.RowId, ch.Table, ch.Operation)
	}
	if ch.RowModifiedAt != nil {
		t.Errorf("RowModifiedAt = %v with no columns", ch.RowModifiedAt)
	}
	wantTime(t, "OccurredAt", ch.OccurredAt, 1700000000000)

	// Without PrimaryEntityId there is nothing to read back.
	_, err = Parse(buildContext(t, map[string]any{"InputParameters": nil, "PrimaryEntityId": nil}), Options{SizeExceeded: true})
	if got := fieldNames(err); !slices.Equal(got, []string{"/PrimaryEntityId"}) {
		t.Errorf("without PrimaryEntityId: field errors %v (err %v), want [/PrimaryEntityId]", got, err)
	}
}

func TestParseTag(t *testing.T) {
	tagVar := func(v any) []any {
		return []any{map[string]any{"key": "other", "value": true}, map[string]any{"key": "tag", "value": v}}
	}
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"none", nil, ""},
		{"shared variables", map[string]any{"SharedVariables": tagVar("notatcompany")}, "notatcompany"},
		{"parent context", map[string]any{"ParentContext": map[string]any{"SharedVariables": tagVar("from-parent")}}, "from-parent"},
		{"own wins over parent", map[string]any{
			"SharedVariables": tagVar("own"),
			"ParentContext":   map[string]any{"SharedVariables": tagVar("parent")},
		}, "own"},
		{"non-string tag ignored", map[string]any{"SharedVariables": tagVar(42)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := Parse(buildContext(t, tc.extra), Options{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ch.Tag != tc.want {
				t.Errorf("Tag = %q, want %q", ch.Tag, tc.want)
			}
		})
	}
}

func TestParseFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  map[string]any
		fields []string
	}{
		{"missing OrganizationId", map[string]any{"OrganizationId": nil}, []string{"/OrganizationId"}},
		{"empty OrganizationId", map[string]any{"OrganizationId": ""}, []string{"/OrganizationId"}},
		{"OrganizationId not a GUID", map[string]any{"OrganizationId": "contoso"}, []string{"/OrganizationId"}},
		{"missing OperationId", map[string]any{"OperationId": nil}, []string{"/OperationId"}},
		{"OperationId not a GUID", map[string]any{"OperationId": "op-1"}, []string{"/OperationId"}},
		{"missing MessageName", map[string]any{"MessageName": nil}, []string{"/MessageName"}},
		{"blank MessageName", map[string]any{"MessageName": "  "}, []string{"/MessageName"}},
		{"missing PrimaryEntityName", map[string]any{"PrimaryEntityName": nil}, []string{"/PrimaryEntityName"}},
		{"several at once", map[string]any{"MessageName": nil, "OrganizationId": "x", "OperationId": nil},
			[]string{"/MessageName", "/OperationId", "/OrganizationId"}},
		{"row id not a GUID", map[string]any{"PrimaryEntityId": "row-1", "InputParameters": []any{}}, []string{"/PrimaryEntityId"}},
		{"Target not an object", map[string]any{"InputParameters": []any{map[string]any{"key": "Target", "value": "x"}}},
			[]string{"/InputParameters/0/value"}},
		{"bad attribute", map[string]any{"InputParameters": []any{map[string]any{"key": "Target", "value": map[string]any{
			"__type": "Entity:", "LogicalName": "contact", "Id": rowID,
			"Attributes": attrs("x", map[string]any{"__type": "OptionSetValue:", "Value": "nope"}),
		}}}}, []string{"/InputParameters/0/value/Attributes/0"}},
		{"bad pre-image", map[string]any{"PreEntityImages": []any{map[string]any{"key": "pre", "value": map[string]any{
			"Attributes": []any{"not a key/value"},
		}}}}, []string{"/PreEntityImages/0/value"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := Parse(buildContext(t, tc.extra), Options{})
			if err == nil {
				t.Fatalf("Parse succeeded: %s", show(ch))
			}
			if ch != nil {
				t.Errorf("a change came with the error: %s", show(ch))
			}
			var fe *problem.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v (%T) holds no *problem.FieldError", err, err)
			}
			got := fieldNames(err)
			slices.Sort(got)
			if !slices.Equal(got, tc.fields) {
				t.Errorf("fields %v, want %v (err: %v)", got, tc.fields, err)
			}
			if len(tc.fields) == 1 && fe.Field != tc.fields[0] {
				t.Errorf("errors.As found field %q, want %q", fe.Field, tc.fields[0])
			}
			if fe.Reason == "" || !strings.HasPrefix(fe.Error(), fe.Field+": ") {
				t.Errorf("FieldError %q: want %q followed by a reason", fe.Error(), fe.Field)
			}
		})
	}
}

func TestParseNotJSON(t *testing.T) {
	for _, body := range []string{"{not json", "", "[1,2]", `"a string"`} {
		ch, err := Parse([]byte(body), Options{})
		if ch != nil {
			t.Errorf("%q: got a change", body)
		}
		var fe *problem.FieldError
		if !errors.As(err, &fe) {
			t.Errorf("%q: error %v holds no *problem.FieldError", body, err)
			continue
		}
		if fe.Field != "/" {
			t.Errorf("%q: field %q, want /", body, fe.Field)
		}
	}
}

func TestParseTargetWinsOverPostImageOverPreImage(t *testing.T) {
	image := func(kv ...any) []any {
		return []any{map[string]any{"key": "img", "value": map[string]any{"LogicalName": "contact", "Id": rowID, "Attributes": attrs(kv...)}}}
	}
	body := buildContext(t, map[string]any{
		"PreEntityImages":  image("jobtitle", "pre", "lastname", "pre", "onlypre", "pre"),
		"PostEntityImages": image("jobtitle", "post", "lastname", "post", "onlypost", "post"),
		"InputParameters": []any{map[string]any{"key": "Target", "value": map[string]any{
			"__type": "Entity:http://schemas.microsoft.com/xrm/2011/Contracts", "LogicalName": "contact", "Id": rowID,
			"Attributes": attrs("jobtitle", "target"),
		}}},
	})
	ch, err := Parse(body, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	wantColumn(t, ch.Columns, "jobtitle", vStr("target"))
	wantColumn(t, ch.Columns, "lastname", vStr("post"))
	wantColumn(t, ch.Columns, "onlypre", vStr("pre"))
	wantColumn(t, ch.Columns, "onlypost", vStr("post"))
	if len(ch.Columns) != 4 {
		t.Errorf("%d columns, want 4", len(ch.Columns))
	}
	if !slices.Equal(ch.ChangedColumns, []string{"jobtitle"}) {
		t.Errorf("ChangedColumns = %v, want [jobtitle]", ch.ChangedColumns)
	}
}

func TestParseSetStateParameters(t *testing.T) {
	body := buildContext(t, map[string]any{
		"MessageName": "SetState",
		"InputParameters": []any{
			map[string]any{"key": "EntityMoniker", "value": map[string]any{
				"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": rowID, "LogicalName": "contact",
			}},
			map[string]any{"key": "State", "value": map[string]any{"__type": "OptionSetValue:", "Value": 1}},
			map[string]any{"key": "Status", "value": map[string]any{"__type": "OptionSetValue:", "Value": 2}},
		},
	})
	ch, err := Parse(body, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if ch.Operation != eventsv1.Operation_OPERATION_UPDATE {
		t.Errorf("Operation = %v, want UPDATE", ch.Operation)
	}
	wantColumn(t, ch.Columns, "statecode", vChoice(1))
	wantColumn(t, ch.Columns, "statuscode", vChoice(2))
	if !slices.Equal(ch.ChangedColumns, []string{"statecode", "statuscode"}) {
		t.Errorf("ChangedColumns = %v", ch.ChangedColumns)
	}
}

func TestOperationOfMessage(t *testing.T) {
	for msg, want := range map[string]eventsv1.Operation{
		"Create": eventsv1.Operation_OPERATION_CREATE, "Update": eventsv1.Operation_OPERATION_UPDATE,
		"Delete": eventsv1.Operation_OPERATION_DELETE, "Associate": eventsv1.Operation_OPERATION_ASSOCIATE,
		"Disassociate": eventsv1.Operation_OPERATION_DISASSOCIATE, "SetState": eventsv1.Operation_OPERATION_UPDATE,
		"Assign": eventsv1.Operation_OPERATION_UPDATE, "Merge": eventsv1.Operation_OPERATION_UPDATE,
		// Messages that change no row, or that this service does not know,
		// are no operation: the caller acknowledges and drops them.
		"Frobnicate": eventsv1.Operation_OPERATION_UNSPECIFIED, "Retrieve": eventsv1.Operation_OPERATION_UNSPECIFIED,
		"update": eventsv1.Operation_OPERATION_UNSPECIFIED, "Up\xffdate": eventsv1.Operation_OPERATION_UNSPECIFIED,
	} {
		body := buildContext(t, map[string]any{"MessageName": msg})
		if msg == "Up\xffdate" {
			// json.Marshal writes the invalid byte as \ufffd; put it back raw.
			body = bytes.Replace(body, []byte(`Up\ufffddate`), []byte("Up\xffdate"), 1)
			if !bytes.Contains(body, []byte("Up\xffdate")) {
				t.Fatal("no invalid UTF-8 in the body")
			}
		}
		ch, err := Parse(body, Options{})
		if err != nil {
			t.Errorf("%q: %v", msg, err)
			continue
		}
		if ch.Operation != want {
			t.Errorf("%q: Operation %v, want %v", msg, ch.Operation, want)
		}
		if want == eventsv1.Operation_OPERATION_UNSPECIFIED && (ch.EventId != "" || ch.MessageName != "") {
			t.Errorf("%q: unknown message kept EventId %q, MessageName %q", msg, ch.EventId, ch.MessageName)
		}
		if KnownMessage(msg) != (want != eventsv1.Operation_OPERATION_UNSPECIFIED) {
			t.Errorf("KnownMessage(%q) = %v", msg, KnownMessage(msg))
		}
	}
}

func TestParseDate(t *testing.T) {
	for _, tc := range []struct {
		in string
		ms int64
		ok bool
	}{
		{"/Date(1506384247000)/", 1506384247000, true},
		{"/Date(1608007658000+0000)/", 1608007658000, true},
		{"/Date(1506409448000-0700)/", 1506409448000, true},
		{"/Date(-1000)/", -1000, true},
		{"/Date(abc)/", 0, false},
		{"/Date(1506384247000+07)/", 0, false},
		{"2017-09-26T00:04:07Z", 0, false},
	} {
		got, ok, err := parseDate(tc.in)
		if err != nil {
			t.Errorf("parseDate(%q): %v", tc.in, err)
		}
		if ok != tc.ok || (ok && got.UnixMilli() != tc.ms) {
			t.Errorf("parseDate(%q) = %v, %v; want %d ms, %v", tc.in, got, ok, tc.ms, tc.ok)
		}
		if ok && got.Location() != time.UTC {
			t.Errorf("parseDate(%q) location %v, want UTC", tc.in, got.Location())
		}
	}
}

func TestParseDateBeyondTimestampRange(t *testing.T) {
	for _, in := range []string{
		"/Date(99999999999999999)/",    // year 3170843: beyond a protobuf Timestamp
		"/Date(99999999999999999999)/", // beyond int64
		"/Date(253402300800000)/",      // 10000-01-01
		"/Date(-62135596800001)/",      // just before year 1
	} {
		if _, ok, err := parseDate(in); !ok || err == nil {
			t.Errorf("parseDate(%q) = ok %v, err %v; want a date form refused", in, ok, err)
		}
	}
	for _, in := range []string{"/Date(253402300799999)/", "/Date(-62135596800000)/"} {
		if _, ok, err := parseDate(in); !ok || err != nil {
			t.Errorf("parseDate(%q) = ok %v, err %v; want the edge of the range taken", in, ok, err)
		}
	}
}

func reference(table, id string, name any) map[string]any {
	return map[string]any{
		"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
		"Id":     id, "KeyAttributes": []any{}, "LogicalName": table, "Name": name, "RowVersion": nil,
	}
}

// associateParams are the InputParameters of an Associate or Disassociate:
// Target, Relationship and RelatedEntities, in Dataverse's order.
func associateParams(target map[string]any, relationship any, related ...any) []any {
	return []any{
		map[string]any{"key": "Target", "value": target},
		map[string]any{"key": "Relationship", "value": relationship},
		map[string]any{"key": "RelatedEntities", "value": related},
	}
}

func relationship(schema string) map[string]any {
	return map[string]any{
		"__type":            "Relationship:http://schemas.microsoft.com/xrm/2011/Contracts",
		"PrimaryEntityRole": nil, "SchemaName": schema,
	}
}

const (
	oppID      = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
	relatedTwo = "11111111-2222-4333-8444-555555555555"
	zeroGUID   = "00000000-0000-0000-0000-000000000000"
)

func TestParseAssociate(t *testing.T) {
	for _, tc := range []struct {
		message string
		op      eventsv1.Operation
	}{
		{"Associate", eventsv1.Operation_OPERATION_ASSOCIATE},
		{"Disassociate", eventsv1.Operation_OPERATION_DISASSOCIATE},
	} {
		t.Run(tc.message, func(t *testing.T) {
			body := buildContext(t, map[string]any{
				"MessageName":       tc.message,
				"PrimaryEntityName": "none",
				"PrimaryEntityId":   zeroGUID,
				"InputParameters": associateParams(reference("opportunity", strings.ToUpper(oppID), nil),
					relationship("opportunitycontact_association"),
					reference("contact", strings.ToUpper(rowID), "Ada Lovelace"), reference("contact", relatedTwo, nil)),
			})
			ch, err := Parse(body, Options{})
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if ch.Table != "opportunity" || ch.RowId != oppID {
				t.Errorf("row %s/%s, want opportunity/%s (from the Target, not \"none\" and the zero GUID)", ch.Table, ch.RowId, oppID)
			}
			if ch.Operation != tc.op || ch.MessageName != tc.message {
				t.Errorf("operation %v message %q, want %v %q", ch.Operation, ch.MessageName, tc.op, tc.message)
			}
			if ch.Relationship != "opportunitycontact_association" {
				t.Errorf("Relationship = %q", ch.Relationship)
			}
			want := []*eventsv1.EntityReference{
				{Table: "contact", Id: rowID, Name: "Ada Lovelace"},
				{Table: "contact", Id: relatedTwo},
			}
			if !slices.EqualFunc(ch.Related, want, func(a, b *eventsv1.EntityReference) bool { return proto.Equal(a, b) }) {
				t.Errorf("Related = %v, want %v", ch.Related, want)
			}
			if len(ch.Columns) != 0 || len(ch.ChangedColumns) != 0 {
				t.Errorf("columns %v, changed %v; an association changes no column", ch.Columns, ch.ChangedColumns)
			}
			if wantID := "dv." + orgID + "." + opID + "." + strings.ToLower(tc.message) + ".opportunity." + oppID; ch.EventId != wantID {
				t.Errorf("EventId = %q, want %q", ch.EventId, wantID)
			}
			// It must survive the wire.
			data, err := proto.Marshal(ch)
			if err != nil {
				t.Fatal(err)
			}
			var back eventsv1.CrmChange
			if err := proto.Unmarshal(data, &back); err != nil || !proto.Equal(&back, ch) {
				t.Errorf("round trip changed the change (err %v)", err)
			}
		})
	}
	t.Run("no relationship, no related rows", func(t *testing.T) {
		body := buildContext(t, map[string]any{
			"MessageName": "Associate", "PrimaryEntityName": "none",
			"InputParameters": associateParams(reference("opportunity", oppID, nil), nil),
		})
		ch, err := Parse(body, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if ch.Relationship != "" || len(ch.Related) != 0 {
			t.Errorf("Relationship %q, Related %v; want none", ch.Relationship, ch.Related)
		}
	})
}

func TestParseAssociateFieldErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		params []any
		field  string
	}{
		{"related row not an object", associateParams(reference("opportunity", oppID, nil), relationship("x"), reference("contact", rowID, nil), "contact"),
			"/InputParameters/2/value/1"},
		{"related row without LogicalName", associateParams(reference("opportunity", oppID, nil), relationship("x"), map[string]any{"Id": rowID}),
			"/InputParameters/2/value/0"},
		{"Target reference without LogicalName", associateParams(map[string]any{"__type": "EntityReference:", "Id": oppID}, relationship("x"), reference("contact", rowID, nil)),
			"/InputParameters/0/value"},
		{"Target not an object", associateParams(nil, relationship("x")), "/InputParameters/0/value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := buildContext(t, map[string]any{"MessageName": "Associate", "PrimaryEntityName": "none", "PrimaryEntityId": zeroGUID, "InputParameters": tc.params})
			ch, err := Parse(body, Options{})
			if ch != nil {
				t.Errorf("a change came with the error: %s", show(ch))
			}
			if got := fieldNames(err); !slices.Equal(got, []string{tc.field}) {
				t.Errorf("fields %v, want [%s] (err %v)", got, tc.field, err)
			}
		})
	}
}

// Change reads the inputs once: a second call gives the same change (or
// error), not the images applied twice.
func TestChangeOnce(t *testing.T) {
	body, err := os.ReadFile("testdata/msdocs-update-contact.json")
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseHeader(body, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Header().GetColumns()); n != 0 {
		t.Fatalf("the header holds %d columns, want none before Change", n)
	}
	first, err := c.Change()
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Change()
	if err != nil || again != first {
		t.Fatalf("second Change: %p, %v; want the first's %p", again, err, first)
	}
	whole, err := Parse(body, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(first, whole) {
		t.Errorf("header then Change = %v, Parse = %v", first, whole)
	}
}
