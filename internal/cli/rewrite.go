package cli

import (
	"bufio"
	"context"
	"fmt"

	"github.com/detourhq/detour/internal/rules"
)

func runRewrite(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "rewrite", "[--config F] [--explain] IMAGE... | -f FILE|-")
	cfgPath := configFlag(fs, env)
	explain := fs.Bool("explain", false, "after each image, print the rule that decided it")
	file := fs.String("f", "", "rewrite every image in this Kubernetes YAML file (- for stdin) and print the result")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case *file == "" && len(pos) == 0:
		return usageError("give images to rewrite, or -f FILE (- for stdin)")
	case *file != "" && len(pos) > 0:
		return usageError("give either images or -f FILE, not both")
	}
	_, set, err := loadRules(*cfgPath)
	if err != nil {
		return err
	}
	if *file != "" {
		return rewriteManifest(env, set, *file, *explain)
	}
	out := bufio.NewWriter(env.Stdout)
	for _, img := range pos {
		d := set.Rewrite(img)
		if *explain {
			fmt.Fprintf(out, "%s\t%s\n", d.Image, explainDecision(d))
		} else {
			fmt.Fprintln(out, d.Image)
		}
	}
	return out.Flush()
}

// explainDecision says in a few words why a decision came out as it did.
func explainDecision(d rules.Decision) string {
	switch d.Reason {
	case rules.Rewritten:
		s := fmt.Sprintf("rewritten by %s -> %v (%s)", d.Rule.From, d.Rule.To, d.Rule.Origin)
		if chain := d.Chain(); len(chain) > 1 {
			s += fmt.Sprintf("; fallback chain %v", chain)
		}
		return s
	case rules.Escaped:
		return "escaped: the escape prefix was removed"
	case rules.AlreadyMirrored:
		return "unchanged: already under a mirror"
	case rules.Invalid:
		return "unchanged: not a valid image reference: " + d.Err.Error()
	case rules.Unrepresentable:
		return fmt.Sprintf("unchanged: rule %s (%s) matched but %v", d.Rule.From, d.Rule.Origin, d.Err)
	}
	return "unchanged: no rule matches"
}
