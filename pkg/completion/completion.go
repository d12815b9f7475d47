// Package completion completes the values of backy's commands that only a
// repository or the configuration knows: revision specs and job names.
// The commands' shell completion (pkg/cli.CompletionFlag) asks it for the
// values tagged predictor:"revision" and predictor:"job".
package completion

import (
	"cmp"
	"os"
	"slices"
	"strings"

	"github.com/posener/complete"

	"github.com/backy/backy/pkg/config"
	"github.com/backy/backy/pkg/repo"
)

// Predictors are the completers to pass to cli.Run.
func Predictors() map[string]complete.Predictor {
	return map[string]complete.Predictor{
		"revision": complete.PredictFunc(Revisions),
		"job":      complete.PredictFunc(Jobs),
	}
}

// Revisions lists the revision specs of the repository that -b (or --base)
// names on the command line, else of the current directory: latest, last,
// every tag and every id, newest first. It only reads revision metadata (no
// lock: a running store is never in its way) and says nothing on any
// error. A RADOS location gets the two names alone: a completion does not
// connect to a cluster.
func Revisions(a complete.Args) []string {
	specs := []string{"latest", "last"}
	loc := cmp.Or(flagValue(line(a), "-b", "--base"), ".")
	if repo.IsRados(loc) {
		return specs
	}
	r, err := repo.Open(loc)
	if err != nil {
		return specs
	}
	defer r.Close()
	revs, _, err := r.ScanRevisions()
	if err != nil {
		return specs
	}
	var ids []string
	for _, rev := range slices.Backward(revs) {
		for _, t := range rev.Tags {
			if !slices.Contains(specs, t) {
				specs = append(specs, t)
			}
		}
		ids = append(ids, rev.ID)
	}
	return append(specs, ids...)
}

// Jobs lists the job names of the configuration that -c (or --config)
// names on the command line, else of /etc/backy.conf.
func Jobs(a complete.Args) []string {
	path := cmp.Or(flagValue(line(a), "-c", "--config"), config.DefaultPath)
	cfg, err := config.Load(path)
	if err != nil {
		return nil
	}
	return cfg.JobNames()
}

// line is the words typed before the one being completed. Args holds them
// from the subcommand on only, and -b may come before it: they are taken
// from the shell's COMP_LINE.
func line(a complete.Args) []string {
	words := strings.Fields(os.Getenv("COMP_LINE"))
	if a.Last != "" && len(words) > 0 {
		words = words[:len(words)-1]
	}
	return words
}

// flagValue is the last value given to a flag among words: "-b X",
// "--base X", "--base=X" or "-bX".
func flagValue(words []string, short, long string) string {
	v := ""
	for i, w := range words {
		switch {
		case w == short || w == long:
			if i+1 < len(words) {
				v = words[i+1]
			}
		case strings.HasPrefix(w, long+"="):
			v = strings.TrimPrefix(w, long+"=")
		case strings.HasPrefix(w, short) && !strings.HasPrefix(w, "--"):
			v = strings.TrimPrefix(w, short)
		}
	}
	return v
}
