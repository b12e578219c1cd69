package imagesync

import (
	"fmt"

	"github.com/detourhq/detour/internal/rules"
)

// Job is one listed image: a copy from Source to Target, or a skip.
type Job struct {
	// Line is the line of the images list (0 when not from a file).
	Line int
	// Source is the image as listed.
	Source string
	// Target is the image the webhook admits instead: the first entry of the
	// rule's chain. It is "" for a skipped job.
	Target string
	// Skip says why the image is not copied; "" for a copy.
	Skip string
}

// Plan decides, for every entry, where its image goes: to
// set.Rewrite(image).Image when the decision is Rewritten, nowhere
// otherwise (Skip says why). A source listed twice is copied once.
func Plan(set *rules.Set, entries []Entry) []Job {
	jobs := make([]Job, 0, len(entries))
	first := map[string]int{} // source -> line of its first listing
	for _, e := range entries {
		j := Job{Line: e.Line, Source: e.Image}
		if line, dup := first[e.Image]; dup {
			j.Skip = fmt.Sprintf("listed again (first on line %d)", line)
			jobs = append(jobs, j)
			continue
		}
		first[e.Image] = e.Line
		d := set.Rewrite(e.Image)
		switch d.Reason {
		case rules.Rewritten:
			j.Target = d.Image
		case rules.NoMatch:
			j.Skip = "no rule matches: Pods pull it from its own registry"
		case rules.Escaped:
			j.Skip = "escaped: Pods pull " + d.Image + " from its own registry"
		case rules.AlreadyMirrored:
			j.Skip = "already a mirror image"
		case rules.Invalid:
			j.Skip = fmt.Sprintf("not a valid reference: %v", d.Err)
		case rules.Unrepresentable:
			j.Skip = fmt.Sprintf("rule %s (%s) matched but %v", d.Rule.From, d.Rule.Origin, d.Err)
		default:
			j.Skip = "unchanged: " + d.Reason.String()
		}
		jobs = append(jobs, j)
	}
	return jobs
}
