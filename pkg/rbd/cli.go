package rbd

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"

	"github.com/backy/backy/pkg/cephconn"
	"github.com/backy/backy/pkg/rbddiff"
)

// Conn says how to reach the cluster; both engines take it.
type Conn = cephconn.Options

// CLI is the engine that runs the rbd command.
type CLI struct {
	Conn
	Command string // the rbd program; "" for "rbd" from $PATH
}

// NewCLI returns the command-line engine.
func NewCLI(c Conn) *CLI { return &CLI{Conn: c} }

// Name implements Engine.
func (c *CLI) Name() string { return "cli" }

// Close implements Engine.
func (c *CLI) Close() error { return nil }

func (c *CLI) command(ctx context.Context, args ...string) (*exec.Cmd, *tail) {
	prog := cmp.Or(c.Command, "rbd")
	var global []string
	if c.Conf != "" {
		global = append(global, "-c", c.Conf)
	}
	if c.User != "" {
		global = append(global, "--id", c.User)
	}
	cmd := exec.CommandContext(ctx, prog, append(global, args...)...)
	stderr := &tail{max: 4096}
	cmd.Stderr = stderr
	return cmd, stderr
}

// run runs rbd with args and returns its standard output.
func (c *CLI) run(ctx context.Context, args ...string) ([]byte, error) {
	cmd, stderr := c.command(ctx, args...)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	if err := cmd.Run(); err != nil {
		return nil, commandError(ctx, args, err, stderr)
	}
	return stdout.Bytes(), nil
}

// commandError describes a failed rbd run by its last line of stderr,
// recognising the errno texts that mean "not there" and "already there".
func commandError(ctx context.Context, args []string, err error, stderr *tail) error {
	if ctx.Err() != nil {
		return fmt.Errorf("rbd %s: %w", strings.Join(args, " "), ctx.Err())
	}
	msg := stderr.lastLine()
	sentinel := ErrCommand
	switch {
	case strings.Contains(msg, "(2) No such file or directory"):
		sentinel = ErrNotFound
	case strings.Contains(msg, "(17) File exists") && len(args) > 1 && args[0] == "snap" && args[1] == "create":
		// Only snap create means a snapshot; other EEXISTs (an admin
		// socket left by another client, say) are plain failures.
		sentinel = ErrSnapExists
	}
	if msg == "" {
		return fmt.Errorf("%w: rbd %s: %v", sentinel, strings.Join(args, " "), err)
	}
	return fmt.Errorf("%w: rbd %s: %v: %s", sentinel, strings.Join(args, " "), err, msg)
}

// Snapshots implements Engine.
func (c *CLI) Snapshots(ctx context.Context, img Image) ([]Snap, error) {
	out, err := c.run(ctx, "snap", "ls", "--format", "json", img.Spec())
	if err != nil {
		return nil, err
	}
	var list []struct {
		ID   uint64 `json:"id"`
		Name string `json:"name"`
	}
	if err := json.Unmarshal(out, &list); err != nil {
		return nil, fmt.Errorf("%w: rbd snap ls %s: %v", ErrCommand, img.Spec(), err)
	}
	snaps := make([]Snap, len(list))
	for i, s := range list {
		snaps[i] = Snap{ID: s.ID, Name: s.Name}
	}
	slices.SortFunc(snaps, func(a, b Snap) int { return cmp.Compare(a.ID, b.ID) })
	return snaps, nil
}

// CreateSnapshot implements Engine.
func (c *CLI) CreateSnapshot(ctx context.Context, img Image) error {
	_, err := c.run(ctx, "snap", "create", "--no-progress", img.String())
	return err
}

// RemoveSnapshot implements Engine.
func (c *CLI) RemoveSnapshot(ctx context.Context, img Image) error {
	_, err := c.run(ctx, "snap", "rm", "--no-progress", img.String())
	return err
}

// Diff implements Engine with `rbd export-diff`. The child's exit status
// counts as much as its output: a diff that parsed to its end record from
// a child that then failed is still a failure.
func (c *CLI) Diff(ctx context.Context, req DiffRequest, sink Sink) error {
	args := []string{"export-diff", "--no-progress"}
	if req.From != "" {
		args = append(args, "--from-snap", req.From)
	}
	if req.WholeObject {
		args = append(args, "--whole-object")
	}
	args = append(args, req.Image.String(), "-")
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd, stderr := c.command(cctx, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("rbd: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %w", ErrCommand, err)
	}
	perr := c.readDiff(cctx, stdout, req, sink)
	if perr != nil && !errors.Is(perr, io.ErrUnexpectedEOF) {
		cancel() // we stopped reading: the child must not wait for us
	}
	werr := cmd.Wait()
	switch {
	case werr != nil && (perr == nil || errors.Is(perr, io.ErrUnexpectedEOF)):
		return commandError(ctx, args, werr, stderr)
	case perr != nil:
		return perr
	}
	return nil
}

func (c *CLI) readDiff(ctx context.Context, in io.Reader, req DiffRequest, sink Sink) error {
	r := rbddiff.NewReader(in)
	h, err := r.Header()
	if err != nil {
		return err
	}
	if h.ToSnap != req.Image.Snap || h.FromSnap != req.From {
		return fmt.Errorf("%w: diff from %q to %q, asked for %q to %q", ErrDiffMismatch, h.FromSnap, h.ToSnap, req.From, req.Image.Snap)
	}
	return copyDiff(ctx, r, h, sink)
}

// tail keeps the last max bytes written to it (a child's stderr).
type tail struct {
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tail) lastLine() string {
	s := strings.TrimSpace(string(t.b))
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
