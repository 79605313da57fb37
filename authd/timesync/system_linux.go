package timesync

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"reflect"
	"time"

	"golang.org/x/sys/unix"
)

// SystemSetter sets the kernel's CLOCK_REALTIME. It needs CAP_SYS_TIME.
type SystemSetter struct{}

var _ Setter = SystemSetter{}

// Step sets CLOCK_REALTIME to t with clock_settime(2).
func (SystemSetter) Step(t time.Time) error {
	if t.IsZero() {
		return ErrZeroTime
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		return fmt.Errorf("timesync: clock_settime: %w", err)
	}
	return nil
}

// Slew asks the kernel to move the clock by offset gradually, the way
// adjtime(3) does (ADJ_OFFSET_SINGLESHOT): at most 500 µs per second, so
// 500 ms take about 17 minutes. A new slew replaces what is left of the
// previous one, which is right because each measurement includes it.
func (SystemSetter) Slew(offset time.Duration) error {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SINGLESHOT}
	// Timex.Offset is int64 on 64-bit targets and int32 on 32-bit ones.
	reflect.ValueOf(&tx.Offset).Elem().SetInt(offset.Microseconds())
	if _, err := unix.Adjtimex(&tx); err != nil {
		return fmt.Errorf("timesync: adjtimex: %w", err)
	}
	return nil
}

// PendingSlew returns how much of the last Slew the kernel has not applied
// yet.
func PendingSlew() (time.Duration, error) {
	tx := unix.Timex{Modes: unix.ADJ_OFFSET_SS_READ}
	if _, err := unix.Adjtimex(&tx); err != nil {
		return 0, fmt.Errorf("timesync: adjtimex: %w", err)
	}
	return time.Duration(reflect.ValueOf(tx.Offset).Int()) * time.Microsecond, nil
}

// DevRTC is a real-time clock device such as /dev/rtc0, kept in UTC as Linux
// expects. Each call opens the device, so nothing stays open between the
// rare reads and writes.
type DevRTC struct {
	Path string
}

var _ RTC = (*DevRTC)(nil)

// DetectRTC returns the RTC at path, or nil (a nil interface) when the board
// has none.
func DetectRTC(path string) RTC {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return &DevRTC{Path: path}
}

// Read returns the RTC's time with the RTC_RD_TIME ioctl.
func (r *DevRTC) Read() (time.Time, error) {
	f, err := os.Open(r.Path)
	if err != nil {
		return time.Time{}, fmt.Errorf("timesync: rtc read: %w", err)
	}
	defer f.Close()
	rt, err := unix.IoctlGetRTCTime(int(f.Fd()))
	if err != nil {
		return time.Time{}, fmt.Errorf("timesync: rtc read %s: %w", r.Path, err)
	}
	return time.Date(int(rt.Year)+1900, time.Month(rt.Mon+1), int(rt.Mday),
		int(rt.Hour), int(rt.Min), int(rt.Sec), 0, time.UTC), nil
}

// Write sets the RTC to t with the RTC_SET_TIME ioctl. An RTC counts whole
// seconds, so t is rounded to the nearest one: an error of at most half a
// second, far inside a 30-second TOTP step.
func (r *DevRTC) Write(t time.Time) error {
	if t.IsZero() {
		return ErrZeroTime
	}
	t = t.UTC().Round(time.Second)
	f, err := os.OpenFile(r.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("timesync: rtc write: %w", err)
	}
	defer f.Close()
	rt := unix.RTCTime{
		Sec: int32(t.Second()), Min: int32(t.Minute()), Hour: int32(t.Hour()),
		Mday: int32(t.Day()), Mon: int32(t.Month()) - 1, Year: int32(t.Year() - 1900),
		Wday: int32(t.Weekday()), Yday: int32(t.YearDay() - 1),
	}
	if err := unix.IoctlSetRTCTime(int(f.Fd()), &rt); err != nil {
		return fmt.Errorf("timesync: rtc write %s: %w", r.Path, err)
	}
	return nil
}
