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
// size, duration, tags, trust) with a total line, or as JSON.
func Status(w io.Writer, r *repo.Repo, asJSON bool) error {
	revs, err := r.Revisions()
	if err != nil {
		return err
	}
	if asJSON {
		if revs == nil {
			revs = []*repo.Revision{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(revs)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tID\tSIZE\tWRITTEN\tDURATION\tTAGS\tTRUST")
	var written int64
	var dur float64
	for _, rev := range revs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			rev.Time.Local().Format("2006-01-02 15:04:05"), rev.ID, HumanBytes(rev.Size),
			HumanBytes(rev.Stats.BytesWritten), humanDuration(rev.Stats.Duration),
			strings.Join(rev.Tags, ","), rev.Trust)
		written += rev.Stats.BytesWritten
		dur += rev.Stats.Duration
	}
	fmt.Fprintf(tw, "%d revisions\t\t\t%s\t%s\t\t\n", len(revs), HumanBytes(written), humanDuration(dur))
	return tw.Flush()
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
