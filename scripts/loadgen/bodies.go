package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

// The bodies the load sends are the shapes real senders post: Dataverse's
// RemoteExecutionContext (as in scripts/examples) and profile events.

// ref is an EntityReference attribute value.
func ref(table, id string) map[string]any {
	return map[string]any{
		"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts",
		"Id":     id, "KeyAttributes": []any{}, "LogicalName": table, "Name": nil, "RowVersion": nil,
	}
}

func choice(v int) map[string]any {
	return map[string]any{"__type": "OptionSetValue:http://schemas.microsoft.com/xrm/2011/Contracts", "Value": v}
}

func dvDate(t time.Time) string { return fmt.Sprintf("/Date(%d)/", t.UnixMilli()) }

// attrs renders columns as Dataverse's key/value attribute list, in a
// stable order.
func attrs(cols [][2]any) []map[string]any {
	out := make([]map[string]any, 0, len(cols))
	for _, c := range cols {
		out = append(out, map[string]any{"key": c[0], "value": c[1]})
	}
	return out
}

// webhook is a RemoteExecutionContext of message on a row, with the row's
// columns in the Target and the post-image.
func webhook(org, message, table, id, user, operation string, at time.Time, cols [][2]any) ([]byte, error) {
	entity := func() map[string]any {
		return map[string]any{
			"Attributes": attrs(cols), "EntityState": nil, "FormattedValues": []any{}, "Id": id,
			"KeyAttributes": []any{}, "LogicalName": table, "RelatedEntities": []any{}, "RowVersion": nil,
		}
	}
	target := entity()
	target["__type"] = "Entity:http://schemas.microsoft.com/xrm/2011/Contracts"
	body := map[string]any{
		"BusinessUnitId": "e2b9dd85-e89e-e711-8122-000d3aa2331c", "CorrelationId": operation, "Depth": 1,
		"InitiatingUserId": user, "InputParameters": []any{map[string]any{"key": "Target", "value": target}},
		"IsExecutingOffline": false, "IsInTransaction": false, "IsOfflinePlayback": false, "IsolationMode": 1,
		"MessageName": message, "Mode": 1, "OperationCreatedOn": dvDate(at), "OperationId": operation,
		"OrganizationId": org, "OrganizationName": "loadgen", "OutputParameters": []any{},
		"ParentContext": nil, "PostEntityImages": []any{map[string]any{"key": "PostImage", "value": entity()}},
		"PreEntityImages": []any{}, "PrimaryEntityId": id, "PrimaryEntityName": table, "RequestId": nil,
		"SecondaryEntityName": "none", "SharedVariables": []any{}, "Stage": 40, "UserId": user,
	}
	return json.Marshal(body)
}

// population names the rows of a load: contact i, its account, its
// member and its email.
type population struct {
	org, owner string
	run        string // distinguishes the ids of one run from another's
}

func (p population) contactID(i int) string {
	return fmt.Sprintf("c0ad0000-%s-4000-8000-%012d", p.run, i)
}
func (p population) accountID(a int) string {
	return fmt.Sprintf("a0ad0000-%s-4000-8000-%012d", p.run, a)
}
func (p population) memberID(i int) string { return fmt.Sprintf("lg-%s-m%d", p.run, i) }
func (p population) email(i int) string    { return fmt.Sprintf("person.%d.%s@contoso.example", i, p.run) }
func (p population) opID(kind string, i, n int) string {
	return fmt.Sprintf("%08x-%s-4%03x-8000-%012d", i, p.run, n%4096, n)
}

// contactWebhook creates contact i under account a, owned by the sync user.
func (p population) contactWebhook(i, a int, at time.Time) ([]byte, error) {
	id := p.contactID(i)
	return webhook(p.org, "Create", "contact", id, p.owner, p.opID("c", i, 1), at, [][2]any{
		{"contactid", id}, {"firstname", "Person"}, {"lastname", fmt.Sprintf("Load%d", i)},
		{"fullname", fmt.Sprintf("Person Load%d", i)}, {"emailaddress1", p.email(i)},
		{"parentcustomerid", ref("account", p.accountID(a))}, {"ownerid", ref("systemuser", p.owner)},
		{"statecode", choice(0)}, {"modifiedon", dvDate(at)},
	})
}

// accountWebhook names account a, owned by the sync user; n makes the
// operation id of each rename its own.
func (p population) accountWebhook(a int, name string, n int, at time.Time) ([]byte, error) {
	id := p.accountID(a)
	// The website says the same company as the name: an account matches its
	// company by either.
	site := "https://www." + strings.ToLower(strings.Fields(name)[0]) + ".example"
	return webhook(p.org, "Update", "account", id, p.owner, p.opID("a", a, n), at, [][2]any{
		{"accountid", id}, {"name", name}, {"websiteurl", strings.NewReplacer(",", "").Replace(site)},
		{"ownerid", ref("systemuser", p.owner)}, {"modifiedon", dvDate(at)},
	})
}

// Company names: the account is at Contoso; a member who left works at
// Fabrikam.
const (
	companyHere  = "Contoso Ltd"
	companyThere = "Fabrikam, Inc."
)

// profileEvent says where member i works at at: still at Contoso (left
// false; at Fabrikam before) or moved to Fabrikam (left true).
func (p population) profileEvent(i int, id string, left bool, at time.Time) map[string]any {
	contoso := map[string]any{"companyId": "c-contoso", "companyName": companyHere, "title": "Buyer",
		"start": map[string]int{"year": 2019, "month": 3}, "current": !left}
	// Before Contoso the member was at Fabrikam: so an account renamed to
	// Fabrikam is one the member left (a fan-out flags every contact).
	earlier := map[string]any{"companyId": "c-fabrikam", "companyName": companyThere, "title": "Assistant Buyer",
		"start": map[string]int{"year": 2015, "month": 1}, "end": map[string]int{"year": 2019, "month": 2}, "current": false}
	positions := []any{contoso, earlier}
	if left {
		y, m := at.Year(), int(at.Month())
		contoso["end"] = map[string]int{"year": y - 1, "month": m}
		positions = []any{map[string]any{"companyId": "c-fabrikam", "companyName": companyThere, "title": "Head of Buying",
			"start": map[string]int{"year": y, "month": m}, "current": true}, contoso}
	}
	return map[string]any{
		"id": id, "type": "profile.changed", "source": "loadgen", "observedAt": at.UTC().Format(time.RFC3339Nano),
		"data": map[string]any{
			"memberId": p.memberID(i), "firstName": "Person", "lastName": fmt.Sprintf("Load%d", i), "country": "GB",
			"emailSha256": []string{eventsv1.HashEmail(p.email(i))}, "positions": positions,
		},
	}
}

// sign is X-LI-Signature's value for body.
func sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return hex.EncodeToString(mac.Sum(nil))
}

// standinContact is the stand-in's row of contact i: what a PATCH of the
// flag needs to find.
func (p population) standinContact(i, a int) (string, map[string]any) {
	return p.contactID(i), map[string]any{
		"firstname": "Person", "lastname": fmt.Sprintf("Load%d", i), "emailaddress1": p.email(i),
		"_parentcustomerid_value": p.accountID(a), "nac_orgchangestatus": 0,
	}
}

func runID(t time.Time) string { return strings.ToLower(fmt.Sprintf("%04x", t.UnixNano()/1e6%0x10000)) }
