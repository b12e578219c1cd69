package cli

import (
	"context"
	"errors"
)

// runHosts is not built yet; its issue is open.
func runHosts(ctx context.Context, env *Env, args []string) error {
	return errors.New("not available in this build yet")
}
