package cli

import (
	"fmt"

	"github.com/detourhq/detour/internal/convert"
)

// converters are the tools `config convert --from` knows.
var converters = map[string]func([]byte) ([]byte, error){
	"ketches":          convert.FromKetches,
	"container-mirror": convert.FromContainerMirror,
}

// runConfigConvert is `detour config convert --from ketches|container-mirror
// FILE|-`: it prints the equivalent detour config, and nothing on error.
func runConfigConvert(env *Env, args []string) error {
	fs := newFlags(env, "config convert", "--from ketches|container-mirror FILE|-")
	from := fs.String("from", "", "the tool the input comes from: ketches (its ConfigMap or config.yaml) or container-mirror (its image_mirrors map)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	conv, ok := converters[*from]
	switch {
	case *from == "":
		return usageError("want --from ketches or --from container-mirror")
	case !ok:
		return usageError("unknown --from %q: want ketches or container-mirror", *from)
	case len(pos) != 1:
		return usageError("want exactly one FILE (- for stdin)")
	}
	data, err := readInput(env, pos[0])
	if err != nil {
		return err
	}
	out, err := conv(data)
	if err != nil {
		return fmt.Errorf("%s: %w", inputName(pos[0]), err)
	}
	_, err = env.Stdout.Write(out)
	return err
}
