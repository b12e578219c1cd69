package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version and Commit are stamped at build time:
//
//	go build -ldflags "-X github.com/detourhq/detour/internal/cli.Version=v0.1.0 -X github.com/detourhq/detour/internal/cli.Commit=$(git rev-parse HEAD)"
//
// Unstamped builds fall back to the module and VCS information Go records.
var (
	Version = ""
	Commit  = ""
)

func runVersion(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "version", "")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	v, c := buildVersion()
	fmt.Fprintf(env.Stdout, "detour %s\ncommit %s\ngo %s %s/%s\n", v, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func buildVersion() (version, commit string) {
	version, commit = Version, Commit
	if info, ok := debug.ReadBuildInfo(); ok {
		if version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			version = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && commit == "" {
				commit = s.Value
			}
		}
	}
	if version == "" {
		version = "dev"
	}
	if commit == "" {
		commit = "unknown"
	}
	return version, commit
}
