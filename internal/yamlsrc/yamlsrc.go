package yamlsrc

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// DecodeAll parses every document of a stream, stopping at the first error;
// it returns the documents parsed before it. A panic inside the YAML library
// becomes an error, so callers never panic on any input.
func DecodeAll(data []byte) (docs []*yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the parser failed: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return docs, nil
		}
		if err != nil {
			return docs, err
		}
		docs = append(docs, &n)
	}
}

var lineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// Locate returns the line (1-based) at which err, a yaml.v3 error from
// decoding data, really arises, and its message without the "yaml: line N: "
// prefix. lineStarts holds the byte offset of each line (nil: lines end at
// "\n"). ok is false when err names no line; msg is then the bare message.
func Locate(data []byte, lineStarts []int, err error) (line int, msg string, ok bool) {
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, strings.TrimPrefix(err.Error(), "yaml: "), false
	}
	line, _ = strconv.Atoi(m[1])
	msg = m[2]
	if lineStarts == nil {
		lineStarts = LineStarts(data)
	}
	if l := breakingLine(data, lineStarts, msg); l > 0 {
		line = l
	}
	return line, msg, true
}

// LineStarts returns the byte offset of every line of data, lines ending at
// "\n".
func LineStarts(data []byte) []int {
	starts := []int{0}
	for i, b := range data {
		if b == '\n' && i+1 < len(data) {
			starts = append(starts, i+1)
		}
	}
	return starts
}

func breakingLine(data []byte, lineStarts []int, msg string) int {
	n := len(lineStarts)
	fails := func(lines int) bool {
		end := len(data)
		if lines < n {
			end = lineStarts[lines]
		}
		_, err := DecodeAll(data[:end])
		if err == nil {
			return false
		}
		m := lineRE.FindStringSubmatch(err.Error())
		return m != nil && m[2] == msg
	}
	lo, hi := 0, n
	if !fails(hi) {
		return 0
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fails(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}
