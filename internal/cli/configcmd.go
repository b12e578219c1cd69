package cli

import (
	"context"
	"fmt"

	"github.com/detourhq/detour/internal/config"
)

func runConfig(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usageError("want a subcommand: validate FILE, or convert --from ketches|container-mirror FILE")
	}
	switch args[0] {
	case "validate":
		return runConfigValidate(env, args[1:])
	case "convert":
		return runConfigConvert(env, args[1:])
	case "default":
		_, err := env.Stdout.Write(config.DefaultYAML())
		return err
	}
	return usageError("unknown subcommand %q: want validate, convert or default", args[0])
}

func runConfigValidate(env *Env, args []string) error {
	fs := newFlags(env, "config validate", "FILE")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("want exactly one FILE")
	}
	// Problems go out bare, FILE:LINE: message, one a line, for editors.
	cfg, err := config.LoadFile(pos[0])
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return errSilent
	}
	set, err := cfg.Compile()
	if err != nil {
		fmt.Fprintln(env.Stderr, err)
		return errSilent
	}
	fmt.Fprintf(env.Stdout, "%s: ok, %d rules\n", pos[0], len(set.Rules()))
	return nil
}
