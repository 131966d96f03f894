package eventsv1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// HashEmail is the form in which the contracts carry an email address
// (ProfileChange.email_sha256): the lower-case hex SHA-256 of the trimmed,
// lower-cased address. Profile sources and the validator must agree on it.
func HashEmail(email string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(email))))
	return hex.EncodeToString(sum[:])
}
