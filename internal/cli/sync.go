package cli

import (
	"context"
	"errors"
)

// runSync is not built yet; its issue is open.
func runSync(ctx context.Context, env *Env, args []string) error {
	return errors.New("not available in this build yet")
}
