package dataverse

import (
	"fmt"
	"regexp"
	"strings"
)

// Resource is a path under the Web API root, built only from validated
// names and keys, so nothing from configuration or a response can change
// which resource a request reaches.
type Resource struct{ path string }

func (r Resource) String() string { return r.path }

var (
	logicalNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,99}$`)
	operationRE   = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,99}$`)
	metadataCast  = regexp.MustCompile(`^[A-Z][A-Za-z]{0,99}AttributeMetadata$`)
)

// IsLogicalName reports whether s can be a table, entity set or column
// logical name.
func IsLogicalName(s string) bool { return logicalNameRE.MatchString(s) }

// Set is an entity set ("contacts").
func Set(name string) (Resource, error) {
	if !IsLogicalName(name) {
		return Resource{}, fmt.Errorf("%w: entity set %s is not a logical name", ErrInvalidRequest, quote(name))
	}
	return Resource{name}, nil
}

// RowOf is one row of an entity set: contacts(<id>).
func RowOf(set, id string) (Resource, error) {
	s, err := Set(set)
	if err != nil {
		return Resource{}, err
	}
	if err := checkGUID(set+" id", id); err != nil {
		return Resource{}, err
	}
	return Resource{s.path + "(" + strings.ToLower(id) + ")"}, nil
}

// Operation is an unbound action or function: PublishXml, WhoAmI.
func Operation(name string) (Resource, error) {
	if !operationRE.MatchString(name) {
		return Resource{}, fmt.Errorf("operation %q: not an action or function name", name)
	}
	return Resource{name}, nil
}

// Attributes is the column definitions of a table:
// EntityDefinitions(LogicalName='contact')/Attributes.
func Attributes(table string) (Resource, error) {
	if !IsLogicalName(table) {
		return Resource{}, fmt.Errorf("table %q: not a logical name", table)
	}
	return Resource{"EntityDefinitions(LogicalName='" + table + "')/Attributes"}, nil
}

// Attribute is one column definition, cast to a metadata type when cast
// is set ("PicklistAttributeMetadata").
func Attribute(table, column, cast string) (Resource, error) {
	attrs, err := Attributes(table)
	if err != nil {
		return Resource{}, err
	}
	if !IsLogicalName(column) {
		return Resource{}, fmt.Errorf("column %q: not a logical name", column)
	}
	p := attrs.path + "(LogicalName='" + column + "')"
	if cast != "" {
		if !metadataCast.MatchString(cast) {
			return Resource{}, fmt.Errorf("metadata type %q: not an attribute metadata type", cast)
		}
		p += "/Microsoft.Dynamics.CRM." + cast
	}
	return Resource{p}, nil
}

// Quote renders s as an OData string literal for $filter.
func Quote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
