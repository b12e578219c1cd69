package cli

import (
	"bufio"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/detourhq/detour/internal/hosts"
)

// runHosts prints or writes node-level mirror configuration.
func runHosts(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "hosts", "(containerd|docker|crio) [--config F] [--out DIR]")
	cfgPath := configFlag(fs, env)
	outDir := fs.String("out", "", "write the files under DIR, backing up changed ones as NAME.bak-YYYYMMDDHHMMSS (default: print them)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError("give one format: containerd, docker or crio")
	}
	format, err := hosts.ParseFormat(pos[0])
	if err != nil {
		return usageError("%v", err)
	}
	cfg, set, err := loadRules(*cfgPath)
	if err != nil {
		return err
	}
	opts := hosts.Options{Source: cfg.Source, Insecure: cfg.InsecureRegistries}
	if *outDir != "" {
		abs, err := filepath.Abs(*outDir)
		if err != nil {
			return fmt.Errorf("resolving --out %s: %w", *outDir, err)
		}
		opts.Dir = abs
	}
	res, err := hosts.Render(set, format, opts)
	if err != nil {
		return err
	}

	names := make([]string, 0, len(res.Files))
	for name := range res.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	out := bufio.NewWriter(env.Stdout)
	notes := env.Stderr // stdout holds the file itself, ready to redirect
	if *outDir == "" {
		for i, name := range names {
			if format == hosts.Containerd {
				if i > 0 {
					out.WriteByte('\n')
				}
				fmt.Fprintf(out, "# === %s ===\n", name)
			}
			out.Write(res.Files[name])
		}
	} else {
		backups, err := hosts.Write(opts.Dir, res.Files)
		for _, b := range backups {
			fmt.Fprintf(out, "backed up %s\n", b)
		}
		if err != nil {
			out.Flush()
			return err
		}
		for _, name := range names {
			fmt.Fprintf(out, "wrote %s\n", filepath.Join(opts.Dir, filepath.FromSlash(name)))
		}
		notes = out
	}
	if err := out.Flush(); err != nil {
		return err
	}
	for _, u := range res.Unexpressible {
		fmt.Fprintf(env.Stderr, "detour hosts: warning: not expressed for %s: %s -> %s (%s): %s\n",
			format, u.Rule.From, strings.Join(u.Rule.To, ", "), u.Rule.Origin, u.Reason)
	}
	if notes == out {
		for _, n := range res.Notes {
			fmt.Fprintln(out, n)
		}
		return out.Flush()
	}
	for _, n := range res.Notes {
		fmt.Fprintln(notes, n)
	}
	return nil
}
