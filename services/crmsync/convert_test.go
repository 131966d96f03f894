package crmsync

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
)

const (
	org     = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	contact = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"
	account = "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
	user    = "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
)

var cols = crmschema.Columns{Flag: "nac_orgchangestatus"}

func TestSelectOfNamesLookupsAsValues(t *testing.T) {
	sel := selectOf("contact", cols)
	for _, want := range []string{"_parentcustomerid_value", "_ownerid_value", "nac_orgchangestatus", "modifiedon", "versionnumber", "emailaddress1"} {
		if !slices.Contains(sel, want) {
			t.Errorf("contact $select %v lacks %s", sel, want)
		}
	}
	if slices.Contains(sel, "parentcustomerid") {
		t.Errorf("contact $select %v names a lookup by its logical name", sel)
	}
}

func TestChangeOfIsTheWebhooksChange(t *testing.T) {
	readAt := time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		row   string
		check func(t *testing.T, ch *eventsv1.CrmChange)
	}{
		{name: "full contact", row: `{"contactid":"` + contact + `","firstname":"Avery","nac_orgchangestatus":1,"statecode":0,
			"_parentcustomerid_value":"` + account + `","_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname":"account",
			"_ownerid_value":"` + user + `","modifiedon":"2026-11-19T10:11:12Z","versionnumber":915244,"_modifiedby_value":"` + user + `"}`,
			check: func(t *testing.T, ch *eventsv1.CrmChange) {
				if ch.GetEventId() != "sync."+org+".contact."+contact+".915244" {
					t.Errorf("event id %q", ch.GetEventId())
				}
				if got := ch.GetColumns()["parentcustomerid"].GetReference(); got.GetTable() != "account" || got.GetId() != account {
					t.Errorf("parentcustomerid %v", got)
				}
				if got := ch.GetColumns()["ownerid"].GetReference(); got.GetTable() != "systemuser" {
					t.Errorf("ownerid without annotation %v, want systemuser", got)
				}
				if ch.GetColumns()["nac_orgchangestatus"].GetChoice() != 1 || ch.GetColumns()["statecode"].GetChoice() != 0 {
					t.Errorf("choices %v %v", ch.GetColumns()["nac_orgchangestatus"], ch.GetColumns()["statecode"])
				}
				if !ch.GetColumns()["lastname"].GetNull() {
					t.Errorf("a column the row lacks is %v, want null", ch.GetColumns()["lastname"])
				}
				if ch.GetRowModifiedAt().AsTime() != time.Date(2026, 11, 19, 10, 11, 12, 0, time.UTC) {
					t.Errorf("version %v, want modifiedon", ch.GetRowModifiedAt().AsTime())
				}
				if len(ch.GetChangedColumns()) != len(cols.Read("contact")) || ch.GetUserId() != user || ch.GetMessageName() != MessageSync {
					t.Errorf("changed %v, user %q, message %q", ch.GetChangedColumns(), ch.GetUserId(), ch.GetMessageName())
				}
			}},
		{name: "version from the etag", row: `{"contactid":"` + upper(contact) + `","@odata.etag":"W/\"77\""}`,
			check: func(t *testing.T, ch *eventsv1.CrmChange) {
				if ch.GetEventId() != "sync."+org+".contact."+contact+".77" || ch.GetRowId() != contact {
					t.Errorf("event id %q, row %q", ch.GetEventId(), ch.GetRowId())
				}
				if ch.GetRowModifiedAt() != nil {
					t.Error("a version without modifiedon")
				}
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var row map[string]any
			if err := json.Unmarshal([]byte(tc.row), &row); err != nil {
				t.Fatal(err)
			}
			ch, _, err := changeOf(org, "contact", row, cols, readAt, MessageSync, "")
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, ch)
		})
	}
	if _, _, err := changeOf(org, "contact", map[string]any{"contactid": "not-a-guid"}, cols, readAt, MessageSync, ""); err == nil {
		t.Error("a row without a GUID was turned into a change")
	}
}

// upper upper-cases a GUID, as some Dataverse answers spell them.
func upper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 32
		}
	}
	return string(b)
}

// A connection row's ends name their table by the annotation, else by
// their object type code; its roles point at connection roles.
func TestChangeOfConnection(t *testing.T) {
	const conn, opp, role = "c0c0c0c0-0000-4000-8000-000000000001", "0bb0b0b0-0000-4000-8000-000000000001", "e0e0e0e0-0000-4000-8000-000000000001"
	sel := selectOf("connection", cols)
	for _, want := range []string{"_record1id_value", "_record2id_value", "record1objecttypecode", "record2objecttypecode", "_record2roleid_value", "statecode"} {
		if !slices.Contains(sel, want) {
			t.Errorf("connection $select %v lacks %s", sel, want)
		}
	}
	var row map[string]any
	if err := json.Unmarshal([]byte(`{"connectionid":"`+conn+`","_record1id_value":"`+opp+`","record1objecttypecode":3,
		"_record2id_value":"`+contact+`","_record2id_value@Microsoft.Dynamics.CRM.lookuplogicalname":"contact","record2objecttypecode":2,
		"_record2roleid_value":"`+role+`","_record1roleid_value":null,"statecode":0,"versionnumber":12}`), &row); err != nil {
		t.Fatal(err)
	}
	ch, _, err := changeOf(org, "connection", row, cols, time.Now(), MessageSync, "")
	if err != nil {
		t.Fatal(err)
	}
	c := ch.GetColumns()
	if r := c["record1id"].GetReference(); r.GetTable() != "opportunity" || r.GetId() != opp {
		t.Errorf("record1id %v, want the opportunity by its object type code", r)
	}
	if r := c["record2id"].GetReference(); r.GetTable() != "contact" || r.GetId() != contact {
		t.Errorf("record2id %v, want the contact", r)
	}
	if r := c["record2roleid"].GetReference(); r.GetTable() != "connectionrole" || r.GetId() != role {
		t.Errorf("record2roleid %v", r)
	}
	if !c["record1roleid"].GetNull() || c["record1objecttypecode"].GetChoice() != 3 || c["statecode"].GetChoice() != 0 {
		t.Errorf("record1roleid %v, record1objecttypecode %v, statecode %v", c["record1roleid"], c["record1objecttypecode"], c["statecode"])
	}
}

func TestDeleteOfDependsOnTheDelta(t *testing.T) {
	now := time.Now()
	a, b := deleteOf(org, "contact", contact, "link-1", now), deleteOf(org, "contact", contact, "link-2", now)
	if a.GetOperation() != eventsv1.Operation_OPERATION_DELETE || a.GetEventId() == b.GetEventId() {
		t.Errorf("deletes %q %q: want DELETE with ids that differ per delta", a.GetEventId(), b.GetEventId())
	}
}

func FuzzChangeOf(f *testing.F) {
	f.Add([]byte(`{"contactid":"` + contact + `","nac_orgchangestatus":1,"_ownerid_value":"` + user + `","modifiedon":"2026-11-19T10:11:12Z"}`))
	f.Add([]byte(`{"contactid":"` + contact + `","modifiedon":"yesterday","versionnumber":"x","statecode":1e300}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var row map[string]any
		if json.Unmarshal(body, &row) != nil {
			return
		}
		ch, info, err := changeOf(org, "contact", row, cols, time.Now(), MessageSync, "")
		if err != nil {
			return
		}
		if ch.GetRowId() != info.id || len(ch.GetColumns()) != len(cols.Read("contact")) {
			t.Fatalf("change %v from %s", ch, body)
		}
	})
}
