package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/detourhq/detour/internal/manifest"
	"github.com/detourhq/detour/internal/rules"
)

// rewriteManifest is `detour rewrite -f FILE|-`; with explain it also prints
// one line per changed image to stderr (stdout stays pure YAML). Nothing is
// written to stdout unless the whole input was rewritten.
func rewriteManifest(env *Env, set *rules.Set, file string, explain bool) error {
	data, err := readInput(env, file)
	if err != nil {
		return err
	}
	out, changes, err := manifest.Rewrite(data, set)
	if err != nil {
		return fmt.Errorf("%s: %w", inputName(file), err)
	}
	if _, err := env.Stdout.Write(out); err != nil {
		return err
	}
	if explain {
		w := bufio.NewWriter(env.Stderr)
		for _, c := range changes {
			fmt.Fprintln(w, c)
		}
		return w.Flush()
	}
	return nil
}

// readInput reads a whole input file, or stdin for "-".
func readInput(env *Env, file string) ([]byte, error) {
	if file != "-" {
		return os.ReadFile(file) // its error names the file
	}
	data, err := io.ReadAll(env.Stdin)
	if err != nil {
		return nil, fmt.Errorf("reading <stdin>: %w", err)
	}
	return data, nil
}

func inputName(file string) string {
	if file == "-" {
		return "<stdin>"
	}
	return file
}
