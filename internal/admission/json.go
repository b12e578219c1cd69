package admission

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// maxDepth is the deepest nesting of objects and arrays the decoder accepts;
// it is encoding/json's own limit, so both accept exactly the same documents.
const maxDepth = 10000

// decoder reads one JSON document held in buf. It checks the syntax of every
// byte the way encoding/json does (json.Valid accepts exactly the documents
// it accepts), but it builds only the few values its caller asks for and
// skips the rest without allocating. Keys match case-sensitively, as in the
// Kubernetes API machinery, and a repeated key's last value wins.
//
// It exists because decoding the whole Pod, even into a small struct with
// encoding/json, costs several times more CPU than everything else the
// webhook does per request (see BenchmarkDecode).
type decoder struct {
	buf   []byte
	pos   int
	depth int
	// typeErr is the first value whose JSON type differs from the one wanted.
	// Such a value is skipped and decoding goes on, so the caller can decide
	// whether that part of the document mattered.
	typeErr error
	// prefix goes before field names in type errors ("request.object.").
	prefix string
}

// SyntaxError is a malformed JSON document.
type SyntaxError struct {
	Offset int    // byte offset of the problem
	Msg    string // what is wrong there
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("%s at offset %d", e.Msg, e.Offset)
}

// TypeError is a well-formed value of the wrong JSON type for its field.
type TypeError struct {
	Field string // dotted path, e.g. "request.object.spec.containers[0].image"
	Want  string // "a string", "an object", ...
	Got   string // "a number", ...
}

func (e *TypeError) Error() string {
	return fmt.Sprintf("%s: want %s, got %s", e.Field, e.Want, e.Got)
}

func (d *decoder) syntax(msg string) error {
	return &SyntaxError{Offset: d.pos, Msg: msg}
}

// unexpected describes the byte at the current position for a syntax error.
func (d *decoder) unexpected(context string) error {
	if d.pos >= len(d.buf) {
		return d.syntax("unexpected end of JSON input " + context)
	}
	return d.syntax("invalid character " + quoteChar(d.buf[d.pos]) + " " + context)
}

func quoteChar(c byte) string {
	switch {
	case c == '\'':
		return `'\''`
	case c == '"':
		return `'"'`
	case c >= 0x20 && c < 0x7f:
		return "'" + string(c) + "'"
	}
	return strconv.Quote(string(rune(c)))
}

// ws skips JSON whitespace.
func (d *decoder) ws() {
	for d.pos < len(d.buf) {
		switch d.buf[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

// peek returns the next byte after whitespace, or 0 at the end.
func (d *decoder) peek() byte {
	if d.pos < len(d.buf) && d.buf[d.pos] > ' ' {
		return d.buf[d.pos] // compact JSON, as the apiserver sends: no whitespace
	}
	d.ws()
	if d.pos < len(d.buf) {
		return d.buf[d.pos]
	}
	return 0
}

// end checks that nothing but whitespace follows the document.
func (d *decoder) end() error {
	d.ws()
	if d.pos != len(d.buf) {
		return d.unexpected("after top-level value")
	}
	return nil
}

// kindOf names the JSON type of the value starting with c.
func kindOf(c byte) string {
	switch c {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

// mismatch records a type error for the value at the current position, if it
// is the first, and skips the value.
func (d *decoder) mismatch(field, want string) error {
	if d.typeErr == nil {
		d.typeErr = &TypeError{Field: d.prefix + field, Want: want, Got: kindOf(d.peek())}
	}
	return d.skip()
}

// null consumes a null literal if one comes next.
func (d *decoder) null() (bool, error) {
	if d.peek() != 'n' {
		return false, nil
	}
	return true, d.literal("null")
}

// object reads an object, calling member for each key; member must consume
// the value. It reports false, with the value skipped, when the value is null
// or (a type error) not an object.
func (d *decoder) object(field string, member func(key []byte) error) (bool, error) {
	switch d.peek() {
	case '{':
	case 'n':
		return false, d.literal("null")
	default:
		return false, d.mismatch(field, "an object")
	}
	if err := d.push(); err != nil {
		return false, err
	}
	if d.peek() == '}' {
		d.pos++
		d.depth--
		return true, nil
	}
	for {
		if d.peek() != '"' {
			return false, d.unexpected("looking for beginning of object key string")
		}
		key, err := d.key()
		if err != nil {
			return false, err
		}
		if d.peek() != ':' {
			return false, d.unexpected("after object key")
		}
		d.pos++
		if err := member(key); err != nil {
			return false, err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case '}':
			d.pos++
			d.depth--
			return true, nil
		default:
			return false, d.unexpected("after object key:value pair")
		}
	}
}

// array reads an array, calling elem for each element with its index; elem
// must consume the value. It reports false, with the value skipped, when the
// value is null or (a type error) not an array.
func (d *decoder) array(field string, elem func(i int) error) (bool, error) {
	switch d.peek() {
	case '[':
	case 'n':
		return false, d.literal("null")
	default:
		return false, d.mismatch(field, "an array")
	}
	if err := d.push(); err != nil {
		return false, err
	}
	if d.peek() == ']' {
		d.pos++
		d.depth--
		return true, nil
	}
	for i := 0; ; i++ {
		if err := elem(i); err != nil {
			return false, err
		}
		switch d.peek() {
		case ',':
			d.pos++
		case ']':
			d.pos++
			d.depth--
			return true, nil
		default:
			return false, d.unexpected("after array element")
		}
	}
}

// push consumes an opening bracket and counts the nesting.
func (d *decoder) push() error {
	d.depth++
	if d.depth > maxDepth {
		return d.syntax("exceeded max depth")
	}
	d.pos++
	return nil
}

// str reads a string value; null is "". Any other type is a type error.
func (d *decoder) str(field string) (string, error) {
	switch d.peek() {
	case '"':
		b, err := d.stringBytes()
		return string(b), err
	case 'n':
		return "", d.literal("null")
	}
	return "", d.mismatch(field, "a string")
}

// strBytes is str without the copy: the value is a slice of buf (or, for a
// string with escapes, a new slice), valid as long as buf is.
func (d *decoder) strBytes(field string) ([]byte, error) {
	switch d.peek() {
	case '"':
		return d.stringBytes()
	case 'n':
		return nil, d.literal("null")
	}
	return nil, d.mismatch(field, "a string")
}

// word reads a string value that is most often one of a few fixed words of
// the API (a version, a kind, an operation): those are returned without
// allocating a copy.
func (d *decoder) word(field string) (string, error) {
	b, err := d.strBytes(field)
	switch string(b) {
	case "":
		return "", err
	case APIVersionV1:
		return APIVersionV1, err
	case APIVersionV1beta1:
		return APIVersionV1beta1, err
	case "AdmissionReview":
		return "AdmissionReview", err
	case "v1":
		return "v1", err
	case "Pod":
		return "Pod", err
	case "pods":
		return "pods", err
	case "CREATE":
		return "CREATE", err
	case "UPDATE":
		return "UPDATE", err
	case "DELETE":
		return "DELETE", err
	case "CONNECT":
		return "CONNECT", err
	case "ephemeralcontainers":
		return "ephemeralcontainers", err
	}
	return string(b), err
}

// boolean reads true or false; null is false. Any other type is a type error.
func (d *decoder) boolean(field string) (bool, error) {
	switch d.peek() {
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return false, d.literal("null")
	}
	return false, d.mismatch(field, "a boolean")
}

// key reads an object key. Without escapes it is a slice of buf, so
// comparing it to a constant allocates nothing. Unlike a value it is not
// checked for valid UTF-8: it is only ever compared with ASCII names, which
// a key with invalid UTF-8 cannot equal, raw or with U+FFFD in its place.
func (d *decoder) key() ([]byte, error) {
	start := d.pos + 1
	b := d.buf
	i := scanPlain(b, start)
	if i < len(b) && b[i] == '"' {
		d.pos = i + 1
		return b[start:i], nil
	}
	return d.stringBytes()
}

// stringBytes reads a string at the current position (which holds '"') and
// returns its value: a slice of buf when the string has no escapes and is
// valid UTF-8, else a new slice, unescaped, with invalid UTF-8 replaced by
// U+FFFD as encoding/json does.
func (d *decoder) stringBytes() ([]byte, error) {
	start := d.pos + 1
	b := d.buf
	i := scanPlain(b, start)
	if i < len(b) && b[i] == '"' {
		d.pos = i + 1
		if !utf8.Valid(b[start:i]) {
			return unquote(b[start:i]), nil
		}
		return b[start:i], nil
	}
	// An escape, a control character or the end: let the checking loop
	// report or skip it, then unescape.
	if err := d.skipStringFrom(start); err != nil {
		return nil, err
	}
	return unquote(b[start : d.pos-1]), nil
}

// skipString skips a string at the current position (which holds '"').
func (d *decoder) skipString() error {
	return d.skipStringFrom(d.pos + 1)
}

// plain marks the bytes a string can hold as they are: not the quote, not
// the backslash, not a control character.
var plain = func() (t [256]bool) {
	for c := range t {
		t[c] = c >= 0x20 && c != '"' && c != '\\'
	}
	return t
}()

// scanPlain returns the index of the first byte from i on that a string
// cannot hold as it is (see plain), or len(b). It looks at eight bytes at a
// time: most of a Pod's JSON is inside strings.
func scanPlain(b []byte, i int) int {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// A byte of x is flagged when it is below 0x20, or equal to '"' or
		// '\\': the classic "has a zero byte" test, (v - ones) &^ v & highs,
		// on x and on x with those bytes turned to zero. The flags may
		// include false positives only above a true one, never before it.
		q := x ^ ('"' * ones)
		bs := x ^ ('\\' * ones)
		m := ((x - 0x20*ones) &^ x) | ((q - ones) &^ q) | ((bs - ones) &^ bs)
		if m &= highs; m != 0 {
			return i + bits.TrailingZeros64(m)/8
		}
	}
	for i < len(b) && plain[b[i]] {
		i++
	}
	return i
}

// skipStringFrom checks and skips the rest of a string from i, just inside
// it, and leaves pos after the closing quote.
func (d *decoder) skipStringFrom(i int) error {
	b := d.buf
	for {
		i = scanPlain(b, i)
		if i >= len(b) {
			d.pos = i
			return d.unexpected("in string literal")
		}
		switch b[i] {
		case '"':
			d.pos = i + 1
			return nil
		case '\\':
			i++
			if i >= len(b) {
				d.pos = i
				return d.unexpected("in string escape code")
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				i++
				for k := 0; k < 4; k++ {
					if i >= len(b) || !isHex(b[i]) {
						d.pos = i
						return d.unexpected("in \\u hexadecimal character escape")
					}
					i++
				}
			default:
				d.pos = i
				return d.unexpected("in string escape code")
			}
		default: // a control character
			d.pos = i
			return d.unexpected("in string literal")
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// unquote decodes the inside of a string already checked by skipStringFrom,
// with encoding/json's rules for surrogates and invalid UTF-8.
func unquote(s []byte) []byte {
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			i++
			switch s[i] {
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r := hex4(s[i+1:])
				i += 4
				if utf16.IsSurrogate(r) {
					// A high surrogate followed by an escaped low one is one rune.
					if i+2 < len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
						if r2 := utf16.DecodeRune(r, hex4(s[i+3:])); r2 != utf8.RuneError {
							out = utf8.AppendRune(out, r2)
							i += 7
							continue
						}
					}
					r = utf8.RuneError
				}
				out = utf8.AppendRune(out, r)
			default: // '"', '\\', '/'
				out = append(out, s[i])
			}
			i++
		case c < utf8.RuneSelf:
			out = append(out, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				out = utf8.AppendRune(out, utf8.RuneError)
			} else {
				out = append(out, s[i:i+size]...)
			}
			i += size
		}
	}
	return out
}

// hex4 decodes four hex digits already checked by skipStringFrom.
func hex4(s []byte) rune {
	var r rune
	for _, c := range s[:4] {
		switch {
		case c <= '9':
			c -= '0'
		case c <= 'F':
			c -= 'A' - 10
		default:
			c -= 'a' - 10
		}
		r = r<<4 | rune(c)
	}
	return r
}

// literal consumes the literal word at the current position.
func (d *decoder) literal(word string) error {
	for i := 0; i < len(word); i++ {
		if d.pos >= len(d.buf) || d.buf[d.pos] != word[i] {
			return d.unexpected("in literal " + word + " (expecting " + quoteChar(word[i]) + ")")
		}
		d.pos++
	}
	return nil
}

// skip checks and skips any value. Most of a Pod is skipped (managedFields,
// env, probes, volumes), so this is the decoder's hot loop: it is iterative,
// keeps its position in a local and remembers the open containers in a small
// stack instead of recursing through the decoder's methods.
func (d *decoder) skip() error {
	b := d.buf
	i := d.pos
	open := make([]bool, 0, 32) // the containers opened here, innermost last: true for an object
values:
	for {
		// A value starts at i.
		i = skipWS(b, i)
		if i >= len(b) {
			d.pos = i
			return d.unexpected("looking for beginning of value")
		}
		switch c := b[i]; c {
		case '"':
			j := scanPlain(b, i+1)
			if j < len(b) && b[j] == '"' {
				i = j + 1
				break
			}
			if err := d.skipStringFrom(j); err != nil {
				return err
			}
			i = d.pos
		case '{', '[':
			if d.depth+len(open)+1 > maxDepth {
				d.pos = i
				return d.syntax("exceeded max depth")
			}
			i = skipWS(b, i+1)
			end := byte('}')
			if c == '[' {
				end = ']'
			}
			if i < len(b) && b[i] == end {
				i++
				break // empty
			}
			open = append(open, c == '{')
			if c == '{' {
				var err error
				if i, err = d.skipKey(i); err != nil {
					return err
				}
			}
			continue values
		case 't', 'f', 'n':
			d.pos = i
			word := "null"
			if c == 't' {
				word = "true"
			} else if c == 'f' {
				word = "false"
			}
			if err := d.literal(word); err != nil {
				return err
			}
			i = d.pos
		default:
			d.pos = i
			if err := d.number(); err != nil {
				return err
			}
			i = d.pos
		}
		// A value ends at i: close the containers it completes.
		for {
			if len(open) == 0 {
				d.pos = i
				return nil
			}
			i = skipWS(b, i)
			inObject := open[len(open)-1]
			if i < len(b) {
				switch b[i] {
				case ',':
					if inObject {
						var err error
						if i, err = d.skipKey(i + 1); err != nil {
							return err
						}
					} else {
						i++
					}
					continue values
				case '}':
					if inObject {
						i++
						open = open[:len(open)-1]
						continue
					}
				case ']':
					if !inObject {
						i++
						open = open[:len(open)-1]
						continue
					}
				}
			}
			d.pos = i
			if inObject {
				return d.unexpected("after object key:value pair")
			}
			return d.unexpected("after array element")
		}
	}
}

// skipKey checks and skips an object key and its colon from i, and returns
// where the value starts.
func (d *decoder) skipKey(i int) (int, error) {
	b := d.buf
	i = skipWS(b, i)
	if i >= len(b) || b[i] != '"' {
		d.pos = i
		return 0, d.unexpected("looking for beginning of object key string")
	}
	j := scanPlain(b, i+1)
	if j < len(b) && b[j] == '"' {
		i = j + 1
	} else {
		if err := d.skipStringFrom(j); err != nil {
			return 0, err
		}
		i = d.pos
	}
	i = skipWS(b, i)
	if i >= len(b) || b[i] != ':' {
		d.pos = i
		return 0, d.unexpected("after object key")
	}
	return i + 1, nil
}

// skipWS returns the index of the first byte from i on that is not JSON
// whitespace, or len(b).
func skipWS(b []byte, i int) int {
	for i < len(b) && b[i] <= ' ' { // compact JSON, as the apiserver sends, has none
		switch b[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// number checks and skips a number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func (d *decoder) number() error {
	b := d.buf
	i := d.pos
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	case i == d.pos:
		return d.unexpected("looking for beginning of value")
	default:
		d.pos = i
		return d.unexpected("in numeric literal")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			d.pos = i
			return d.unexpected("after decimal point in numeric literal")
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			d.pos = i
			return d.unexpected("in exponent of numeric literal")
		}
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	d.pos = i
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
