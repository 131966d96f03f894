package state

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/memberkeys"
)

// Crypto-shredding: what a decision says about a member is sealed with
// AES-256-GCM under a data key of that member, kept in the member keys
// stream twice: under the member's key, to seal, and under its own random
// id, to open (the sealed evidence names only that id). Erasing the member
// erases both (overwritten where stored), and with them every copy of the
// evidence, wherever it is (decision stream, audit trail, dead letters),
// without touching those streams.

// dataKey is one member's data key, in the format memberkeys reads.
type dataKey = memberkeys.Key

func keyOfMember(memberKey string) string { return bus.MemberKeySubject(memberKey) }
func keyByID(id string) string            { return bus.MemberKeyIDSubject(id) }

var keyIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// ErrShredded means the member's data key is gone: the member was erased,
// and so was what the evidence said about them.
// It is memberkeys', with which the writer opens the same evidence.
var ErrShredded = memberkeys.ErrShredded

// errMemberGone: a key was asked for a member no longer stored.
var errMemberGone = errors.New("the member is erased or not stored; evaluate again")

// Seal encrypts plaintext under the member's data key, made the first time
// it is needed. aad binds the result to where it is used: Open must be
// given the same.
func (s *Store) Seal(ctx context.Context, memberID string, plaintext, aad []byte) (*eventsv1.SealedEvidence, error) {
	k, err := s.memberDataKey(ctx, memberID)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 12) // the GCM standard nonce size
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return memberkeys.Seal(k, nonce, plaintext, aad)
}

// Open decrypts what Seal sealed; ErrShredded once the member is erased.
func (s *Store) Open(ctx context.Context, sealed *eventsv1.SealedEvidence, aad []byte) ([]byte, error) {
	if !keyIDRE.MatchString(sealed.GetKeyId()) {
		return nil, fmt.Errorf("sealed evidence: key id %q is not one of ours", sealed.GetKeyId())
	}
	var k dataKey
	found, err := s.getKey(ctx, keyByID(sealed.GetKeyId()), &k)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, ErrShredded
	}
	return memberkeys.Open(k, sealed, aad)
}

// memberDataKey returns the member's data key, making it when there is
// none yet.
func (s *Store) memberDataKey(ctx context.Context, memberID string) (dataKey, error) {
	mk := MemberKey(memberID)
	for range 2 {
		var k dataKey
		found, err := s.getKey(ctx, keyOfMember(mk), &k)
		if err != nil || found {
			return k, err
		}
		k = dataKey{ID: randomHex(16), Key: make([]byte, 32)}
		if _, err := rand.Read(k.Key); err != nil {
			return k, fmt.Errorf("data key: %w", err)
		}
		data, err := json.Marshal(k)
		if err != nil {
			return k, err
		}
		if err := s.createKey(ctx, keyByID(k.ID), data); err != nil {
			return k, err
		}
		if err := s.createKey(ctx, keyOfMember(mk), data); errors.Is(err, errKeyExists) {
			// Made by another replica at the same time: use that one.
			if err := s.eraseKey(ctx, keyByID(k.ID)); err != nil {
				return k, err
			}
			continue
		} else if err != nil {
			return k, fmt.Errorf("store data key: %w", err)
		}
		// A key made while the member was being erased would outlive the
		// erasure, which destroys the key after the tombstone is written:
		// so look at the member after making it.
		var m MemberRecord
		found, err = getJSON(ctx, s.members, mk, &m)
		if err != nil {
			return k, err
		}
		if !found || m.Erased {
			if err := s.DestroyMemberKey(ctx, memberID); err != nil {
				return k, err
			}
			return k, errMemberGone
		}
		return k, nil
	}
	return dataKey{}, errors.New("data key: contended")
}

// DestroyMemberKey erases the member's data key: every evidence sealed
// with it is unreadable from then on. Idempotent.
func (s *Store) DestroyMemberKey(ctx context.Context, memberID string) error {
	mk := keyOfMember(MemberKey(memberID))
	var k dataKey
	found, err := s.getKey(ctx, mk, &k)
	if err != nil || !found {
		return err
	}
	if keyIDRE.MatchString(k.ID) {
		if err := s.eraseKey(ctx, keyByID(k.ID)); err != nil {
			return err
		}
	}
	return s.eraseKey(ctx, mk)
}

var errKeyExists = errors.New("data key exists")

func (s *Store) getKey(ctx context.Context, subject string, k *dataKey) (bool, error) {
	m, err := s.keyStream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read data key: %w", err)
	}
	if err := json.Unmarshal(m.Data, k); err != nil {
		return false, fmt.Errorf("decode data key: %w", err)
	}
	return true, nil
}

// createKey stores data on subject unless something is there already.
func (s *Store) createKey(ctx context.Context, subject string, data []byte) error {
	_, err := s.js.PublishMsg(ctx, &nats.Msg{Subject: subject, Data: data}, jetstream.WithExpectLastSequencePerSubject(0))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return errKeyExists
	}
	if err != nil {
		return fmt.Errorf("store data key: %w", err)
	}
	return nil
}

func (s *Store) eraseKey(ctx context.Context, subject string) error {
	if err := eraseSubject(ctx, s.keyStream, subject); err != nil {
		return fmt.Errorf("destroy data key: %w", err)
	}
	return nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
