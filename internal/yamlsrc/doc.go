// Package yamlsrc decodes YAML streams with gopkg.in/yaml.v3 and reports
// syntax errors at the line that causes them.
//
// yaml.v3 reports a parser error at the line where the enclosing collection
// starts, counted from 0, not at the line that breaks it ("line 1: did not
// find expected '-' indicator" for a mistake on line 3). Locate finds the real
// line by bisecting on prefixes of the input: the first line L such that the
// input up to and including L fails with the same message while the input
// before it does not. That costs a few parses, on the error path only.
package yamlsrc
