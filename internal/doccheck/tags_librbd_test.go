//go:build librbd

package doccheck

// buildTags are the tags this test binary was built with, for the packages
// it loads itself: with librbd, pkg/rbd/librbd's files are walked too.
const buildTags = "librbd,pacific"
