package jsonstr

import (
	"encoding/binary"
	"unicode/utf8"
)

// Append appends s as a JSON string exactly as json.Marshal writes it:
// the quote, the backslash and control characters escaped (\b, \f, \n, \r
// and \t by name), <, > and & as \u003c, \u003e and \u0026, U+2028 and
// U+2029 escaped, invalid UTF-8 replaced by U+FFFD.
func Append(dst []byte, s string) []byte { return appendString(dst, s, true) }

// AppendNoHTML appends s as a JSON string exactly as slog.JSONHandler
// writes it: like Append, but <, > and & as they are, and of the control
// characters only \n, \r and \t by name.
func AppendNoHTML(dst []byte, s string) []byte { return appendString(dst, s, false) }

const hex = "0123456789abcdef"

func appendString(dst []byte, s string, html bool) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) {
			x := binary.LittleEndian.Uint64([]byte(s[i : i+8]))
			if needsLook(x) || html && hasHTML(x) {
				break
			}
			i += 8
		}
		if i >= len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && !(html && (b == '<' || b == '>' || b == '&')) {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch {
			case b == '"' || b == '\\':
				dst = append(dst, '\\', b)
			case b == '\n':
				dst = append(dst, '\\', 'n')
			case b == '\r':
				dst = append(dst, '\\', 'r')
			case b == '\t':
				dst = append(dst, '\\', 't')
			case html && b == '\b':
				dst = append(dst, '\\', 'b')
			case html && b == '\f':
				dst = append(dst, '\\', 'f')
			default: // other control characters, and <, > and & for html
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// needsLook reports whether any byte of x is below 0x20, a quote, a
// backslash, or 0x80 and above: the "has a zero byte" test,
// (v - ones) &^ v & highs, on x and on x with quotes and backslashes
// turned to zero.
func needsLook(x uint64) bool {
	q := x ^ ('"' * ones)
	bs := x ^ ('\\' * ones)
	return ((x-0x20*ones)&^x|(q-ones)&^q|(bs-ones)&^bs|x)&highs != 0
}

// hasHTML reports whether any byte of x may be <, > or & (the test has
// false positives above a true one, which only send a word to the
// byte-by-byte path).
func hasHTML(x uint64) bool {
	lt := x ^ ('<' * ones)
	gt := x ^ ('>' * ones)
	amp := x ^ ('&' * ones)
	return ((lt-ones)&^lt|(gt-ones)&^gt|(amp-ones)&^amp)&highs != 0
}
