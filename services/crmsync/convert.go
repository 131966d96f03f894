package crmsync

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// MessageSync is the message name of a change a table read produced, so
// metrics and the audit can tell it from a webhook's.
const MessageSync = "Sync"

// lookups are the lookup columns the validator keeps, with the table a
// lookup points at when Dataverse does not annotate it.
var lookups = map[string]string{
	"parentcustomerid": "account", "ownerid": "systemuser", "parentcontactid": "contact",
	"customerid": "account", "parentaccountid": "account",
	// A connection's ends may be of any table: the annotation, else the
	// end's object type code, names it.
	"record1id": "", "record2id": "", "record1roleid": "connectionrole", "record2roleid": "connectionrole",
}

// objectTypeTables are the tables of the object type codes of a
// connection's ends the validator tells apart.
var objectTypeTables = map[float64]string{1: "account", 2: "contact", 3: "opportunity", 8: "systemuser"}

// choices are the choice columns besides the flag.
var choices = map[string]bool{"statecode": true, "statuscode": true,
	"record1objecttypecode": true, "record2objecttypecode": true}

const lookupAnnotation = "@Microsoft.Dynamics.CRM.lookuplogicalname"

// entitySets are the Web API collections of the tables the validator keeps.
var entitySets = map[string]string{
	"contact": "contacts", "account": "accounts", "opportunity": "opportunities", "systemuser": "systemusers",
	"connection": "connections",
}

// selectOf is the $select of a table read: every column the validator
// reads (lookups as _x_value), and the row's version.
func selectOf(table string, cols crmschema.Columns) []string {
	var sel []string
	for _, c := range cols.Read(table) {
		if _, ok := lookups[c]; ok {
			c = "_" + c + "_value"
		}
		sel = append(sel, c)
	}
	sel = append(sel, "modifiedon", "versionnumber", "_modifiedby_value")
	slices.Sort(sel)
	return slices.Compact(sel)
}

var etagRE = regexp.MustCompile(`^W/"(\d+)"$`)

// rowVersion is the row's versionnumber (or its etag's), 0 when neither.
func rowVersion(row map[string]any) int64 {
	if v, ok := row["versionnumber"].(float64); ok && v > 0 {
		return int64(v)
	}
	if s, ok := row["versionnumber"].(string); ok {
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n
		}
	}
	if m := etagRE.FindStringSubmatch(fmt.Sprint(row["@odata.etag"])); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	return 0
}

// rowInfo is what a read row says about itself.
type rowInfo struct {
	id         string
	version    int64
	modifiedOn time.Time // zero when the row has none
	modifiedBy string
}

func infoOf(table string, row map[string]any) (rowInfo, error) {
	id, _ := row[table+"id"].(string)
	id = strings.ToLower(id)
	if !dataverse.IsGUID(id) {
		return rowInfo{}, fmt.Errorf("%s row without a GUID in %sid", table, table)
	}
	info := rowInfo{id: id, version: rowVersion(row)}
	if s, ok := row["modifiedon"].(string); ok && s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return rowInfo{}, fmt.Errorf("%s %s: modifiedon %q: %w", table, id, s, err)
		}
		info.modifiedOn = t
	}
	if s, ok := row["_modifiedby_value"].(string); ok && dataverse.IsGUID(s) {
		info.modifiedBy = strings.ToLower(s)
	}
	return info, nil
}

// changeOf turns a row the Web API returned into the CrmChange a webhook
// with a full post-image would be: every column the validator reads (null
// included), the row's modifiedon as its version. eventID "" derives the
// id from the row's versionnumber, so a re-read of an unchanged row is the
// same event.
func changeOf(org, table string, row map[string]any, cols crmschema.Columns, readAt time.Time, message, eventID string) (*eventsv1.CrmChange, rowInfo, error) {
	info, err := infoOf(table, row)
	if err != nil {
		return nil, info, err
	}
	ch := &eventsv1.CrmChange{
		OrganizationId: org, Table: table, RowId: info.id, Operation: eventsv1.Operation_OPERATION_UPDATE,
		Columns: map[string]*eventsv1.Value{}, MessageName: message, UserId: info.modifiedBy,
		OccurredAt: timestamppb.New(readAt), ReceivedAt: timestamppb.New(readAt),
	}
	if !info.modifiedOn.IsZero() {
		ch.RowModifiedAt = timestamppb.New(info.modifiedOn)
	}
	for _, c := range cols.Read(table) {
		ch.Columns[c] = valueOf(c, row, cols)
		ch.ChangedColumns = append(ch.ChangedColumns, c)
	}
	ch.EventId = eventID
	if ch.EventId == "" {
		v := strconv.FormatInt(info.version, 10)
		if info.version == 0 {
			v = "t" + strconv.FormatInt(info.modifiedOn.Unix(), 10)
		}
		ch.EventId = "sync." + org + "." + table + "." + info.id + "." + v
	}
	return ch, info, nil
}

// deleteOf is the change of a tombstone a delta read returned.
func deleteOf(org, table, id, link string, readAt time.Time) *eventsv1.CrmChange {
	sum := sha256.Sum256([]byte(link))
	return &eventsv1.CrmChange{
		EventId:        "sync." + org + "." + table + "." + id + ".del." + hex.EncodeToString(sum[:8]),
		OrganizationId: org, Table: table, RowId: id, Operation: eventsv1.Operation_OPERATION_DELETE,
		MessageName: MessageSync, OccurredAt: timestamppb.New(readAt), ReceivedAt: timestamppb.New(readAt),
	}
}

// valueOf is column c of row as the typed value ingest would have made of
// the webhook's attribute.
func valueOf(c string, row map[string]any, cols crmschema.Columns) *eventsv1.Value {
	if target, ok := lookups[c]; ok {
		id, _ := row["_"+c+"_value"].(string)
		if !dataverse.IsGUID(id) {
			return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}}
		}
		if t, ok := row["_"+c+"_value"+lookupAnnotation].(string); ok && t != "" {
			target = t
		} else if target == "" {
			otc, _ := row[strings.TrimSuffix(c, "id")+"objecttypecode"].(float64)
			target = objectTypeTables[otc]
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Reference{Reference: &eventsv1.EntityReference{Table: target, Id: strings.ToLower(id)}}}
	}
	switch v := row[c].(type) {
	case string:
		return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: v}}
	case bool:
		return &eventsv1.Value{Kind: &eventsv1.Value_Boolean{Boolean: v}}
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<31 {
			if c == cols.Flag || c == cols.LinkedInStatus || choices[c] {
				return &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: int32(v)}}
			}
			return &eventsv1.Value{Kind: &eventsv1.Value_Integer{Integer: int64(v)}}
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Decimal{Decimal: v}}
	}
	return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}}
}

// flagOf is the flag column's value in a read row; null is No Feedback.
func flagOf(row map[string]any, flag string) int {
	if v, ok := row[flag].(float64); ok {
		return int(v)
	}
	return 0
}
