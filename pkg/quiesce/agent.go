package quiesce

import (
	"context"
	"time"
)

// snapshotByAgent runs the snapshot command and waits for the snapshot to
// appear, up to the timeout. The command may make the snapshot before it
// exits or ask someone else to make it and exit at once; a command that
// fails before the snapshot is there ends the wait at once.
//
// A snapshot the agent makes after the wait is not leaked: with the crash
// fallback, Snapshot then makes the snapshot of that very name itself, so
// the agent's attempt fails - or, when the agent got there first after
// all, the existing snapshot is adopted (recorded as Agent, with the
// reason). With the fail fallback a snapshot that exists when the run
// gives up is removed; one made even later carries backy's prefix and is
// removed by the next run, which removes every older backy snapshot except
// its base.
func snapshotByAgent(ctx context.Context, opt *Options, s Snapshotter) (res Result, err error) {
	timeout := opt.timeout()
	poll := opt.Poll
	if poll <= 0 {
		poll = time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmdDone := make(chan error, 1)
	cmdCtx, cmdCancel := context.WithCancel(wctx)
	defer cmdCancel()
	go func() { cmdDone <- shell(cmdCtx, opt.SnapshotCommand, opt.Env) }()
	cmdRunning := true
	tick := time.NewTicker(poll)
	defer tick.Stop()
	var cmdErr error
	for {
		ok, err := s.Exists(wctx)
		if err != nil && wctx.Err() == nil {
			return Result{}, err
		}
		if ok {
			if cmdRunning {
				// Its job is done; give it the rest of the time to end.
				select {
				case <-cmdDone:
				case <-wctx.Done():
					cmdCancel()
					<-cmdDone
				}
			}
			opt.log().Info("snapshot made by the agent")
			return Result{Consistency: Agent}, nil
		}
		if !cmdRunning && cmdErr != nil {
			return Result{}, giveUp(ctx, opt, s, fallbackf(ErrNoSnapshot, "snapshot command failed: %v", cmdErr))
		}
		select {
		case cmdErr = <-cmdDone:
			cmdRunning = false
		case <-tick.C:
		case <-wctx.Done():
			if cmdRunning {
				cmdCancel()
				<-cmdDone
			}
			if ctx.Err() != nil {
				return Result{}, ctx.Err()
			}
			return Result{}, giveUp(ctx, opt, s, fallbackf(ErrNoSnapshot, "no snapshot within %s", timeout))
		}
	}
}

// giveUp prepares for the fallback: with FallbackFail a snapshot that
// appeared meanwhile is removed; with FallbackCrash, Snapshot creates the
// name itself, and adopts the agent's snapshot when that create fails
// because it just appeared.
func giveUp(ctx context.Context, opt *Options, s Snapshotter, fb *fallback) error {
	if opt.Fallback == FallbackFail {
		if ok, _ := s.Exists(ctx); ok {
			opt.log().Info("removing the snapshot the agent made too late")
			s.Remove(ctx)
		}
	}
	return fb
}
