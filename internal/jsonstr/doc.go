// Package jsonstr appends Go strings as JSON strings, escaped byte for byte
// as the standard library writes them: [Append] as encoding/json's Marshal
// (HTML-safe), [AppendNoHTML] as log/slog's JSONHandler. The admission
// answers and patches use the first, package jsonlog the second.
//
// Plain ASCII is copied eight bytes at a time; both functions allocate only
// when dst must grow. The tests compare them with json.Marshal and with
// slog.JSONHandler, including a fuzzer each.
package jsonstr
