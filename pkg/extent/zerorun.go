package extent

// ZeroRun merges adjacent zero ranges so that they leave as one record: a
// producer calls Add for every zero range in ascending order and Flush
// before anything else is written and at the end. Write receives each
// merged range; it is usually Writer.WriteZero.
type ZeroRun struct {
	Write    func(off, length int64) error
	from, to int64
}

// Add records the zero range [from, to), writing out the pending run first
// when the new range does not continue it.
func (z *ZeroRun) Add(from, to int64) error {
	if z.to != from || z.to == z.from {
		if err := z.Flush(); err != nil {
			return err
		}
		z.from = from
	}
	z.to = to
	return nil
}

// Flush writes the pending run, if any.
func (z *ZeroRun) Flush() error {
	if z.to > z.from {
		if err := z.Write(z.from, z.to-z.from); err != nil {
			return err
		}
	}
	z.from, z.to = 0, 0
	return nil
}
