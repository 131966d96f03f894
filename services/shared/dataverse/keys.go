package dataverse

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// ErrInvalidRequest marks a request the client refused to build: a key that
// is not a GUID, or a table or column name that is not an identifier. It is
// permanent (retrying sends the same thing) and nothing was sent: a value
// taken from a message must never reshape a URL or a $batch part.
var ErrInvalidRequest = errors.New("dataverse: invalid request, not sent")

// identifierRE matches Dataverse logical and entity set names, which are
// lower case ("contacts", "nac_orgchangestatus", "_parentcustomerid_value").
var identifierRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,127}$`)

// IsGUID reports whether s is a GUID in its canonical 8-4-4-4-12 form, the
// only key form the client puts in a path: contacts(<id>). Ingest checks
// every string value of a webhook with it, so it is written out, not a
// regexp.
func IsGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range 36 {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func checkGUID(what, s string) error {
	if !IsGUID(s) {
		return fmt.Errorf("%w: %s %s is not a GUID", ErrInvalidRequest, what, quote(s))
	}
	return nil
}

func checkIdentifier(what, s string) error {
	if !identifierRE.MatchString(s) {
		return fmt.Errorf("%w: %s %s is not a lower-case identifier", ErrInvalidRequest, what, quote(s))
	}
	return nil
}

// quote shows a refused value safely in an error (and so in logs): escaped,
// and cut short.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(s[:max]) + "…"
	}
	return strconv.Quote(s)
}

// Validate reports why w cannot be sent, wrapping ErrInvalidRequest.
func (w FlagWrite) Validate() error {
	if err := checkGUID("contact id", w.ContactID); err != nil {
		return err
	}
	for col, v := range w.Also {
		if err := checkIdentifier("column", col); err != nil {
			return err
		}
		if col == w.Column {
			return fmt.Errorf("%w: column %s is the flag's", ErrInvalidRequest, quote(col))
		}
		switch v.(type) {
		case nil, string, float64, int, bool:
		default:
			return fmt.Errorf("%w: column %s: a %T is not a column value", ErrInvalidRequest, quote(col), v)
		}
	}
	return checkIdentifier("column", w.Column)
}
