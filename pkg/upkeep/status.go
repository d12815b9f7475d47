package upkeep

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/backy/backy/pkg/repo"
)

// Status prints the revisions of r, oldest first, as a table (date, id,
// size, duration, tags, consistency, trust) with a total line, or as JSON.
// A revision whose metadata cannot be read, or whose index is missing or
// of the wrong length (QuickCheckIndex; bit flips need verify), is listed
// with trust "damaged" (last, metadata-damaged ones having no time), and
// Status then returns an ErrDamaged error naming them, after printing
// everything.
func Status(w io.Writer, r *repo.Repo, asJSON bool) error {
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		return err
	}
	type row struct {
		*repo.Revision
		damage string
	}
	rows := make([]row, 0, len(revs)+len(bad))
	var damaged []string
	for _, rev := range revs {
		x := row{Revision: rev}
		if err := r.QuickCheckIndex(rev); err != nil {
			x.damage = err.Error()
			damaged = append(damaged, rev.ID)
		}
		rows = append(rows, x)
	}
	for _, e := range bad {
		id := repo.DamagedID(e)
		rows = append(rows, row{Revision: &repo.Revision{ID: id}, damage: e.Error()})
		damaged = append(damaged, id)
	}
	if asJSON {
		out := make([]any, len(rows))
		for i, x := range rows {
			switch {
			case x.damage == "":
				out[i] = x.Revision
			case x.Time.IsZero():
				out[i] = damagedJSON{ID: x.ID, Trust: Damaged, Damage: []string{x.damage}}
			default:
				c := *x.Revision
				c.Trust, c.Damage = Damaged, append([]string{x.damage}, c.Damage...)
				out[i] = &c
			}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
		return damageError(damaged)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tID\tSIZE\tWRITTEN\tDURATION\tTAGS\tCONSISTENCY\tTRUST")
	var written int64
	var dur float64
	for _, x := range rows {
		if x.Time.IsZero() {
			fmt.Fprintf(tw, "?\t%s\t?\t?\t?\t?\t?\t%s: %s\n", x.ID, Damaged, x.damage)
			continue
		}
		trust := x.Trust
		if x.damage != "" {
			trust = Damaged + ": " + x.damage
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			x.Time.Local().Format("2006-01-02 15:04:05"), x.ID, HumanBytes(x.Size),
			HumanBytes(x.Stats.BytesWritten), humanDuration(x.Stats.Duration),
			strings.Join(x.Tags, ","), Consistency(x.Revision), trust)
		written += x.Stats.BytesWritten
		dur += x.Stats.Duration
	}
	fmt.Fprintf(tw, "%d revisions\t\t\t%s\t%s\t\t\t\n", len(rows), HumanBytes(written), humanDuration(dur))
	if err := tw.Flush(); err != nil {
		return err
	}
	return damageError(damaged)
}

// Damaged is the trust status lists for a revision whose metadata or
// index cannot be read.
const Damaged = "damaged"

// damagedJSON is what status --json says of a revision whose metadata
// cannot be read: only its id is known.
type damagedJSON struct {
	ID     string   `json:"id"`
	Trust  string   `json:"trust"`
	Damage []string `json:"damage"`
}

// damageError says which revisions are damaged and what to do about it.
func damageError(ids []string) error {
	switch len(ids) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("%w: revision %s is damaged (verify reports what is wrong, forget -r %s removes it)", ErrDamaged, ids[0], ids[0])
	}
	return fmt.Errorf("%w: revisions %s are damaged (verify reports what is wrong, forget -r ID removes one)", ErrDamaged, strings.Join(ids, ", "))
}

// Consistency is how a revision's consistency reads in tables: "frozen
// 1.2s", "agent", "crash", "crash (fallback)" when a consistent way failed
// (the reason is in the metadata), "-" when unknown.
func Consistency(rev *repo.Revision) string {
	switch {
	case rev.Consistency == "":
		return "-"
	case rev.Consistency == "frozen":
		return "frozen " + humanDuration(rev.FrozenSeconds)
	case rev.ConsistencyReason != "" && rev.Consistency == "crash":
		return "crash (fallback)"
	}
	return rev.Consistency
}

// HumanBytes formats a byte count with binary units.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func humanDuration(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(10 * time.Millisecond).String()
}
