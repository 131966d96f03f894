// Command nac-devstack runs all of notatcompany in one process on embedded
// defaults: `make run`. `nac-devstack clean` removes its data directory
// instead: `make clean`.
package main

import (
	"context"
	"io"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

func main() { lifecycle.Main("devstack", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	clean := len(args) > 0 && args[0] == "clean"
	if clean {
		args = args[1:]
	}
	cfg, err := devstack.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	if clean {
		return devstack.Clean(cfg.DataDir, stdout)
	}
	stack, err := devstack.Open(ctx, cfg, getenv, stdout)
	if err != nil {
		return err
	}
	stack.Banner(stdout)
	return stack.Run(ctx)
}
