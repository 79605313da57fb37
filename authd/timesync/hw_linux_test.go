//go:build linux && hwtest

package timesync_test

import (
	"os"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/timesync"
)

// These tests change the real system clock and RTC, so they are built only
// with -tags hwtest, for the arm64 VM (make test-vm), never for a
// development machine, where stepping the clock would disturb everything
// else running there. requireHW refuses to run them anywhere but the VM,
// and there a missing /dev/rtc0 or root fails the test.
func requireHW(t *testing.T) {
	t.Helper()
	if os.Getenv("RKNAS_REQUIRE_HW") != "1" {
		t.Fatal("these tests step the real clock: run them in the VM (make test-vm), which sets RKNAS_REQUIRE_HW=1")
	}
	if os.Geteuid() != 0 {
		t.Fatal("RKNAS_REQUIRE_HW=1 but not root: setting the clock needs CAP_SYS_TIME")
	}
}

func TestHWRTC(t *testing.T) {
	requireHW(t)
	rtc := timesync.DetectRTC(timesync.DefaultRTCPath)
	if rtc == nil {
		t.Fatalf("%s is missing", timesync.DefaultRTCPath)
	}
	orig, err := rtc.Read()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("rtc read %v, system %v", orig, time.Now().UTC())
	defer func() {
		if err := rtc.Write(time.Now()); err != nil {
			t.Errorf("restoring the rtc: %v", err)
		}
	}()
	want := time.Date(2031, 7, 8, 9, 10, 11, 0, time.UTC)
	if err := rtc.Write(want); err != nil {
		t.Fatal(err)
	}
	got, err := rtc.Read()
	if err != nil {
		t.Fatal(err)
	}
	// The RTC keeps ticking between the write and the read.
	if d := got.Sub(want); d < 0 || d > 2*time.Second {
		t.Errorf("rtc read back %v after writing %v", got, want)
	}
	if err := rtc.Write(time.Time{}); err == nil {
		t.Error("rtc accepted the zero time")
	}
}

func TestHWSetter(t *testing.T) {
	requireHW(t)
	var s timesync.SystemSetter
	if err := s.Step(time.Time{}); err == nil {
		t.Fatal("Step accepted the zero time")
	}
	// Wall-clock readings (Round(0) drops the monotonic one, which a step
	// does not move).
	before := time.Now()
	if err := s.Step(before.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	elapsed := after.Sub(before) // monotonic
	jump := after.Round(0).Sub(before.Round(0)) - elapsed
	if err := s.Step(time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if d := jump - time.Hour; d.Abs() > 100*time.Millisecond {
		t.Errorf("wall clock jumped %v, want 1h", jump)
	}
	if err := s.Slew(5 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	pending, err := timesync.PendingSlew()
	if err != nil {
		t.Fatal(err)
	}
	if pending <= 0 || pending > 5*time.Millisecond {
		t.Errorf("pending slew %v after asking for 5ms", pending)
	}
	if err := s.Slew(0); err != nil {
		t.Fatal(err)
	}
	if pending, err := timesync.PendingSlew(); err != nil || pending != 0 {
		t.Errorf("pending slew %v, %v after cancelling", pending, err)
	}
}

// A boot in 1970 on real hardware: the service moves the real clock forward
// to the saved time, and to the RTC when that is later.
func TestHWRestoreAtBoot(t *testing.T) {
	requireHW(t)
	start := time.Now()
	realNow := func() time.Time { return start.Round(0).Add(time.Since(start)) }
	var setter timesync.SystemSetter
	rtc := timesync.DetectRTC(timesync.DefaultRTCPath)
	if rtc == nil {
		t.Fatalf("%s is missing", timesync.DefaultRTCPath)
	}
	t.Cleanup(func() {
		if err := setter.Step(realNow()); err != nil {
			t.Errorf("restoring the clock: %v", err)
		}
		if err := rtc.Write(realNow()); err != nil {
			t.Errorf("restoring the rtc: %v", err)
		}
	})
	cfg := timesync.Config{StateDir: t.TempDir(), Settings: timesync.Settings{Enabled: false}, BuildTime: build}
	s1, err := timesync.New(cfg, timesync.Deps{Setter: setter})
	if err != nil {
		t.Fatal(err)
	}
	saved := time.Now().Round(0) // SaveTime saves a moment later
	if err := s1.SaveTime(); err != nil {
		t.Fatal(err)
	}

	if err := setter.Step(time.Unix(365*24*3600, 0)); err != nil {
		t.Fatal(err)
	}
	s2, err := timesync.New(cfg, timesync.Deps{Setter: setter})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Now().Round(0).Sub(saved); d < 0 || d > time.Minute {
		t.Errorf("after restore the clock is %v, want just after the saved %v", time.Now(), saved)
	}
	if st := s2.Status(); st.State != timesync.StateEstimated || st.Source != timesync.SourceSaved {
		t.Errorf("status %+v, want estimated from the saved time", st)
	}

	rtcTime := saved.Add(time.Hour)
	if err := rtc.Write(rtcTime); err != nil {
		t.Fatal(err)
	}
	if err := setter.Step(time.Unix(365*24*3600, 0)); err != nil {
		t.Fatal(err)
	}
	s3, err := timesync.New(cfg, timesync.Deps{Setter: setter, RTC: rtc})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Now().Round(0).Sub(rtcTime); d < -time.Second || d > time.Minute {
		t.Errorf("after restore the clock is %v, want the rtc's %v", time.Now(), rtcTime)
	}
	if st := s3.Status(); st.State != timesync.StateEstimated || st.Source != timesync.SourceRTC {
		t.Errorf("status %+v, want estimated from the rtc", st)
	}
}
