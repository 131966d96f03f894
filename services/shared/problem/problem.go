// Package problem writes RFC 9457 problem details (application/problem+json),
// the one error shape of every notatcompany HTTP surface.
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of a problem details document.
const ContentType = "application/problem+json"

// Details is an RFC 9457 problem details object, extended with the invalid
// fields so that a client can tell exactly which input was refused and why.
type Details struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Errors   []FieldProblem `json:"errors,omitempty"`
}

// FieldProblem names one invalid field (a JSON pointer) and the reason.
type FieldProblem struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// FieldError is the error a parser of outside input returns for one
// invalid field (a JSON pointer) and the reason; a problem lists it as a
// FieldProblem.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// typeBase prefixes the problem type URIs; they name the problem kinds that
// api/openapi.yaml documents.
const typeBase = "https://notatcompany.dev/problems/"

// New returns problem details of the given kind ("invalid-body",
// "unauthorized", ...) for status, with a human-readable detail.
func New(status int, kind, detail string) Details {
	return Details{
		Type:   typeBase + kind,
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	}
}

// Write sends p as the response, with its status code.
func Write(w http.ResponseWriter, r *http.Request, p Details) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
