// Command nac-devstack runs all of notatcompany in one process on embedded
// defaults: `make run`.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/notatcompany/notatcompany/services/devstack"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

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
