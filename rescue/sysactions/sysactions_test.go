//go:build linux

package sysactions_test

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/sysactions"

	"github.com/rknas/firmware/internal/waittest"
)

// The tests never let SetClock, Reboot or PowerOff reach the kernel: on this
// host they would act on the machine itself.

func TestStatus(t *testing.T) {
	st, err := sysactions.System{Board: "Test Board", Version: "v1"}.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Board != "Test Board" || st.Version != "v1" || st.AuthdOK {
		t.Errorf("status %+v", st)
	}
	for _, a := range st.Addresses {
		if strings.HasPrefix(a, "lo ") || strings.Contains(a, " fe80:") || !strings.Contains(a, "/") {
			t.Errorf("address %q should not be listed", a)
		}
	}
	if d := time.Since(st.Clock.Now); d < 0 || d > time.Minute {
		t.Errorf("clock %v is not now", st.Clock.Now)
	}
	t.Logf("status on this host: %+v", st)
}

func TestNotWired(t *testing.T) {
	var s sysactions.System
	if _, err := s.ResetAdmin(context.Background()); !errors.Is(err, console.ErrNotAvailable) {
		t.Errorf("ResetAdmin: %v", err)
	}
	if _, err := s.ResetNetwork(context.Background()); !errors.Is(err, console.ErrNotAvailable) {
		t.Errorf("ResetNetwork: %v", err)
	}
	if _, err := s.Audit(context.Background(), 5); !errors.Is(err, console.ErrNotAvailable) {
		t.Errorf("Audit: %v", err)
	}
}

func TestRebootViaInit(t *testing.T) {
	// The test process itself stands in for uinit and catches the signals.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR2)
	defer signal.Stop(sigs)
	s := sysactions.System{InitPID: os.Getpid()}
	if err := s.Reboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := waittest.Recv(t, sigs, "the reboot signal"); got != syscall.SIGTERM {
		t.Errorf("reboot sent %v, want SIGTERM", got)
	}
	if err := s.PowerOff(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := waittest.Recv(t, sigs, "the power-off signal"); got != syscall.SIGUSR2 {
		t.Errorf("power off sent %v, want SIGUSR2", got)
	}
	if pid := sysactions.ParentIfNamed("uinit"); pid != 0 {
		t.Errorf("ParentIfNamed(uinit) = %d under go test", pid)
	}
}
