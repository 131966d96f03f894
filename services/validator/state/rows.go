// Package state is the validator's materialized view of the CRM and of the
// profile sources, kept in JetStream KV. Every update is compare-and-set on
// the key's revision and never moves a row backwards: a column keeps the
// value of the newest change that set it, whatever order changes arrive in.
package state

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// Cell is one column value with the version (unix ms) of the change that set it.
type Cell struct {
	V  string `json:"v"`
	At int64  `json:"t"`
}

// Row is a CRM row reduced to the columns the validator uses.
//
// A row is the same whatever order its changes were applied in: each
// column holds the newest value set after the newest delete, DeletedAt is
// the newest delete and LiveAt the newest other change after it.
type Row struct {
	Table     string `json:"tb"`
	ID        string `json:"id"`
	Deleted   bool   `json:"del,omitempty"`
	DeletedAt int64  `json:"delt,omitempty"`
	// LiveAt is the version of the newest change, other than a delete,
	// newer than DeletedAt; 0 when there is none.
	LiveAt int64           `json:"live,omitempty"`
	Cols   map[string]Cell `json:"c,omitempty"`
}

// Columns names the organization-specific columns the validator reads;
// the standard ones are crmschema's, the one list provisioning registers too.
type Columns = crmschema.Columns

// Tracked reports whether the validator keeps rows of table.
func Tracked(table string) bool { return crmschema.Tracked(table) }

// cellValue renders a typed column value as the string a Row keeps.
func cellValue(v *eventsv1.Value) (string, bool) {
	switch k := v.GetKind().(type) {
	case *eventsv1.Value_Null:
		return "", true
	case *eventsv1.Value_String_:
		return k.String_, true
	case *eventsv1.Value_Guid:
		return k.Guid, true
	case *eventsv1.Value_Reference:
		return k.Reference.GetTable() + ":" + k.Reference.GetId(), true
	case *eventsv1.Value_Choice:
		return strconv.Itoa(int(k.Choice)), true
	case *eventsv1.Value_Integer:
		return strconv.FormatInt(k.Integer, 10), true
	case *eventsv1.Value_Boolean:
		return strconv.FormatBool(k.Boolean), true
	case *eventsv1.Value_DateTime:
		return k.DateTime.AsTime().UTC().Format(time.RFC3339), true
	default:
		return "", false
	}
}

// MaxClockSkew is how far past its receipt a change's own time may be:
// Dataverse's clock is not ours. A version beyond is taken as received_at
// + MaxClockSkew, so that one change dated in the far future holds a row
// for at most that long against later real changes, instead of for ever.
//
// Bounding versions, rather than ordering by arrival, keeps what event
// time is for: a late or redelivered change still loses to a newer one.
const MaxClockSkew = 2 * time.Minute

// Version is the version of a change: the row's modifiedon, else when the
// operation happened, else when it was received; never later than
// received_at + MaxClockSkew when the change says when it was received.
func Version(ch *eventsv1.CrmChange) int64 {
	var v int64
	switch {
	case ch.GetRowModifiedAt() != nil:
		v = ch.GetRowModifiedAt().AsTime().UnixMilli()
	case ch.GetOccurredAt() != nil:
		v = ch.GetOccurredAt().AsTime().UnixMilli()
	default:
		return ch.GetReceivedAt().AsTime().UnixMilli()
	}
	if r := ch.GetReceivedAt(); r != nil {
		v = min(v, r.AsTime().Add(MaxClockSkew).UnixMilli())
	}
	return v
}

// Apply folds change ch into row (nil for a row not seen yet) and returns
// the new row and whether a value, or whether the row is deleted, changed.
// Columns older than what the row holds are left alone, so duplicates and
// late changes are harmless: the result does not depend on the order
// changes arrive in. A delete drops the columns set before it, and changes
// from before a delete are ignored, even after the row is restored by a
// newer change. The new row may differ from row (a newer version of the
// same value) even when nothing is reported changed; store it all the same.
func Apply(row *Row, ch *eventsv1.CrmChange, extraCols ...string) (*Row, bool) {
	v := Version(ch)
	next := &Row{Table: ch.GetTable(), ID: ch.GetRowId(), Cols: map[string]Cell{}}
	if row != nil {
		next.Deleted, next.DeletedAt, next.LiveAt = row.Deleted, row.DeletedAt, row.LiveAt
		maps.Copy(next.Cols, row.Cols)
	}
	if ch.GetOperation() == eventsv1.Operation_OPERATION_DELETE {
		if next.predates(v) {
			return next, false
		}
		cols, wasDeleted := len(next.Cols), next.Deleted
		next.DeletedAt = v
		next.forget(v)
		next.Deleted = next.LiveAt == 0
		return next, row == nil || next.Deleted != wasDeleted || len(next.Cols) != cols
	}
	if next.predates(v) {
		return next, false // a change from before the delete
	}
	changed := false
	if next.Deleted {
		next.Deleted, changed = false, true
	}
	next.LiveAt = max(next.LiveAt, v)
	for _, col := range append(crmschema.Kept(ch.GetTable()), extraCols...) {
		val, ok := ch.GetColumns()[col]
		if !ok {
			continue
		}
		s, ok := cellValue(val)
		if !ok {
			continue
		}
		old, seen := next.Cols[col]
		// The newer version wins; of two equal versions, the greater value,
		// so that the order of arrival never decides.
		if seen && (old.At > v || old.At == v && old.V >= s) {
			continue
		}
		changed = changed || old.V != s
		next.Cols[col] = Cell{V: s, At: v}
	}
	return next, changed
}

// predates reports whether a change at version v is from before the row's
// newest delete (a delete wins over a change of the same version).
func (r *Row) predates(v int64) bool {
	return (r.Deleted || r.DeletedAt != 0) && v <= r.DeletedAt
}

// forget drops what was set at or before version v, a delete's.
func (r *Row) forget(v int64) {
	for k, c := range r.Cols {
		if c.At <= v {
			delete(r.Cols, k)
		}
	}
	if r.LiveAt <= v {
		r.LiveAt = 0
	}
}

func (r *Row) get(col string) string { return r.Cols[col].V }

// ref returns the id of a lookup column when it points at table.
func (r *Row) ref(col, table string) string {
	t, id, ok := strings.Cut(r.get(col), ":")
	if !ok || t != table {
		return ""
	}
	return id
}

// Owner is the system user owning the row, or "" (a team, or unknown).
func (r *Row) Owner() string { return r.ref("ownerid", "systemuser") }

// Contact is the decision's view of a contact row.
func (r *Row) Contact(cols Columns) decide.Contact {
	c := decide.Contact{
		ID: r.ID, FirstName: r.get("firstname"), LastName: r.get("lastname"),
		Title: r.get("jobtitle"), Country: r.get("address1_country"),
		AccountID: r.ref("parentcustomerid", "account"),
		Active:    !r.Deleted && (r.get("statecode") == "" || r.get("statecode") == "0"),
	}
	if cols.ProfileURL != "" {
		c.ProfileURL = r.get(cols.ProfileURL)
	}
	if cols.MemberID != "" {
		c.MemberID = r.get(cols.MemberID)
	}
	if n, err := strconv.Atoi(r.get(cols.Flag)); err == nil {
		c.Flag = n
	}
	if cols.LinkedInStatus != "" {
		c.LinkedInStatus, _ = strconv.Atoi(r.get(cols.LinkedInStatus))
	}
	c.CreatedOn, _ = time.Parse(time.RFC3339, r.get("createdon"))
	for _, col := range []string{"emailaddress1", "emailaddress2", "emailaddress3"} {
		if e := r.get(col); e != "" {
			c.EmailHashes = append(c.EmailHashes, eventsv1.HashEmail(e))
			if d := decide.EmailDomain(e); d != "" && !slices.Contains(c.EmailDomains, d) {
				c.EmailDomains = append(c.EmailDomains, d)
			}
		}
	}
	slices.Sort(c.EmailHashes)
	c.EmailHashes = slices.Compact(c.EmailHashes)
	return c
}

// Account is the decision's view of an account row.
func (r *Row) Account(cols Columns) decide.Account {
	a := decide.Account{ID: r.ID, Name: r.get("name"), Website: r.get("websiteurl")}
	if cols.CompanyID != "" {
		a.CompanyID = r.get(cols.CompanyID)
	}
	return a
}

// LinkedContacts are the contacts an opportunity row links to: its
// contact, and its customer when that is a contact.
func (r *Row) LinkedContacts() []string {
	if r == nil || r.Deleted {
		return nil
	}
	var ids []string
	for _, col := range []string{"parentcontactid", "customerid"} {
		if id := r.ref(col, "contact"); id != "" && !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// Disabled reports whether a system user row says the user is disabled.
func (r *Row) Disabled() bool { return r != nil && !r.Deleted && r.get("isdisabled") == "true" }
