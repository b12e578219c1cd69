package imagesync

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
)

// maxLineBytes bounds one line of an images list; a reference is at most a
// few hundred bytes, so a longer line is a wrong file, not a long name.
const maxLineBytes = 64 << 10

// Entry is one image of an images list.
type Entry struct {
	// Line is the 1-based line number in the list (0 when the entry did not
	// come from a file, e.g. --from-cluster).
	Line int
	// Image is the reference exactly as written, without comment or spaces.
	Image string
}

// LineError is a problem with one line of an images list.
type LineError struct {
	Line int    // 1-based
	Text string // the line, trimmed
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %q: %v", e.Line, e.Text, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// ErrSpaces is the Err of a line with more than one word.
var ErrSpaces = errors.New("more than one reference on the line (a comment starts with #)")

// ParseList reads an images list: one reference per line; "#" starts a
// comment, to the end of the line; blank lines are ignored. Every line that
// is not a valid reference is reported, each as a *LineError, joined with
// errors.Join; on any error no entry is returned, so a run never starts on
// a half-read list.
func ParseList(r io.Reader) ([]Entry, error) {
	var (
		out  []Entry
		errs []error
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxLineBytes)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		text = strings.TrimSpace(text)
		if text == "" {
			continue
		}
		if err := ValidateReference(text); err != nil {
			errs = append(errs, &LineError{Line: n, Text: text, Err: err})
			continue
		}
		out = append(out, Entry{Line: n, Image: text})
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("reading the images list: %w", err))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ValidateReference reports whether s is an image reference that both the
// rule engine's grammar (github.com/distribution/reference, the one kubelet
// uses) and the registry client accept.
func ValidateReference(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' }) {
		return ErrSpaces
	}
	if _, err := reference.ParseNormalizedNamed(s); err != nil {
		return err
	}
	if _, err := name.ParseReference(s); err != nil {
		return err
	}
	return nil
}
