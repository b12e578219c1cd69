package convert_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/detourhq/detour/internal/convert"
)

// fuzzConverter: the converter never panics; it fails with an *Error and no
// output, or returns a config detour parses and compiles.
func fuzzConverter(f *testing.F, tool string, conv func([]byte) ([]byte, error)) {
	for _, pattern := range []string{"testdata/" + tool + "/*/input.*", "testdata/" + tool + "-errors/*/input.*"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := conv(in)
		if err != nil {
			var e *convert.Error
			if out != nil || !errors.As(err, &e) {
				t.Fatalf("error %v (%T) with %d bytes of output", err, err, len(out))
			}
			return
		}
		compile(t, out)
	})
}

func FuzzFromKetches(f *testing.F) { fuzzConverter(f, "ketches", convert.FromKetches) }

func FuzzFromContainerMirror(f *testing.F) {
	fuzzConverter(f, "container-mirror", convert.FromContainerMirror)
}
