package provision

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProvisionTwice(t *testing.T) {
	e := newEnv(t)
	first := e.provision(t, Apply)
	got := actions(first)
	// publisher, solution, flag, 4 evidence columns, 4 views, endpoint, 13 steps; publish
	if got[Create] != 25 || got[Update] != 1 || got[Conflict] != 0 {
		t.Fatalf("first run: %v\n%+v", got, first.Items)
	}
	if p := e.standin.Publishes(); len(p) != 1 || strings.Join(p[0].Entities, ",") != "contact,opportunity" {
		t.Fatalf("publishes after the first run: %+v", p)
	}
	second := e.provision(t, Apply)
	if d := second.Drifted(); len(d) != 0 {
		t.Fatalf("second run changed: %+v", d)
	}
	if !strings.HasPrefix(second.Summary(false), "nothing to do") {
		t.Errorf("summary %q", second.Summary(false))
	}
	if p := e.standin.Publishes(); len(p) != 1 {
		t.Errorf("the second run published again: %+v", p)
	}
	check := e.provision(t, DryRun)
	if len(check.Drifted()) != 0 {
		t.Errorf("check after provisioning: %+v", check.Drifted())
	}
	// Every component went into our solution.
	inSolution := map[string]int{}
	for _, c := range e.standin.Components() {
		if c.Solution != "notatcompany" {
			t.Errorf("component %+v outside the solution", c)
		}
		inSolution[c.Kind]++
	}
	if inSolution["attribute"] != 5 || inSolution["savedqueries"] != 4 || inSolution["serviceendpoints"] != 1 || inSolution["sdkmessageprocessingsteps"] != 13 {
		t.Errorf("solution components: %v", inSolution)
	}
	if av := e.standin.AuthValue(endpointID(t, e)); av != webhookKey {
		t.Errorf("authvalue = %q", av)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t)
	plan := e.provision(t, DryRun)
	if got := actions(plan); got[Create] != 25 {
		t.Fatalf("plan: %v", got)
	}
	status, body := e.webAPI(t, http.MethodGet, "publishers?$filter=uniquename%20eq%20'notatcompany'", "", "")
	if status != 200 || strings.Contains(string(body), "publisherid") {
		t.Fatalf("dry run created a publisher: %d %s", status, body)
	}
	if len(e.standin.Publishes()) != 0 || len(e.standin.Components()) != 0 {
		t.Fatal("dry run changed the organization")
	}
}

func endpointID(t *testing.T, e *env) string {
	t.Helper()
	_, body := e.webAPI(t, http.MethodGet, "serviceendpoints?$select=serviceendpointid,authvalue", "", "")
	rows := decode(t, body)["value"].([]any)
	if len(rows) != 1 {
		t.Fatalf("endpoints: %s", body)
	}
	row := rows[0].(map[string]any)
	if v, ok := row["authvalue"]; ok && v != nil {
		t.Errorf("the Web API returned the authvalue: %v", v)
	}
	return row["serviceendpointid"].(string)
}

func stepID(t *testing.T, e *env, name string) string {
	t.Helper()
	_, body := e.webAPI(t, http.MethodGet, "sdkmessageprocessingsteps?$select=sdkmessageprocessingstepid,name", "", "")
	for _, r := range decode(t, body)["value"].([]any) {
		row := r.(map[string]any)
		if row["name"] == name {
			return row["sdkmessageprocessingstepid"].(string)
		}
	}
	t.Fatalf("no step %q in %s", name, body)
	return ""
}

// Connections (an opportunity's stakeholders) get Create, Update and
// Delete steps like the other tables: filtered on and imaging the
// connection columns the validator reads, post-image on Create and Update
// (of Id on Create), pre-image on Delete.
func TestConnectionSteps(t *testing.T) {
	e := newEnv(t)
	e.provision(t, Apply)
	want := "record1id,record1objecttypecode,record1roleid,record2id,record2objecttypecode,record2roleid,statecode"
	for _, tc := range []struct {
		message, filtering, property string
		imageType                    float64
	}{
		{"Create", "", "Id", 1}, {"Update", want, "Target", 1}, {"Delete", "", "Target", 0},
	} {
		id := stepID(t, e, "notatcompany: "+tc.message+" of connection")
		_, body := e.webAPI(t, http.MethodGet, "sdkmessageprocessingsteps("+id+")?$select=filteringattributes,stage,mode,statecode", "", "")
		step := decode(t, body)
		if f, _ := step["filteringattributes"].(string); f != tc.filtering || step["stage"] != float64(40) || step["mode"] != float64(1) {
			t.Errorf("%s of connection: %s", tc.message, body)
		}
		_, body = e.webAPI(t, http.MethodGet, "sdkmessageprocessingstepimages?$select=attributes,imagetype,messagepropertyname,_sdkmessageprocessingstepid_value", "", "")
		found := false
		for _, r := range decode(t, body)["value"].([]any) {
			img := r.(map[string]any)
			if img["_sdkmessageprocessingstepid_value"] != id {
				continue
			}
			found = true
			if img["attributes"] != want || img["imagetype"] != tc.imageType || img["messagepropertyname"] != tc.property {
				t.Errorf("image of %s of connection: %v", tc.message, img)
			}
		}
		if !found {
			t.Errorf("%s of connection has no image", tc.message)
		}
	}
}

func TestCheckFindsDriftAndProvisionRepairs(t *testing.T) {
	e := newEnv(t)
	e.provision(t, Apply)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ids, err := ViewIDs(ctx, e.client, e.cfg.FlagColumn)
	if err != nil || len(ids) != 4 {
		t.Fatalf("view ids %v: %v", ids, err)
	}
	// An admin edits a view's query and disables a step, through the Web API.
	myContacts := ids["My Contacts Not at Company"]
	edited := strings.Replace(contactsFetch(e.cfg.FlagColumn, true), `operator="eq-userid"`, `operator="ne-userid"`, 1)
	if st, body := e.webAPI(t, http.MethodPatch, "savedqueries("+myContacts+")", `{"fetchxml":`+jsonString(edited)+`}`, ""); st != 204 {
		t.Fatalf("edit view: %d %s", st, body)
	}
	update := stepID(t, e, "notatcompany: Update of contact")
	if st, body := e.webAPI(t, http.MethodPatch, "sdkmessageprocessingsteps("+update+")", `{"statecode":1}`, ""); st != 204 {
		t.Fatalf("disable step: %d %s", st, body)
	}
	check := e.provision(t, DryRun)
	drift := check.Drifted()
	var comps []string
	for _, it := range drift {
		comps = append(comps, it.Component+" "+string(it.Action))
	}
	want := []string{"view My Contacts Not at Company update", "step Update of contact update", "publish update"}
	if strings.Join(comps, "|") != strings.Join(want, "|") {
		t.Fatalf("drift = %v, want %v", comps, want)
	}
	if !strings.Contains(drift[1].Detail, "disabled") || !strings.Contains(drift[0].Detail, "query") {
		t.Errorf("details: %+v", drift)
	}
	e.provision(t, Apply)
	if after := e.provision(t, DryRun); len(after.Drifted()) != 0 {
		t.Fatalf("drift after the repair: %+v", after.Drifted())
	}
	_, body := e.webAPI(t, http.MethodGet, "sdkmessageprocessingsteps("+update+")?$select=statecode", "", "")
	if decode(t, body)["statecode"] != float64(0) {
		t.Errorf("step not re-enabled: %s", body)
	}
	_, body = e.webAPI(t, http.MethodGet, "savedqueries("+myContacts+")?$select=fetchxml", "", "")
	if !strings.Contains(decode(t, body)["fetchxml"].(string), "eq-userid") {
		t.Errorf("view not restored: %s", body)
	}
	if p := e.standin.Publishes(); len(p) != 2 || strings.Join(p[1].Entities, ",") != "contact" {
		t.Errorf("publishes: %+v", p)
	}
}

func jsonString(s string) string {
	b := strings.Builder{}
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
