package button

import (
	"encoding/binary"
	"strings"
	"testing"
	"time"
)

// record encodes one struct input_event in native byte order.
func record(sec, usec int64, typ, code uint16, value int32) []byte {
	b := make([]byte, InputEventSize)
	tv := InputEventSize - 8
	if tv == 16 {
		binary.NativeEndian.PutUint64(b, uint64(sec))
		binary.NativeEndian.PutUint64(b[8:], uint64(usec))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(sec))
		binary.NativeEndian.PutUint32(b[4:], uint32(usec))
	}
	binary.NativeEndian.PutUint16(b[tv:], typ)
	binary.NativeEndian.PutUint16(b[tv+2:], code)
	binary.NativeEndian.PutUint32(b[tv+4:], uint32(value))
	return b
}

func TestParseInputEvents(t *testing.T) {
	in := append(record(12, 345678, evKey, 0x198, 1), record(12, 345678, evSyn, synReport, 0)...)
	in = append(in, record(16, 500000, evKey, 0x198, 0)...)
	got, err := ParseInputEvents(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []InputEvent{
		{Time: 12*time.Second + 345678*time.Microsecond, Type: evKey, Code: 0x198, Value: 1},
		{Time: 12*time.Second + 345678*time.Microsecond, Type: evSyn, Code: synReport},
		{Time: 16*time.Second + 500*time.Millisecond, Type: evKey, Code: 0x198, Value: 0},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d events, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []struct {
		b    []byte
		want string
	}{
		{in[:InputEventSize+3], "is not a multiple"},
		{record(1, 1000000, evKey, 1, 1), "out of range"},
		{record(-1, 0, evKey, 1, 1), "out of range"},
	} {
		if _, err := ParseInputEvents(bad.b); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("ParseInputEvents(bad) = %v, want %q", err, bad.want)
		}
	}
}

func FuzzParseInputEvents(f *testing.F) {
	f.Add(record(12, 345678, evKey, 0x198, 1))
	f.Add(append(record(1, 2, evSyn, synDropped, 0), record(1, 3, evSyn, synReport, 0)...))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := ParseInputEvents(b)
		if err != nil {
			return
		}
		if len(evs) != len(b)/InputEventSize {
			t.Fatalf("%d events from %d bytes", len(evs), len(b))
		}
		for _, e := range evs {
			if e.Time < 0 {
				t.Fatalf("negative time %v", e.Time)
			}
		}
	})
}

func TestFindInputDeviceNone(t *testing.T) {
	glob := func(string) ([]string, error) { return nil, nil }
	_, err := FindInputDevice(0x198, "keys", glob)
	if err == nil || !strings.Contains(err.Error(), "no input device reports key 408 (no /dev/input/event* devices: is evdev loaded?)") {
		t.Fatalf("FindInputDevice = %v", err)
	}
	glob = func(string) ([]string, error) { return []string{"/nonexistent/event3"}, nil }
	_, err = FindInputDevice(0x198, "keys", glob)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/event3: no such file or directory") {
		t.Fatalf("FindInputDevice = %v", err)
	}
	s := NewInputSource(0x198, "keys")
	s.Glob = func(string) ([]string, error) { return nil, nil }
	if _, _, err := s.Start(); err == nil || !strings.Contains(err.Error(), "key 408") {
		t.Fatalf("Start = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close of an unstarted source = %v", err)
	}
}

func TestGPIOHandlerLoss(t *testing.T) {
	ch := make(chan Event, 2)
	h := &gpioHandler{ch: ch}
	h.handle(gpiocdevEvent(1, true, 100))
	h.handle(gpiocdevEvent(3, false, 200)) // seqno 2 missing: the kernel queue overflowed
	if e := <-ch; e.Lost || !e.Pressed || e.At != 100 {
		t.Errorf("first = %+v", e)
	}
	if e := <-ch; !e.Lost || e.Pressed {
		t.Errorf("after a gap = %+v, want Lost", e)
	}
	h.handle(gpiocdevEvent(4, true, 300))
	h.handle(gpiocdevEvent(5, false, 400))
	h.handle(gpiocdevEvent(6, true, 500)) // channel full: dropped
	<-ch
	<-ch
	h.handle(gpiocdevEvent(7, false, 600))
	if e := <-ch; !e.Lost || e.At != 600 {
		t.Errorf("after a full channel = %+v, want Lost", e)
	}
}
