//go:build !librbd

package doccheck

// buildTags: built without librbd, the walk leaves out the librbd engine,
// which needs librbd's headers to type-check.
const buildTags = ""
