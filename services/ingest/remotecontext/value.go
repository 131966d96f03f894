package remotecontext

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// dateRE matches the WCF JSON date form "/Date(ms)/" and "/Date(ms+hhmm)/".
// The milliseconds are UTC; the offset only says where the writer was.
var dateRE = regexp.MustCompile(`^/Date\((-?\d+)([+-]\d{4})?\)/$`)

// The range of a protobuf Timestamp (years 1-9999), in Unix milliseconds.
const (
	minDateMillis = -62135596800000
	maxDateMillis = 253402300799999
)

// parseDate parses "/Date(ms)/" (with or without offset). ok is false for
// a string of another form; err is set for a date beyond what a Timestamp
// holds, which no real row has.
func parseDate(s string) (t time.Time, ok bool, err error) {
	if !strings.HasPrefix(s, "/Date(") {
		return time.Time{}, false, nil
	}
	m := dateRE.FindStringSubmatch(s)
	if m == nil {
		return time.Time{}, false, nil
	}
	ms, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || ms < minDateMillis || ms > maxDateMillis {
		return time.Time{}, true, fmt.Errorf("date %s is outside years 1-9999", s)
	}
	return time.UnixMilli(ms).UTC(), true, nil
}

// rawObject is any JSON object Dataverse puts in a context: an Entity, an
// EntityReference, an OptionSetValue, Money or an EntityCollection. Decoding
// into one struct, rather than into maps, keeps parsing to a single pass.
type rawObject struct {
	Type        string          `json:"__type"`
	LogicalName *string         `json:"LogicalName"`
	ID          string          `json:"Id"`
	Name        *string         `json:"Name"`
	Value       json.RawMessage `json:"Value"`
	Attributes  *[]rawAttr      `json:"Attributes"`
	Entities    []rawObject     `json:"Entities"`
	EntityName  string          `json:"EntityName"`
}

// rawAttr is one attribute of an entity; its value is converted while the
// entity is decoded.
type rawAttr struct {
	Key   string   `json:"key"`
	Value rawValue `json:"value"`
}

// rawValue converts a column value as it is decoded, keeping the error to
// report it with the attribute's place.
type rawValue struct {
	v   *eventsv1.Value
	err error
}

func (r *rawValue) UnmarshalJSON(b []byte) error {
	r.v, r.err = convertRaw(b)
	return nil
}

// typeName returns the part of a "__type" before the contract namespace:
// "EntityReference:http://schemas..." → "EntityReference".
func (o *rawObject) typeName() string {
	name, _, _ := strings.Cut(o.Type, ":")
	return name
}

// convertRaw turns one JSON value of a column into a typed Value.
func convertRaw(b []byte) (*eventsv1.Value, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("empty value")
	}
	switch b[0] {
	case 'n':
		return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}}, nil
	case 't', 'f':
		return &eventsv1.Value{Kind: &eventsv1.Value_Boolean{Boolean: b[0] == 't'}}, nil
	case '"':
		var x string
		if bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
			x = string(b[1 : len(b)-1]) // no escapes: the common case, no decoder
		} else if err := json.Unmarshal(b, &x); err != nil {
			return nil, err
		}
		return convertString(x)
	case '[':
		// A multi-select choice column is an array of OptionSetValue.
		var items []rawObject
		if err := json.Unmarshal(b, &items); err != nil {
			return nil, fmt.Errorf("array: %w", err)
		}
		choices := &eventsv1.Choices{Values: make([]int32, 0, len(items))}
		for i := range items {
			if items[i].typeName() != "OptionSetValue" {
				return nil, fmt.Errorf("array item %d: want OptionSetValue", i)
			}
			n, err := int32Of(items[i].Value)
			if err != nil {
				return nil, fmt.Errorf("array item %d: %w", i, err)
			}
			choices.Values = append(choices.Values, n)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Choices{Choices: choices}}, nil
	case '{':
		var o rawObject
		if err := json.Unmarshal(b, &o); err != nil {
			return nil, fmt.Errorf("object: %w", err)
		}
		return convertObject(&o)
	default:
		return convertNumber(json.Number(b))
	}
}

func convertString(x string) (*eventsv1.Value, error) {
	if t, ok, err := parseDate(x); err != nil {
		return nil, err
	} else if ok {
		return &eventsv1.Value{Kind: &eventsv1.Value_DateTime{DateTime: timestamppb.New(t)}}, nil
	}
	if dataverse.IsGUID(x) {
		return &eventsv1.Value{Kind: &eventsv1.Value_Guid{Guid: strings.ToLower(x)}}, nil
	}
	return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: x}}, nil
}

func convertNumber(n json.Number) (*eventsv1.Value, error) {
	if i, err := n.Int64(); err == nil {
		return &eventsv1.Value{Kind: &eventsv1.Value_Integer{Integer: i}}, nil
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) {
		return nil, fmt.Errorf("number %q out of range", n.String())
	}
	return &eventsv1.Value{Kind: &eventsv1.Value_Decimal{Decimal: f}}, nil
}

func convertObject(o *rawObject) (*eventsv1.Value, error) {
	switch o.typeName() {
	case "EntityReference":
		ref, err := convertReference(o)
		if err != nil {
			return nil, err
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Reference{Reference: ref}}, nil
	case "OptionSetValue":
		n, err := int32Of(o.Value)
		if err != nil {
			return nil, fmt.Errorf("OptionSetValue: %w", err)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: n}}, nil
	case "Money":
		v, err := convertNumber(json.Number(bytes.TrimSpace(o.Value)))
		if err != nil || v.GetKind() == nil {
			return nil, fmt.Errorf("Money: Value is not a number")
		}
		f := v.GetDecimal()
		if i, ok := v.GetKind().(*eventsv1.Value_Integer); ok {
			f = float64(i.Integer)
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Money{Money: f}}, nil
	case "EntityCollection":
		coll := &eventsv1.EntityCollection{Table: o.EntityName}
		for i := range o.Entities {
			e, err := convertEntity(&o.Entities[i], time.Time{})
			if err != nil {
				return nil, fmt.Errorf("EntityCollection item %d: %w", i, err)
			}
			coll.Entities = append(coll.Entities, e.proto())
		}
		return &eventsv1.Value{Kind: &eventsv1.Value_Collection{Collection: coll}}, nil
	case "Entity":
		e, err := convertEntity(o, time.Time{})
		if err != nil {
			return nil, err
		}
		coll := &eventsv1.EntityCollection{Table: e.Table, Entities: []*eventsv1.Entity{e.proto()}}
		return &eventsv1.Value{Kind: &eventsv1.Value_Collection{Collection: coll}}, nil
	case "":
		// Untyped objects: an image-style entity or a bare reference.
		if o.Attributes != nil {
			o.Type = "Entity:"
			return convertObject(o)
		}
		if o.LogicalName != nil {
			o.Type = "EntityReference:"
			return convertObject(o)
		}
		return nil, fmt.Errorf("object without __type")
	default:
		return nil, fmt.Errorf("unsupported __type %q", o.typeName())
	}
}

func convertReference(o *rawObject) (*eventsv1.EntityReference, error) {
	if o.LogicalName == nil || *o.LogicalName == "" {
		return nil, fmt.Errorf("EntityReference without LogicalName")
	}
	if !IsLogicalName(*o.LogicalName) {
		return nil, fmt.Errorf("EntityReference LogicalName %q is not a table's logical name", *o.LogicalName)
	}
	if !dataverse.IsGUID(o.ID) {
		// A lookup names a row by GUID; anything else would become a key
		// in a subject or a URL later.
		return nil, fmt.Errorf("EntityReference Id %q is not a GUID", truncate(o.ID))
	}
	ref := &eventsv1.EntityReference{Table: *o.LogicalName, Id: strings.ToLower(o.ID)}
	if o.Name != nil {
		ref.Name = *o.Name
	}
	return ref, nil
}

// IsLogicalName reports whether s can be a Dataverse table's logical name:
// lower-case ASCII letters, digits and '_', starting with a letter.
func IsLogicalName(s string) bool {
	if len(s) == 0 || len(s) > 128 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// truncate shortens a value quoted in an error.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func int32Of(raw json.RawMessage) (int32, error) {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("Value is not a 32-bit integer")
	}
	return int32(n), nil
}
