// Command nac-devstack runs all of notatcompany in one process on embedded
// defaults: `make run`.
package main

import (
	"context"
	"io"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

func main() { lifecycle.Main("devstack", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := devstack.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	stack, err := devstack.Open(ctx, cfg, getenv, stdout)
	if err != nil {
		return err
	}
	stack.Banner(stdout)
	return stack.Run(ctx)
}
