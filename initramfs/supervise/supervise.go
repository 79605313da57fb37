// Package supervise keeps a daemon running: it restarts it with backoff, stops
// it cleanly on shutdown and honours the exit code that means "do not restart".
package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"syscall"
	"time"
)

// ExitNoRestart is the exit code by which a daemon says its configuration is
// wrong and restarting it would only repeat the failure.
const ExitNoRestart = 3

// ErrNoRestart is returned by Run when the daemon exited with ExitNoRestart.
var ErrNoRestart = errors.New("supervise: daemon asked not to be restarted (exit code 3)")

// Service describes one supervised daemon. The zero values of the durations
// take the defaults documented on each field.
type Service struct {
	Name string   // for log lines
	Path string   // executable
	Args []string // arguments after the program name
	Env  []string // environment; nil inherits the supervisor's
	// Output receives the daemon's stdout and stderr (console plus log file).
	Output io.Writer
	// MinBackoff is the first delay before a restart (default 1 s); it doubles
	// up to MaxBackoff (default 30 s) and starts over after the daemon ran
	// longer than StableAfter (default 60 s).
	MinBackoff, MaxBackoff, StableAfter time.Duration
	// StopTimeout is how long a stop waits after SIGTERM before SIGKILL
	// (default 10 s).
	StopTimeout time.Duration
	// Started, when set, is called with the pid each time the daemon starts.
	Started func(pid int)
	Log     *slog.Logger
	// Gate, when set, goes to the first start only, as file descriptor 3,
	// with GateArgs after Args (authd's -start-gate-fd 3): a daemon started
	// before the boot has decided everything waits on it. The supervisor
	// closes its copy once that start began; later starts have no gate.
	Gate     *os.File
	GateArgs []string
}

func (s *Service) defaults() {
	if s.MinBackoff <= 0 {
		s.MinBackoff = time.Second
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = 30 * time.Second
	}
	if s.StableAfter <= 0 {
		s.StableAfter = time.Minute
	}
	if s.StopTimeout <= 0 {
		s.StopTimeout = 10 * time.Second
	}
	if s.Log == nil {
		s.Log = slog.Default()
	}
	if s.Output == nil {
		s.Output = io.Discard
	}
}

// Run starts the daemon and restarts it whenever it ends, until ctx is
// cancelled (then it sends SIGTERM, waits up to StopTimeout, kills, and
// returns ctx's error) or the daemon exits with ExitNoRestart (ErrNoRestart).
// A daemon that cannot be started at all (missing binary) is retried with
// backoff too, since a later update may bring it.
func (s *Service) Run(ctx context.Context) error {
	s.defaults()
	backoff := s.MinBackoff
	for {
		started := time.Now()
		err := s.once(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == ExitNoRestart {
			s.Log.Error("daemon asked not to be restarted", "service", s.Name, "exit_code", ExitNoRestart)
			return ErrNoRestart
		}
		if time.Since(started) > s.StableAfter {
			backoff = s.MinBackoff
		}
		s.Log.Warn("daemon ended; restarting", "service", s.Name, "err", err, "in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, s.MaxBackoff)
	}
}

// once runs the daemon a single time and returns how it ended.
func (s *Service) once(ctx context.Context) error {
	args := s.Args
	gate := s.Gate
	if gate != nil {
		args = append(slices.Clone(args), s.GateArgs...)
	}
	cmd := exec.CommandContext(ctx, s.Path, args...)
	if gate != nil {
		cmd.ExtraFiles = []*os.File{gate}
	}
	cmd.Env = s.Env
	cmd.Stdout = s.Output
	cmd.Stderr = s.Output
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = s.StopTimeout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("supervise: start %s: %w", s.Path, err)
	}
	if gate != nil {
		// The daemon has its own copy now; a start that failed keeps the
		// gate for the next try.
		gate.Close()
		s.Gate = nil
	}
	s.Log.Info("daemon started", "service", s.Name, "pid", cmd.Process.Pid)
	if s.Started != nil {
		s.Started(cmd.Process.Pid)
	}
	err := cmd.Wait()
	if err == nil {
		return fmt.Errorf("supervise: %s exited with status 0", s.Name)
	}
	return err
}
