// Package memberkeys opens a decision's sealed member evidence outside the
// validator, with the data key the validator keeps in NAC_MEMBER_KEYS (the
// format of validator/state: AES-256-GCM, key {"kid","k"} by id, bound to
// the decision's organization and contact). Once the member is erased the
// key is gone and opening fails with ErrShredded.
package memberkeys

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

// ErrShredded means the member's data key is destroyed: erased evidence.
var ErrShredded = errors.New("the member's data key is destroyed: evidence erased")

// Key is one member's data key as stored.
type Key struct {
	ID  string `json:"kid"`
	Key []byte `json:"k"`
}

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// Opener reads data keys from the member keys stream.
type Opener struct{ Keys jetstream.Stream }

// Bind binds the member keys stream.
func Bind(ctx context.Context, js jetstream.JetStream) (*Opener, error) {
	s, err := js.Stream(ctx, bus.StreamMemberKeys)
	if err != nil {
		return nil, fmt.Errorf("bind the member keys stream: %w", err)
	}
	return &Opener{Keys: s}, nil
}

// OpenMember returns what d's evidence says about the member; nil with no
// error when d carries no sealed part.
func (o *Opener) OpenMember(ctx context.Context, d *eventsv1.Decision) (*eventsv1.MemberEvidence, error) {
	sealed := d.GetEvidence().GetSealed()
	if sealed == nil {
		return nil, nil
	}
	if !keyIDRE.MatchString(sealed.GetKeyId()) {
		return nil, fmt.Errorf("sealed evidence: key id %q is not one of ours", sealed.GetKeyId())
	}
	m, err := o.Keys.GetLastMsgForSubject(ctx, bus.MemberKeyIDSubject(sealed.GetKeyId()))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, ErrShredded
	}
	if err != nil {
		return nil, fmt.Errorf("read data key: %w", err)
	}
	var k Key
	if err := json.Unmarshal(m.Data, &k); err != nil {
		return nil, fmt.Errorf("decode data key: %w", err)
	}
	data, err := Open(k, sealed, EvidenceAAD(d.GetOrganizationId(), d.GetContactId()))
	if err != nil {
		return nil, err
	}
	var me eventsv1.MemberEvidence
	if err := proto.Unmarshal(data, &me); err != nil {
		return nil, fmt.Errorf("decode member evidence: %w", err)
	}
	return &me, nil
}

// EvidenceAAD binds sealed evidence to its decision's organization and contact.
func EvidenceAAD(org, contact string) []byte { return []byte(org + "|" + contact) }

func boundAAD(keyID string, aad []byte) []byte {
	return append([]byte("nac.sealed.v1|"+keyID+"|"), aad...)
}

// Seal encrypts plaintext under k as the validator does.
func Seal(k Key, nonce, plaintext, aad []byte) (*eventsv1.SealedEvidence, error) {
	gcm, err := newGCM(k.Key)
	if err != nil {
		return nil, err
	}
	if len(nonce) != gcm.NonceSize() {
		return nil, errors.New("seal: bad nonce")
	}
	return &eventsv1.SealedEvidence{KeyId: k.ID, Nonce: nonce, Ciphertext: gcm.Seal(nil, nonce, plaintext, boundAAD(k.ID, aad))}, nil
}

// Open decrypts what Seal sealed under k.
func Open(k Key, sealed *eventsv1.SealedEvidence, aad []byte) ([]byte, error) {
	gcm, err := newGCM(k.Key)
	if err != nil {
		return nil, err
	}
	if len(sealed.GetNonce()) != gcm.NonceSize() {
		return nil, errors.New("sealed evidence: bad nonce")
	}
	out, err := gcm.Open(nil, sealed.GetNonce(), sealed.GetCiphertext(), boundAAD(k.ID, aad))
	if err != nil {
		return nil, fmt.Errorf("sealed evidence: %w", err)
	}
	return out, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("data key: %w", err)
	}
	return cipher.NewGCM(block)
}
