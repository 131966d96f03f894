package validator

import (
	"errors"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/memberkeys"
)

// The writer opens sealed evidence with memberkeys, not with the
// validator's store: the two must agree on the key format, and on the
// erasure.
func TestMemberKeysOpensWhatTheValidatorSealed(t *testing.T) {
	t.Parallel()
	p, before, kept := erasureScenario(t)
	o, err := memberkeys.Bind(p.ctx, p.js)
	if err != nil {
		t.Fatal(err)
	}
	m, err := o.OpenMember(p.ctx, kept)
	if err != nil || m.GetMemberId() != keptMember || m.GetCurrentPosition().GetCompanyName() != "US Navy" {
		t.Errorf("kept member's evidence = %v, %v; want it opened", m, err)
	}
	if m, err := o.OpenMember(p.ctx, before); !errors.Is(err, memberkeys.ErrShredded) || m != nil {
		t.Errorf("erased member's evidence = %v, %v; want ErrShredded", m, err)
	}
}
