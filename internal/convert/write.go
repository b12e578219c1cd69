package convert

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/detourhq/detour/internal/config"
	"github.com/detourhq/detour/internal/rules"
	"github.com/detourhq/detour/internal/yamlsrc"
)

// Error is a problem with the input, at a line when known.
type Error struct {
	// Line is the 1-based line in the input, 0 when unknown.
	Line int
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

func errorf(line int, format string, args ...any) *Error {
	return &Error{Line: line, Msg: fmt.Sprintf(format, args...)}
}

// commentWidth is where comments wrap, to keep the file readable in a
// terminal.
const commentWidth = 80

// out builds the converted config.
type out struct{ b bytes.Buffer }

// comment writes text as wrapped "# " lines at indent.
func (o *out) comment(indent, text string) {
	prefix := indent + "# "
	line := prefix
	for _, word := range strings.Fields(text) {
		if !printable(word) {
			word = strconv.QuoteToASCII(word) // YAML allows no control characters
		}
		if line != prefix && len(line)+1+len(word) > commentWidth {
			o.b.WriteString(strings.TrimRight(line, " ") + "\n")
			line = prefix
		}
		if line != prefix {
			line += " "
		}
		line += word
	}
	o.b.WriteString(line + "\n")
}

// blank writes an empty comment line, a paragraph break.
func (o *out) blank(indent string) { o.b.WriteString(indent + "#\n") }

func (o *out) line(format string, args ...any) { fmt.Fprintf(&o.b, format+"\n", args...) }

// rule writes one mirror rule, or, when disabled, the same rule commented
// out, so that enabling it is one edit.
func (o *out) rule(from, to string, disabled bool) {
	p := "  "
	if disabled {
		p = "  # "
	}
	o.line("%s- from: %s", p, str(from))
	o.line("%s  to: %s", p, str(to))
}

// plainOK is what may be written without quotes.
var plainOK = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@-]*$`)

// str writes s as a YAML string: plain when that reads back as the same
// string, double-quoted otherwise.
func str(s string) string {
	if plainOK.MatchString(s) && !strings.HasSuffix(s, ":") {
		var n yaml.Node
		if yaml.Unmarshal([]byte(s), &n) == nil && len(n.Content) == 1 &&
			n.Content[0].Tag == "!!str" && n.Content[0].Value == s {
			return s
		}
	}
	return strconv.Quote(s)
}

// strList writes a flow list of strings.
func strList(list []string) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = str(s)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// q quotes a value from the input for a comment, on one line.
func q(s string) string { return strconv.Quote(s) }

// checkRule reports why from → to would not compile as a detour rule, nil
// if it would.
func checkRule(from, to string) error {
	_, err := rules.Compile([]rules.Rule{{From: from, To: []string{to}}}, "")
	if err == nil {
		return nil
	}
	var re *rules.RuleError
	if errors.As(err, &re) {
		return re
	}
	return err
}

// finish checks that the converted config is one detour accepts.
func finish(o *out) ([]byte, error) {
	data := o.b.Bytes()
	cfg, err := config.ParseBytes(data)
	if err == nil {
		_, err = cfg.Compile()
	}
	if err != nil {
		return nil, fmt.Errorf("internal error: the converted config does not validate (please report it): %v\n%s", err, data)
	}
	return data, nil
}

// decodeYAML parses every document of a YAML stream, reporting a syntax
// error at the line that breaks it.
func decodeYAML(data []byte) ([]*yaml.Node, error) {
	docs, err := yamlsrc.DecodeAll(data)
	if err == nil {
		return docs, nil
	}
	line, msg, _ := yamlsrc.Locate(data, nil, err)
	return nil, &Error{Line: line, Msg: "not valid YAML: " + msg}
}
