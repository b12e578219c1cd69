// Command detour rewrites Kubernetes Pod images to mirrors: an admission
// webhook, an offline rewriter, a mirror sync tool and node config generator,
// all driven by one rule set. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/detourhq/detour/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
