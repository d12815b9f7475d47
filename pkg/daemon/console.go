package daemon

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/backy/backy/pkg/jobstatus"

	"github.com/backy/backy/pkg/fsperm"
)

// Console limits: a forgotten telnet session must not hold resources for
// ever, and a flood of connections must not starve the daemon.
const (
	maxConsoleConns = 32
	consoleIdle     = 15 * time.Minute
	maxConsoleLine  = 4096
)

// consoleHelp is the help command's text.
const consoleHelp = `commands:
  jobs [REGEX]  list the jobs, or those whose name matches REGEX
  status        the daemon's state
  fleet         the fleet's members and who owns which job (in a fleet)
  run JOB       run JOB now (ignores its backoff; only a success resets that)
  runall        run every job now
  reload        read the configuration again (like SIGHUP)
  help          this text
  quit          close the connection
`

// console is the line-based TCP console: one command per line, plain text
// back, so telnet, nc and scripts can use it alike.
type console struct {
	d         *daemon
	listeners []net.Listener
	mu        sync.Mutex
	conns     map[net.Conn]struct{}
	closed    bool
	wg        sync.WaitGroup
}

// openConsole listens on every address and on the Unix socket; none means
// no console. Not being able to listen is an error at start: an operator
// who configured a console should not find it silently missing.
func openConsole(d *daemon, addrs []string, port int, socket string) (*console, error) {
	c := &console{d: d, conns: map[net.Conn]struct{}{}}
	if socket != "" {
		l, err := listenUnix(socket)
		if err != nil {
			return nil, fmt.Errorf("daemon: console: %w", err)
		}
		c.listeners = append(c.listeners, l)
	}
	for _, a := range addrs {
		l, err := net.Listen("tcp", net.JoinHostPort(a, strconv.Itoa(port)))
		if err != nil {
			c.close()
			return nil, fmt.Errorf("daemon: console: %w", err)
		}
		c.listeners = append(c.listeners, l)
	}
	return c, nil
}

// listenUnix listens on a Unix socket that only the daemon's user may
// connect to (mode 0600; connecting needs write permission). A socket left
// by a daemon that died is removed: the base directory's lock says no
// other daemon is using it. The socket's directory is made private if
// missing, so the moment between bind and chmod is closed to others too.
func listenUnix(path string) (net.Listener, error) {
	if err := fsperm.MkdirAll(filepath.Dir(path)); err != nil {
		return nil, err
	}
	if st, err := os.Lstat(path); err == nil && st.Mode().Type() == os.ModeSocket {
		os.Remove(path)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func (c *console) where() string {
	if len(c.listeners) == 0 {
		return "off"
	}
	var s []string
	for _, l := range c.listeners {
		s = append(s, l.Addr().String())
	}
	return strings.Join(s, " ")
}

func (c *console) serve() {
	for _, l := range c.listeners {
		c.wg.Go(func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					if !errors.Is(err, net.ErrClosed) {
						c.d.log.Info(fmt.Sprintf("console: %v", err))
						time.Sleep(100 * time.Millisecond)
						continue
					}
					return
				}
				if !c.track(conn) {
					fmt.Fprintln(conn, "error: too many console connections")
					conn.Close()
					continue
				}
				c.wg.Go(func() {
					defer c.untrack(conn)
					c.session(conn)
				})
			}
		})
	}
}

func (c *console) track(conn net.Conn) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || len(c.conns) >= maxConsoleConns {
		return false
	}
	c.conns[conn] = struct{}{}
	return true
}

func (c *console) untrack(conn net.Conn) {
	c.mu.Lock()
	delete(c.conns, conn)
	c.mu.Unlock()
	conn.Close()
}

// close stops listening and ends every session.
func (c *console) close() {
	c.mu.Lock()
	c.closed = true
	for _, l := range c.listeners {
		l.Close()
	}
	for conn := range c.conns {
		conn.Close()
	}
	c.mu.Unlock()
}

func (c *console) session(conn net.Conn) {
	fmt.Fprintf(conn, "backy-schedule %s console; type help for the commands\n", c.d.opt.Version)
	sc := bufio.NewScanner(conn)
	sc.Buffer(make([]byte, 0, 256), maxConsoleLine)
	for {
		conn.SetReadDeadline(time.Now().Add(consoleIdle))
		if !sc.Scan() {
			if errors.Is(sc.Err(), bufio.ErrTooLong) {
				fmt.Fprintln(conn, "error: line too long")
			}
			return
		}
		reply, quit := c.command(strings.Fields(sc.Text()))
		conn.SetWriteDeadline(time.Now().Add(time.Minute))
		if _, err := conn.Write(reply); err != nil || quit {
			return
		}
	}
}

// command runs one console command and returns its reply.
func (c *console) command(args []string) (reply []byte, quit bool) {
	var b bytes.Buffer
	if len(args) == 0 {
		return nil, false
	}
	d := c.d
	ok := true
	switch cmd := args[0]; {
	case cmd == "help" && len(args) == 1:
		b.WriteString(consoleHelp)
	case (cmd == "quit" || cmd == "exit") && len(args) == 1:
		b.WriteString("bye\n")
		return b.Bytes(), true
	case cmd == "jobs" && len(args) <= 2:
		var re *regexp.Regexp
		if len(args) == 2 {
			var err error
			if re, err = regexp.Compile(args[1]); err != nil {
				fmt.Fprintf(&b, "error: %v\n", err)
				break
			}
		}
		ok = d.call(func() {
			if writeJobs(&b, d.fleetView(time.Now()).Jobs, re) == 0 {
				b.Reset()
				b.WriteString("no jobs match\n")
			}
		})
	case cmd == "status" && len(args) == 1:
		ok = d.call(func() { d.summary(&b, time.Now()) })
	case cmd == "fleet" && len(args) == 1:
		ok = d.call(func() { d.writeFleet(&b, time.Now()) })
	case cmd == "run" && len(args) == 2:
		ok = d.call(func() { d.runNow(&b, args[1]) })
	case cmd == "runall" && len(args) == 1:
		ok = d.call(func() { d.runAll(&b) })
	case cmd == "reload" && len(args) == 1:
		ok = d.call(func() {
			if msg, err := d.reload("console"); err != nil {
				fmt.Fprintf(&b, "error: reload failed, keeping the previous configuration: %v\n", err)
			} else {
				fmt.Fprintln(&b, msg)
			}
		})
	case cmd == "help" || cmd == "quit" || cmd == "exit" || cmd == "jobs" || cmd == "status" || cmd == "fleet" ||
		cmd == "run" || cmd == "runall" || cmd == "reload":
		fmt.Fprintf(&b, "error: wrong arguments for %s; type help\n", cmd)
	default:
		fmt.Fprintf(&b, "error: unknown command %q; type help\n", cmd)
	}
	if !ok {
		return []byte("error: backy-schedule is stopping\n"), true
	}
	return b.Bytes(), false
}

// runNow triggers one job and starts it if a worker is free.
func (d *daemon) runNow(b *bytes.Buffer, name string) {
	now := time.Now()
	if j, ok := d.s.jobs[name]; ok && !d.s.mine(j) {
		owner := "no member yet"
		if js, ok := d.fleetView(now).Jobs[name]; ok && js.Owner != "" {
			owner = js.Owner
		}
		fmt.Fprintf(b, "error: %s is run by another member of the fleet (%s); ask its console\n", name, owner)
		return
	}
	what, err := d.s.trigger(name, now)
	if err != nil {
		fmt.Fprintf(b, "error: %v\n", err)
		return
	}
	d.startDue(now)
	if what == "queued" && d.s.jobs[name].running {
		what = "started"
	} else if what == "queued" {
		what = fmt.Sprintf("queued: all %d workers are busy", d.s.global.WorkerLimit)
	}
	fmt.Fprintf(b, "%s: %s\n", name, what)
}

// runAll triggers every job this daemon runs (in a fleet, those it owns;
// the others' are for their owners' consoles).
func (d *daemon) runAll(b *bytes.Buffer) {
	now := time.Now()
	counts := map[string]int{}
	others := 0
	for _, name := range d.cfg.JobNames() {
		if j, ok := d.s.jobs[name]; ok && !d.s.mine(j) {
			others++
			continue
		}
		what, err := d.s.trigger(name, now)
		if err != nil {
			fmt.Fprintf(b, "error: %v\n", err)
			return
		}
		counts[what]++
	}
	d.startDue(now)
	started, queued := 0, 0
	for _, j := range d.s.jobs {
		switch {
		case j.running && j.started.Equal(now):
			started++
		case j.manual:
			queued++
		}
	}
	fmt.Fprintf(b, "runall: %d started, %d queued, %d already running", started, queued, counts["already running"])
	if others > 0 {
		fmt.Fprintf(b, ", %d left to other members of the fleet", others)
	}
	b.WriteString("\n")
}

// summary is the console's status command.
func (d *daemon) summary(b *bytes.Buffer, now time.Time) {
	g := d.cfg.Global
	var failing, running, queued int
	sla := map[string]int{}
	// a removed job's run too, as the workers count it; in a fleet, the
	// fleet's view (another member's job as it published it)
	for _, js := range d.fleetView(now).Jobs {
		sla[js.SLA]++
		switch {
		case js.Running:
			running++
		case js.Queued:
			queued++
		}
		if js.Failures > 0 {
			failing++
		}
	}
	fmt.Fprintf(b, "backy-schedule %s, pid %d, up %s (since %s)\n", d.opt.Version, os.Getpid(), now.Sub(d.started).Round(time.Second), when(d.started))
	fmt.Fprintf(b, "config:      %s, loaded %s\n", d.cfg.File, when(d.loaded))
	fmt.Fprintf(b, "jobs:        %d: %d running, %d queued, %d failing\n", len(d.cfg.Jobs), running, queued, failing)
	fmt.Fprintf(b, "sla:         %d ok, %d outside, %d without a trusted revision\n", sla[jobstatus.SLAOK], sla[jobstatus.SLAOutside], sla[jobstatus.SLANone])
	fmt.Fprintf(b, "workers:     %d of %d busy\n", d.s.running, g.WorkerLimit)
	fmt.Fprintf(b, "status file: %s, every %s\n", g.StatusFile, g.StatusInterval)
	fmt.Fprintf(b, "job logs:    %s\n", d.jobLogs())
	if d.s.stopping {
		b.WriteString("stopping:    yes\n")
	}
}

func (d *daemon) jobLogs() string {
	if r, ok := d.runner.(*PipelineRunner); ok {
		return r.JobLog("JOB")
	}
	return "-"
}
