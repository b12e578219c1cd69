package cli

import (
	"errors"

	"github.com/detourhq/detour/internal/rules"
)

// rewriteManifest is wired once internal/manifest lands.
func rewriteManifest(env *Env, set *rules.Set, file string) error {
	return errors.New("rewrite -f is not available in this build yet")
}
