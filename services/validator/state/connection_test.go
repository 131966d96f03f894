package state

import "testing"

func TestStakeholder(t *testing.T) {
	t.Parallel()
	const opp, c, conn, role = "0bb0b0b0-0000-4000-8000-000000000001", "7d8c4a0e-0000-4000-8000-000000000001",
		"c0c0c0c0-0000-4000-8000-000000000001", "e0e0e0e0-0000-4000-8000-000000000001"
	row := func(cols map[string]string) *Row {
		r := &Row{Table: "connection", ID: conn, Cols: map[string]Cell{}}
		for k, v := range cols {
			r.Cols[k] = Cell{V: v}
		}
		return r
	}
	for _, tc := range []struct {
		name string
		row  *Row
		want Stakeholder
		ok   bool
	}{
		{"opportunity to contact", row(map[string]string{"record1id": "opportunity:" + opp, "record2id": "contact:" + c,
			"record2roleid": "connectionrole:" + role, "record1roleid": "connectionrole:other", "statecode": "0"}),
			Stakeholder{Connection: conn, Opportunity: opp, Contact: c, Role: role}, true},
		{"contact to opportunity", row(map[string]string{"record1id": "contact:" + c, "record2id": "opportunity:" + opp,
			"record1roleid": "connectionrole:" + role}),
			Stakeholder{Connection: conn, Opportunity: opp, Contact: c, Role: role}, true},
		{"tables from the object type codes", row(map[string]string{"record1id": ":" + opp, "record2id": "unknown:" + c,
			"record1objecttypecode": "3", "record2objecttypecode": "2"}),
			Stakeholder{Connection: conn, Opportunity: opp, Contact: c}, true},
		{"inactive", row(map[string]string{"record1id": "opportunity:" + opp, "record2id": "contact:" + c, "statecode": "1"}), Stakeholder{}, false},
		{"account to contact", row(map[string]string{"record1id": "account:" + opp, "record2id": "contact:" + c}), Stakeholder{}, false},
		{"one end missing", row(map[string]string{"record1id": "opportunity:" + opp, "record2id": ""}), Stakeholder{}, false},
		{"deleted", &Row{Table: "connection", ID: conn, Deleted: true}, Stakeholder{}, false},
		{"not a connection", &Row{Table: "opportunity", ID: conn, Cols: map[string]Cell{"record1id": {V: "contact:" + c}}}, Stakeholder{}, false},
		{"nil", nil, Stakeholder{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.row.Stakeholder()
			if ok != tc.ok || got != tc.want {
				t.Errorf("Stakeholder() = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
