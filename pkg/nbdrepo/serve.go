package nbdrepo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"syscall"

	"github.com/backy/backy/pkg/exitcode"
	"github.com/backy/backy/pkg/nbdserver"
	"github.com/backy/backy/pkg/repo"
)

// ServeOptions are what backy-nbd is told on its command line.
type ServeOptions struct {
	Dir         string        // the repository: a directory or rados:POOL/JOB
	Open        []repo.Option // how to reach it (Ceph settings)
	Host        string        // address to listen on
	Port        int           // 0 picks a free port
	Socket      string        // if set, a Unix socket to listen on instead of Host:Port
	COW         bool          // writable per-connection overlays (nbdserver.Options.COW)
	CacheChunks int
	Logger      *slog.Logger
}

// Serve opens the repository, takes its chunks lock shared, listens and
// serves its revisions until ctx is cancelled, which is a clean stop (nil).
func Serve(ctx context.Context, opt ServeOptions) error {
	log := cmp.Or(opt.Logger, slog.New(slog.DiscardHandler))
	if opt.COW {
		if err := nbdserver.CheckTempDir(""); err != nil {
			return exitcode.With(exitcode.Usage, fmt.Errorf("nbdrepo: --cow keeps its overlays in $TMPDIR (%s), which cannot hold them: %w", os.TempDir(), err))
		}
	}
	r, err := repo.Open(opt.Dir, opt.Open...)
	if err != nil {
		return err
	}
	defer r.Close()
	cat, err := New(r, Options{CacheChunks: opt.CacheChunks, Logger: log})
	if err != nil {
		return err
	}
	defer cat.Close()
	revs, bad, err := r.ScanRevisions()
	if err != nil {
		return err
	}
	for _, e := range bad {
		// Catalog.List leaves it out and Open refuses latest, N and tags
		// while it is there (repo.ResolveIntact): say so once, at start.
		log.Warn("revision not exported, its metadata is damaged: until it is forgotten, latest, N, tags and the empty name are refused; name revisions by id",
			"revision", repo.DamagedID(e), "err", e.Error())
	}
	ln, err := listen(ctx, opt)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(opt.Host); opt.Socket == "" && (ip == nil || !ip.IsLoopback()) {
		log.Warn("listening beyond loopback: NBD has no authentication or encryption, whoever reaches this address can read every revision", "addr", ln.Addr().String())
	}
	cache := cmp.Or(opt.CacheChunks, DefaultCacheChunks)
	log.Info("serving repository", "repository", r.Location(), "revisions", len(revs), "cache_mib", cache*repo.ChunkSize>>20)
	err = nbdserver.New(cat, nbdserver.Options{COW: opt.COW, Logger: log}).Serve(ctx, ln)
	st, held := cat.Stats()
	log.Info("chunk cache", "hits", st.Hits, "misses", st.Misses, "read_ahead", st.ReadAhead,
		"errors", st.Errors, "evictions", st.Evictions, "held", held)
	return err
}

// listen opens the Unix socket or the TCP port.
func listen(ctx context.Context, opt ServeOptions) (net.Listener, error) {
	if opt.Socket != "" {
		ln, err := nbdserver.ListenUnix(opt.Socket)
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, exitcode.With(exitcode.Busy, fmt.Errorf("nbdrepo: cannot listen on %s: %w (another backy-nbd serves there)", opt.Socket, syscall.EADDRINUSE))
		}
		return ln, err
	}
	addr := net.JoinHostPort(opt.Host, strconv.Itoa(opt.Port))
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, listenError(addr, err)
	}
	return ln, nil
}

// listenError says plainly why the port cannot be had. A port someone else
// listens on is a busy resource; an address that is not this host's, or a
// name that does not resolve, is a bad command line.
func listenError(addr string, err error) error {
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return exitcode.With(exitcode.Usage, fmt.Errorf("nbdrepo: cannot listen on %s: %w (give an address of this host)", addr, dns))
	case errors.Is(err, syscall.EADDRINUSE):
		return exitcode.With(exitcode.Busy, fmt.Errorf("nbdrepo: cannot listen on %s: %w (is another backy-nbd or NBD server running? choose another port with -p)", addr, syscall.EADDRINUSE))
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return exitcode.With(exitcode.Usage, fmt.Errorf("nbdrepo: cannot listen on %s: %w (not an address of this host)", addr, syscall.EADDRNOTAVAIL))
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("nbdrepo: cannot listen on %s: %w (ports below 1024 need privileges)", addr, syscall.EACCES)
	}
	return fmt.Errorf("nbdrepo: cannot listen on %s: %w", addr, err)
}
