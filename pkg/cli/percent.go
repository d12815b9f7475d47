package cli

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"
)

// Percent is a flag value such as "5%", "0.5%", "5" or "all" (= 100%).
type Percent float64

// Decode implements kong.MapperValue.
func (p *Percent) Decode(ctx *kong.DecodeContext) error {
	var s string
	if err := ctx.Scan.PopValueInto("percent", &s); err != nil {
		return err
	}
	v, err := ParsePercent(s)
	if err != nil {
		return err
	}
	*p = Percent(v)
	return nil
}

// ParsePercent parses "N%", "N" or "all" into a number in (0, 100].
func ParsePercent(s string) (float64, error) {
	if s == "all" {
		return 100, nil
	}
	v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
	if err != nil || !(v > 0 && v <= 100) { // NaN is neither
		return 0, fmt.Errorf("%w: %q is not a percentage in (0, 100] or \"all\"", ErrUsage, s)
	}
	return v, nil
}
