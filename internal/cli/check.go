package cli

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/detourhq/detour/internal/registry"
	"github.com/detourhq/detour/internal/rules"
)

// checkParallel bounds the probes and checks in flight at once: enough to
// probe a preset's dozen mirrors in one round, few enough not to look like
// a flood to a mirror that several chains share.
const checkParallel = 8

// runCheck probes mirrors, or checks images on their chains.
//
// Without images it probes every distinct mirror host of the rules and
// prints MIRROR, REACHABLE, LATENCY, AUTH and NOTE, then a summary line.
// With images it prints, per image, each candidate of its fallback chain
// and whether that mirror has the image, and the image the webhook would
// choose with checking on: the first candidate that has it, else the
// original.
//
// Exit status: 0 whenever the probes ran, problems or not (they are in the
// table); with --strict, 1 when a mirror is unhealthy (unreachable, 5xx,
// not a registry, credentials missing or refused) or, with images, when no
// mirror of an image's chain has it.
func runCheck(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "check", "[--config F] [--strict] [IMAGE...]")
	cfgPath := configFlag(fs, env)
	strict := fs.Bool("strict", false, "exit 1 when a mirror has a problem, or when no mirror of an image's chain has it")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	cfg, set, err := loadRules(*cfgPath)
	if err != nil {
		return err
	}
	client := registry.NewClient(registry.ClientOptions{
		Timeout:   cfg.Check.Timeout,
		Insecure:  cfg.InsecureRegistries,
		UserAgent: "detour-check",
	})
	defer client.Close()
	var ok bool
	if len(pos) == 0 {
		ok, err = probeMirrors(ctx, env.Stdout, client, mirrorHosts(set))
	} else {
		if !cfg.Check.Enabled {
			fmt.Fprintln(env.Stdout, "note: check.enabled is false in this config: the webhook admits the first mirror of each chain without checking")
		}
		ok, err = checkImages(ctx, env.Stdout, client, set, pos)
	}
	switch {
	case err != nil:
		return err
	case *strict && !ok:
		return errSilent
	}
	return nil
}

// mirrorHosts returns the distinct registry hosts of every rule's To
// entries, sorted. A "{registry}" template lives in the path, so its host is
// static; a To without a registry host is a Docker Hub namespace.
func mirrorHosts(set *rules.Set) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range set.Rules() {
		for _, to := range r.To {
			host, _, _ := strings.Cut(strings.TrimSpace(to), "/")
			if !rules.IsRegistryHost(host) {
				host = "docker.io"
			}
			host = strings.ToLower(host)
			if !seen[host] {
				seen[host] = true
				out = append(out, host)
			}
		}
	}
	slices.Sort(out)
	return out
}

// probeMirrors pings every host in parallel and prints the table; ok is
// false when some mirror is not healthy.
func probeMirrors(ctx context.Context, w io.Writer, client *registry.Client, hosts []string) (bool, error) {
	pings := make([]registry.Ping, len(hosts))
	checkEach(len(hosts), func(i int) { pings[i] = client.Ping(ctx, hosts[i]) })
	if err := ctx.Err(); err != nil {
		return false, err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MIRROR\tREACHABLE\tLATENCY\tAUTH\tNOTE")
	var reachable, healthy int
	for _, p := range pings {
		reach, lat, auth := "no", "-", "-"
		if p.Reachable {
			reachable++
			reach, lat, auth = "yes", checkLatency(p.Latency), p.Auth
			if p.Login != "" {
				auth += " (" + p.Login + ")"
			}
		}
		if p.Healthy() {
			healthy++
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Registry, reach, lat, auth, p.Note)
	}
	if err := tw.Flush(); err != nil {
		return false, err
	}
	noun := "mirrors"
	if len(pings) == 1 {
		noun = "mirror"
	}
	fmt.Fprintf(w, "\n%d %s: %d ok, %d unreachable, %d with problems\n",
		len(pings), noun, healthy, len(pings)-reachable, reachable-healthy)
	return healthy == len(pings), nil
}

// checkImages checks every candidate of every image's chain, in parallel,
// and prints them per image with the choice; ok is false when some
// rewritten image is on none of its mirrors.
func checkImages(ctx context.Context, w io.Writer, client *registry.Client, set *rules.Set, images []string) (bool, error) {
	type answer struct {
		has bool
		err error
	}
	decisions := make([]rules.Decision, len(images))
	chains := make([][]string, len(images))
	answers := make([][]answer, len(images))
	type job struct{ i, j int }
	var jobs []job
	for i, img := range images {
		decisions[i] = set.Rewrite(img)
		chains[i] = decisions[i].Chain()
		answers[i] = make([]answer, len(chains[i]))
		for j := range chains[i] {
			jobs = append(jobs, job{i, j})
		}
	}
	checkEach(len(jobs), func(k int) {
		i, j := jobs[k].i, jobs[k].j
		has, err := client.Has(ctx, chains[i][j])
		answers[i][j] = answer{has, err}
	})
	if err := ctx.Err(); err != nil {
		return false, err
	}
	ok := true
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for i, img := range images {
		d := decisions[i]
		if i > 0 {
			fmt.Fprintln(tw)
		}
		if len(chains[i]) == 0 {
			fmt.Fprintf(tw, "%s -> %s\t%s\n", img, d.Image, explainDecision(d))
			continue
		}
		chosen := slices.IndexFunc(answers[i], func(a answer) bool { return a.has })
		if chosen < 0 {
			ok = false
			fmt.Fprintf(tw, "%s -> %s\tno mirror has it: the original is kept\n", img, img)
		} else {
			fmt.Fprintf(tw, "%s -> %s\n", img, chains[i][chosen])
		}
		for j, cand := range chains[i] {
			a := answers[i][j]
			word := "lacks it"
			switch {
			case a.has:
				word = "has it"
				if j == chosen {
					word += " (chosen)"
				}
			case a.err != nil:
				word = "error: " + registry.Explain(a.err)
			}
			fmt.Fprintf(tw, "  %d. %s\t%s\n", j+1, cand, word)
		}
	}
	return ok, tw.Flush()
}

// checkEach runs f(0..n-1) with at most checkParallel at once.
func checkEach(n int, f func(i int)) {
	sem := make(chan struct{}, checkParallel)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i)
		})
	}
	wg.Wait()
}

// checkLatency keeps two or three significant digits.
func checkLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < 100*time.Millisecond:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
