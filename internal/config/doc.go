// Package config reads detour's YAML configuration.
//
// Every key is optional: a key left out keeps its value from the embedded
// default (see Default and default.yaml), so a file that only lists
// `mirrors:` still gets the daocloud preset, the escape prefix and the
// namespace filter; write `presets: []` to drop the preset. An empty file is
// the default.
//
// Parsing is strict and complete: unknown keys, duplicate keys, wrong types,
// unknown presets, invalid globs, bad durations and every rule problem that
// rules.Compile finds are all reported, each as an *Error carrying the line it
// is about, joined in an ErrorList sorted by line. A config with any error is
// returned as nil, never half-filled.
//
// Presets are YAML files embedded from presets/; each holds a `mirrors:` list
// in the same format as a config file. Presets are applied in the order
// listed, a later preset replacing an earlier one's rule for the same `from`,
// and the user's `mirrors` replace any preset rule for the same `from`.
//
// Parse is pure; LoadFile is the thin file wrapper that adds the file name to
// errors, so they read FILE:LINE: message.
package config
