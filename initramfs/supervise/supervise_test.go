package supervise

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/internal/lockedbuf"
	"github.com/rknas/firmware/internal/waittest"
)

// The test binary doubles as the supervised daemon: with SUPERVISE_HELPER set
// it behaves as the variable says instead of running tests.
func TestMain(m *testing.M) {
	switch os.Getenv("SUPERVISE_HELPER") {
	case "":
		os.Exit(m.Run())
	case "exit1":
		os.Stdout.WriteString("helper ran\n")
		os.Exit(1)
	case "exit3":
		os.Exit(ExitNoRestart)
	case "gate":
		// Says what it was given: its last argument, and what fd 3 holds.
		f := os.NewFile(3, "gate")
		if fi, err := f.Stat(); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			os.Stdout.WriteString("args " + os.Args[len(os.Args)-1] + ", no gate\n")
		} else {
			b, _ := io.ReadAll(f)
			os.Stdout.WriteString("args " + os.Args[len(os.Args)-1] + ", gate " + strings.TrimSpace(string(b)) + "\n")
		}
		os.Exit(1)
	case "serve":
		// Runs until SIGTERM, which ends the process with the default action.
		os.Stdout.WriteString("helper ready\n")
		select {}
	}
}

func helper(mode string, out *lockedbuf.Buffer, started chan int) *Service {
	return &Service{
		Name: mode, Path: os.Args[0], Env: []string{"SUPERVISE_HELPER=" + mode},
		Output: out, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond,
		StopTimeout: 5 * time.Second,
		Started:     func(pid int) { started <- pid },
	}
}

func TestRun(t *testing.T) {
	t.Run("restarts a crashing daemon", func(t *testing.T) {
		var out lockedbuf.Buffer
		started := make(chan int, 100)
		s := helper("exit1", &out, started)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		for range 3 {
			waittest.Recv(t, started, "the daemon to start")
		}
		cancel()
		if err := waittest.Recv(t, done, "Run to return after cancel"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	})
	t.Run("exit code 3 stops restarts", func(t *testing.T) {
		var out lockedbuf.Buffer
		started := make(chan int, 100)
		s := helper("exit3", &out, started)
		if err := s.Run(context.Background()); !errors.Is(err, ErrNoRestart) {
			t.Fatalf("Run = %v, want ErrNoRestart", err)
		}
		if n := len(started); n != 1 {
			t.Fatalf("started %d times, want 1", n)
		}
	})
	t.Run("cancel stops the daemon with SIGTERM", func(t *testing.T) {
		var out lockedbuf.Buffer
		started := make(chan int, 100)
		s := helper("serve", &out, started)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		waittest.Recv(t, started, "the daemon to start")
		cancel()
		begin := time.Now()
		if err := waittest.Recv(t, done, "Run to return after cancel"); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
		// SIGTERM ends the helper at once; SIGKILL would come only after StopTimeout.
		if d := time.Since(begin); d >= s.StopTimeout {
			t.Fatalf("stop took %v: SIGTERM was not delivered", d)
		}
		if len(started) != 0 {
			t.Fatalf("daemon restarted after cancel")
		}
	})
	t.Run("the gate goes to the first start only", func(t *testing.T) {
		var out lockedbuf.Buffer
		started := make(chan int, 100)
		s := helper("gate", &out, started)
		s.Args = []string{"plain"}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		s.Gate, s.GateArgs = r, []string{"gated"}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		waittest.Recv(t, started, "the first start")
		w.WriteString("go\n")
		w.Close() // the supervisor's copy of r is closed, so the daemon sees EOF
		waittest.Recv(t, started, "the second start")
		waittest.Recv(t, started, "the third start")
		cancel()
		waittest.Recv(t, done, "Run to return after cancel")
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		if len(lines) < 2 || lines[0] != "args gated, gate go" || lines[1] != "args plain, no gate" {
			t.Fatalf("the daemon's starts said:\n%s", out.String())
		}
	})
	t.Run("missing binary is retried, not fatal", func(t *testing.T) {
		s := &Service{Name: "missing", Path: "/nonexistent/daemon", MinBackoff: time.Millisecond}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := s.Run(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run = %v, want deadline exceeded", err)
		}
	})
}

func TestRotatingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "d.log")
	r := &RotatingFile{Path: path, MaxBytes: 10}
	defer r.Close()
	for _, line := range []string{"aaaa\n", "bbbb\n", "cccc\n", "dddd\n", "eeee\n"} {
		if _, err := r.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	cur, _ := os.ReadFile(path)
	old, _ := os.ReadFile(path + ".1")
	if string(cur) != "eeee\n" || string(old) != "cccc\ndddd\n" {
		t.Fatalf("current %q, previous %q", cur, old)
	}
}

func TestTeeSurvivesFailingWriter(t *testing.T) {
	var ok bytes.Buffer
	bad := &RotatingFile{Path: filepath.Join(t.TempDir(), "no", "such", "dir"), MaxBytes: 10}
	n, err := Tee{bad, &ok}.Write([]byte("hello"))
	if n != 5 || err != nil || !strings.Contains(ok.String(), "hello") {
		t.Fatalf("Tee.Write = %d, %v; console got %q", n, err, ok.String())
	}
}
