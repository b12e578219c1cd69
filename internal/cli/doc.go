// Package cli implements detour's command line: one file per subcommand, each
// a function from arguments and streams to an error. It wires the other
// packages together and formats their output; it holds no rewrite logic of
// its own.
//
// Exit codes: 0 success, 1 failure (the error is printed as one line per
// problem on stderr), 2 usage error.
package cli
