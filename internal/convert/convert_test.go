package convert_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/convert"
	"github.com/detourhq/detour/internal/rules"
)

var update = flag.Bool("update", false, "rewrite the golden files from the current output")

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got ---\n%s\n--- want ---\n%s", path, got, want)
	}
}

// compile parses and compiles a converted config, as detour will.
func compile(t testing.TB, out []byte) (*config.Config, *rules.Set) {
	t.Helper()
	cfg, err := config.ParseBytes(out)
	if err != nil {
		t.Fatalf("converted config does not parse: %v\n%s", err, out)
	}
	set, err := cfg.Compile()
	if err != nil {
		t.Fatalf("converted config does not compile: %v\n%s", err, out)
	}
	return cfg, set
}

var converters = map[string]func([]byte) ([]byte, error){
	"ketches":          convert.FromKetches,
	"container-mirror": convert.FromContainerMirror,
}

// TestGolden converts testdata/TOOL/*/input.* and compares with
// expected.yaml; the output must also be a config detour accepts.
func TestGolden(t *testing.T) {
	for tool, conv := range converters {
		dirs, _ := filepath.Glob(filepath.Join("testdata", tool, "*"))
		if len(dirs) == 0 {
			t.Fatalf("no cases for %s", tool)
		}
		for _, dir := range dirs {
			t.Run(tool+"/"+filepath.Base(dir), func(t *testing.T) {
				in := readInput(t, dir)
				out, err := conv(in)
				if err != nil {
					t.Fatalf("convert: %v", err)
				}
				golden(t, filepath.Join(dir, "expected.yaml"), out)
				compile(t, out)
			})
		}
	}
}

// TestErrors converts testdata/TOOL-errors/*/input.*: each must fail with
// an *Error whose text is error.txt, and return nothing.
func TestErrors(t *testing.T) {
	for tool, conv := range converters {
		dirs, _ := filepath.Glob(filepath.Join("testdata", tool+"-errors", "*"))
		if len(dirs) == 0 {
			t.Fatalf("no error cases for %s", tool)
		}
		for _, dir := range dirs {
			t.Run(tool+"/"+filepath.Base(dir), func(t *testing.T) {
				out, err := conv(readInput(t, dir))
				if err == nil {
					t.Fatalf("converted without error:\n%s", out)
				}
				if out != nil {
					t.Errorf("output on error: %s", out)
				}
				var e *convert.Error
				if !errors.As(err, &e) {
					t.Errorf("error %T is not a *convert.Error: %v", err, err)
				}
				golden(t, filepath.Join(dir, "error.txt"), []byte(err.Error()+"\n"))
			})
		}
	}
}

func readInput(t *testing.T, dir string) []byte {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "input.*"))
	if len(files) != 1 {
		t.Fatalf("%s: want one input.* file, have %v", dir, files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	return b
}
