package validator

import (
	"context"

	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

// Build is the composition root of the validator, for its own process and
// the devstack alike: its durable consumers' loops on env's JetStream,
// settling by the declared topology's retry policies.
func Build(ctx context.Context, cfg Config, env lifecycle.Env) (lifecycle.Parts, error) {
	loops, err := workers(ctx, cfg, env.Topology, env.JS, env.Log, env.Registerer)
	if err != nil {
		return lifecycle.Parts{}, err
	}
	return lifecycle.Parts{Workers: loops}, nil
}
