package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/rules"
)

// Env holds what a subcommand may touch besides its arguments.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// commands is the subcommand table; each lives in its own file.
var commands = map[string]command{
	"rewrite": {"print the image the webhook would admit, for images or whole manifests", runRewrite},
	"config":  {"validate or convert config files (config validate FILE, config convert --from ketches|container-mirror FILE)", runConfig},
	"serve":   {"run the admission webhook", runServe},
	"sync":    {"copy the images a cluster needs into a private mirror", runSync},
	"check":   {"probe the mirrors in the config and which of them has an image", runCheck},
	"hosts":   {"generate node config (containerd, docker, crio) from the rules", runHosts},
	"version": {"print version, commit and Go version", runVersion},
}

// errUsage marks errors that are the caller's fault: exit code 2.
var errUsage = errors.New("usage")

// usageError formats a usage problem.
func usageError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errUsage, fmt.Sprintf(format, args...))
}

// Run executes detour with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "detour: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	err := cmd.run(ctx, env, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "detour %s: %s\n", args[0], strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return 2
	case errors.Is(err, errSilent):
		return 1
	default:
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintf(stderr, "detour %s: %s\n", args[0], line)
		}
		return 1
	}
}

// errSilent is returned by a command that already printed its problems.
var errSilent = errors.New("failed")

func usage(w io.Writer) {
	fmt.Fprintln(w, "detour: make Kubernetes clusters pull their images from mirrors.")
	fmt.Fprintln(w, "\nUsage: detour COMMAND [flags] [args]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'detour COMMAND -h' for a command's flags. --config may also be given as DETOUR_CONFIG.")
}

// newFlags makes a FlagSet that reports errors instead of exiting.
func newFlags(env *Env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("detour "+name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "Usage: detour %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses flags anywhere among the arguments (flag stops at the
// first positional one) and returns the positional arguments in order. "--"
// ends flag parsing; "-" is a positional argument (stdin).
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError("%v", err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// configFlag registers --config (default from DETOUR_CONFIG).
func configFlag(fs *flag.FlagSet, env *Env) *string {
	return fs.String("config", env.Getenv("DETOUR_CONFIG"), "config file (default: DETOUR_CONFIG, else the embedded default)")
}

// loadRules reads the config file, or the embedded default for "", and
// compiles its rules.
func loadRules(path string) (*config.Config, *rules.Set, error) {
	cfg, err := loadConfig(path)
	if err != nil {
		return nil, nil, err
	}
	set, err := cfg.Compile()
	if err != nil {
		return nil, nil, err
	}
	return cfg, set, nil
}

// loadConfig reads the config file, or the embedded default for "".
func loadConfig(path string) (*config.Config, error) {
	if path == "" {
		return config.Default(), nil
	}
	return config.LoadFile(path)
}
