package cli

import (
	"context"
	"errors"
)

// runServe is not built yet; its issue is open.
func runServe(ctx context.Context, env *Env, args []string) error {
	return errors.New("not available in this build yet")
}
