package memberkeys

import (
	"bytes"
	"testing"
)

func TestSealedEvidenceOpensOnlyWhereItWasSealed(t *testing.T) {
	k := Key{ID: "0123456789abcdef0123456789abcdef", Key: bytes.Repeat([]byte{3}, 32)}
	sealed, err := Seal(k, bytes.Repeat([]byte{1}, 12), []byte("member"), EvidenceAAD("org", "contact"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Open(k, sealed, EvidenceAAD("org", "contact")); err != nil || string(got) != "member" {
		t.Fatalf("Open = %q, %v; want the plaintext", got, err)
	}
	if _, err := Open(k, sealed, EvidenceAAD("org", "other")); err == nil {
		t.Error("evidence moved to another contact opened")
	}
	other := Key{ID: k.ID, Key: bytes.Repeat([]byte{4}, 32)}
	if _, err := Open(other, sealed, EvidenceAAD("org", "contact")); err == nil {
		t.Error("evidence opened with another key")
	}
	if _, err := Seal(k, []byte{1}, nil, nil); err == nil {
		t.Error("Seal took a short nonce")
	}
}
