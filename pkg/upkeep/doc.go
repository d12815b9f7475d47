// Package upkeep is what backy-store does to a repository after a backup:
// status reports, verification, distrust, tags, forgetting and expiring
// revisions, and purging chunks no revision needs.
package upkeep
