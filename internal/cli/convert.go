package cli

import "errors"

// runConfigConvert is wired once internal/convert lands.
func runConfigConvert(env *Env, args []string) error {
	return errors.New("config convert is not available in this build yet")
}
