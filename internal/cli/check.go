package cli

import (
	"context"
	"errors"
)

// runCheck is not built yet; its issue is open.
func runCheck(ctx context.Context, env *Env, args []string) error {
	return errors.New("not available in this build yet")
}
