package manifest

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// source maps the parser's positions (1-based line, and column counted in
// characters) to byte offsets in the input.
type source struct {
	data      []byte
	lineStart []int // byte offset of the start of each line
}

func newSource(data []byte) *source {
	s := &source{data: data}
	start := 0
	if bytes.HasPrefix(data, utf8BOM) {
		start = len(utf8BOM) // the reader drops it before counting columns
	}
	s.lineStart = append(s.lineStart, start)
	for i := start; i < len(data); {
		if n := breakLen(data, i); n > 0 {
			i += n
			s.lineStart = append(s.lineStart, i)
			continue
		}
		i++
	}
	return s
}

// breakLen returns the length of the line break at data[i], 0 if there is
// none. These are the breaks yaml.v3 counts lines by: LF, CR, CRLF (one
// break), and the Unicode NEL, LS and PS.
func breakLen(data []byte, i int) int {
	switch data[i] {
	case '\n':
		return 1
	case '\r':
		if i+1 < len(data) && data[i+1] == '\n' {
			return 2
		}
		return 1
	case 0xC2:
		if i+1 < len(data) && data[i+1] == 0x85 {
			return 2
		}
	case 0xE2:
		if i+2 < len(data) && data[i+1] == 0x80 && (data[i+2] == 0xA8 || data[i+2] == 0xA9) {
			return 3
		}
	}
	return 0
}

// offset returns the byte offset of a parser position, -1 if it is not in
// the input.
func (s *source) offset(line, col int) int {
	if line < 1 || line > len(s.lineStart) || col < 1 {
		return -1
	}
	pos := s.lineStart[line-1]
	for k := 1; k < col; k++ {
		if pos >= len(s.data) || breakLen(s.data, pos) > 0 {
			return -1
		}
		_, size := utf8.DecodeRune(s.data[pos:])
		pos += size
	}
	return pos
}

// lineOf returns the 1-based line holding byte offset off.
func (s *source) lineOf(off int) int {
	return sort.Search(len(s.lineStart), func(i int) bool { return s.lineStart[i] > off })
}

// plan finds the scalar n in the input, checks that the bytes there are its
// value as parsed, and returns the edit that writes value in its place, in
// the same style.
func (s *source) plan(n *yaml.Node, value string) (edit, *Error) {
	off := s.offset(n.Line, n.Column)
	if off < 0 {
		return edit{}, s.mismatch(n, n.Line)
	}
	if n.Anchor != "" || n.Style&yaml.TaggedStyle != 0 || (off < len(s.data) && (s.data[off] == '&' || s.data[off] == '!')) {
		if off = s.skipProperties(off, n); off < 0 {
			return edit{}, s.mismatch(n, n.Line)
		}
	}
	line := s.lineOf(off)
	var end int
	var ok bool
	style := n.Style &^ yaml.TaggedStyle
	switch style {
	case 0:
		end, ok = s.plainEnd(off, n.Value)
	case yaml.SingleQuotedStyle:
		end, ok = s.singleEnd(off, n.Value)
	case yaml.DoubleQuotedStyle:
		end, ok = s.doubleEnd(off, n.Value)
	case yaml.LiteralStyle, yaml.FoldedStyle:
		return edit{}, &Error{Line: line, Err: ErrScalarStyle,
			Msg: fmt.Sprintf("the image %q is a block scalar (| or >); write it on one line to have it rewritten", n.Value)}
	default:
		return edit{}, s.mismatch(n, line)
	}
	if !ok {
		if end < 0 {
			return edit{}, &Error{Line: line, Err: ErrScalarStyle,
				Msg: fmt.Sprintf("the image %q is written over several lines; write it on one line to have it rewritten", n.Value)}
		}
		return edit{}, s.mismatch(n, line)
	}
	text, newStyle := quote(style, value)
	return edit{
		node: n, start: off, end: end, text: text, value: value,
		style: n.Style&yaml.TaggedStyle | newStyle, line: line,
	}, nil
}

func (s *source) mismatch(n *yaml.Node, line int) *Error {
	return &Error{Line: line, Err: ErrVerify,
		Msg: fmt.Sprintf("the input at line %d, column %d does not hold the image %q where the YAML parser places it; nothing was rewritten", n.Line, n.Column, n.Value)}
}

// skipProperties moves past the anchor and tag before a value, and the
// spaces, line breaks and comments after them; -1 if they are not there.
func (s *source) skipProperties(off int, n *yaml.Node) int {
	d := s.data
	for range 2 {
		switch {
		case off < len(d) && d[off] == '&':
			if !bytes.HasPrefix(d[off+1:], []byte(n.Anchor)) || n.Anchor == "" {
				return -1
			}
			off += 1 + len(n.Anchor)
		case off < len(d) && d[off] == '!':
			for off < len(d) && d[off] != ' ' && d[off] != '\t' && breakLen(d, off) == 0 {
				off++
			}
		default:
			return off
		}
		// Separation: spaces, line breaks, comments.
		for off < len(d) {
			if d[off] == ' ' || d[off] == '\t' {
				off++
			} else if n := breakLen(d, off); n > 0 {
				off += n
			} else if d[off] == '#' {
				for off < len(d) && breakLen(d, off) == 0 {
					off++
				}
			} else {
				break
			}
		}
	}
	return off
}

// plainEnd checks a plain scalar: the value as written, then something that
// ends it. A plain scalar over several lines has a line break where its
// value has a space, so it does not match.
func (s *source) plainEnd(off int, value string) (int, bool) {
	d := s.data
	if value == "" || !bytes.HasPrefix(d[off:], []byte(value)) {
		// Over several lines? The first line is a prefix of the value.
		if line := d[off:]; len(line) > 0 {
			if i := lineEnd(line); i < len(line) && i > 0 && strings.HasPrefix(value, strings.TrimRight(string(line[:i]), " \t")+" ") {
				return -1, false
			}
		}
		return 0, false
	}
	end := off + len(value)
	if end < len(d) && !endsPlain(d, end) {
		return 0, false
	}
	return end, true
}

// lineEnd returns the index of the first line break in b, len(b) if none.
func lineEnd(b []byte) int {
	for i := range b {
		if breakLen(b, i) > 0 {
			return i
		}
	}
	return len(b)
}

func endsPlain(d []byte, i int) bool {
	switch d[i] {
	case ' ', '\t', ',', ']', '}':
		return true
	}
	return breakLen(d, i) > 0
}

// singleEnd checks a 'single-quoted' scalar on one line.
func (s *source) singleEnd(off int, value string) (int, bool) {
	d := s.data
	if off >= len(d) || d[off] != '\'' {
		return 0, false
	}
	var b strings.Builder
	for i := off + 1; i < len(d); {
		switch {
		case d[i] == '\'' && i+1 < len(d) && d[i+1] == '\'':
			b.WriteByte('\'')
			i += 2
		case d[i] == '\'':
			return i + 1, b.String() == value
		case breakLen(d, i) > 0:
			return -1, false
		default:
			b.WriteByte(d[i])
			i++
		}
	}
	return 0, false
}

// doubleEnd checks a "double-quoted" scalar on one line, decoding its
// escapes with the YAML library itself.
func (s *source) doubleEnd(off int, value string) (int, bool) {
	d := s.data
	if off >= len(d) || d[off] != '"' {
		return 0, false
	}
	for i := off + 1; i < len(d); {
		switch {
		case d[i] == '\\':
			if i+1 < len(d) && breakLen(d, i+1) > 0 {
				return -1, false
			}
			i += 2
		case d[i] == '"':
			var got string
			if err := yaml.Unmarshal(d[off:i+1], &got); err != nil {
				return 0, false
			}
			return i + 1, got == value
		case breakLen(d, i) > 0:
			return -1, false
		default:
			i++
		}
	}
	return 0, false
}

// plainSafe is what an image reference looks like; anything else is quoted.
var plainSafe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/:@+-]*$`)

// quote writes value in style (0 for plain), falling back to double quotes
// when the style cannot hold it; it returns the text and the style used.
func quote(style yaml.Style, value string) (string, yaml.Style) {
	switch style {
	case 0:
		if plainSafe.MatchString(value) && !strings.HasSuffix(value, ":") && resolvesToString(value, 0) {
			return value, 0
		}
	case yaml.SingleQuotedStyle:
		if printable(value) {
			text := "'" + strings.ReplaceAll(value, "'", "''") + "'"
			if resolvesToString(text, yaml.SingleQuotedStyle) {
				return text, yaml.SingleQuotedStyle
			}
		}
	}
	return strconv.Quote(value), yaml.DoubleQuotedStyle
}

// resolvesToString reports whether text, as a YAML value, is a string
// scalar in style whose value is itself (for plain text) — not a number,
// boolean, null or date.
func resolvesToString(text string, style yaml.Style) bool {
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(text), &n); err != nil || len(n.Content) != 1 {
		return false
	}
	v := n.Content[0]
	return v.Kind == yaml.ScalarNode && v.Tag == "!!str" && v.Style == style && (style != 0 || v.Value == text)
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
