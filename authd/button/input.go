package button

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// evdev constants from linux/input.h and linux/input-event-codes.h.
const (
	evSyn       = 0x00
	evKey       = 0x01
	synReport   = 0
	synDropped  = 3
	keyMax      = 0x2ff
	keyBitBytes = keyMax/8 + 1

	iocRead  = 2
	iocWrite = 1
)

func ioc(dir, typ, nr, size uintptr) uintptr { return dir<<30 | size<<16 | typ<<8 | nr }

var (
	eviocgname    = func(n uintptr) uintptr { return ioc(iocRead, 'E', 0x06, n) }
	eviocgbit     = func(ev, n uintptr) uintptr { return ioc(iocRead, 'E', 0x20+ev, n) }
	eviocgkey     = func(n uintptr) uintptr { return ioc(iocRead, 'E', 0x18, n) }
	eviocsclockid = ioc(iocWrite, 'E', 0xa0, 4)
)

// InputEventSize is sizeof(struct input_event) on this architecture: a
// struct timeval, then type (u16), code (u16) and value (s32).
const InputEventSize = int(unsafe.Sizeof(unix.Timeval{})) + 8

// InputEvent is a parsed struct input_event.
type InputEvent struct {
	Time  time.Duration // the timestamp, on the clock set with EVIOCSCLOCKID
	Type  uint16
	Code  uint16
	Value int32
}

// ParseInputEvents parses whole struct input_event records in native byte
// order. A trailing partial record is an error (evdev never returns one).
func ParseInputEvents(b []byte) ([]InputEvent, error) {
	if len(b)%InputEventSize != 0 {
		return nil, fmt.Errorf("button: evdev read of %d bytes is not a multiple of %d", len(b), InputEventSize)
	}
	tv := InputEventSize - 8
	half := tv / 2 // tv_sec and tv_usec are the same size
	out := make([]InputEvent, 0, len(b)/InputEventSize)
	for off := 0; off < len(b); off += InputEventSize {
		r := b[off : off+InputEventSize]
		var sec, usec int64
		if half == 8 {
			sec, usec = int64(binary.NativeEndian.Uint64(r)), int64(binary.NativeEndian.Uint64(r[8:]))
		} else {
			sec, usec = int64(int32(binary.NativeEndian.Uint32(r))), int64(int32(binary.NativeEndian.Uint32(r[4:])))
		}
		if usec < 0 || usec >= 1e6 || sec < 0 || sec > int64(time.Duration(1<<62)/time.Second) {
			return nil, fmt.Errorf("button: evdev record %d has timestamp %d.%06d out of range", off/InputEventSize, sec, usec)
		}
		out = append(out, InputEvent{
			Time:  time.Duration(sec)*time.Second + time.Duration(usec)*time.Microsecond,
			Type:  binary.NativeEndian.Uint16(r[tv:]),
			Code:  binary.NativeEndian.Uint16(r[tv+2:]),
			Value: int32(binary.NativeEndian.Uint32(r[tv+4:])),
		})
	}
	return out, nil
}

// InputDevice is an evdev device that reports a key.
type InputDevice struct {
	Path string // /dev/input/eventN
	Name string // EVIOCGNAME
}

// FindInputDevice returns the event device that reports key code, preferring
// one named name (a hint: gpio-keys and adc-keys names follow device-tree node
// names). glob lists candidates; nil means filepath.Glob.
func FindInputDevice(code uint16, name string, glob func(string) ([]string, error)) (InputDevice, error) {
	if glob == nil {
		glob = filepath.Glob
	}
	paths, err := glob("/dev/input/event*")
	if err != nil {
		return InputDevice{}, fmt.Errorf("button: list /dev/input/event*: %w", err)
	}
	sort.Slice(paths, func(i, j int) bool { return eventIndex(paths[i]) < eventIndex(paths[j]) })
	var found []InputDevice
	var others []string
	for _, p := range paths {
		d, has, err := probeInput(p, code)
		if err != nil {
			others = append(others, fmt.Sprintf("%s: %v", p, err))
			continue
		}
		if !has {
			others = append(others, fmt.Sprintf("%s %q", p, d.Name))
			continue
		}
		if d.Name == name {
			return d, nil
		}
		found = append(found, d)
	}
	if len(found) > 0 {
		return found[0], nil
	}
	msg := fmt.Sprintf("button: no input device reports key %d", code)
	if len(paths) == 0 {
		msg += " (no /dev/input/event* devices: is evdev loaded?)"
	} else {
		msg += " (have " + strings.Join(others, ", ") + ")"
	}
	return InputDevice{}, errors.New(msg)
}

func eventIndex(p string) int {
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(p), "event"))
	if err != nil {
		return 1 << 30
	}
	return n
}

func probeInput(path string, code uint16) (InputDevice, bool, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return InputDevice{}, false, err
	}
	defer unix.Close(fd)
	name := make([]byte, 256)
	if err := ioctl(uintptr(fd), eviocgname(uintptr(len(name))), unsafe.Pointer(&name[0])); err != nil {
		return InputDevice{}, false, fmt.Errorf("EVIOCGNAME: %w", err)
	}
	d := InputDevice{Path: path, Name: cString(name)}
	bits := make([]byte, keyBitBytes)
	if err := ioctl(uintptr(fd), eviocgbit(evKey, uintptr(len(bits))), unsafe.Pointer(&bits[0])); err != nil {
		return d, false, nil // no EV_KEY at all
	}
	return d, testBit(bits, code), nil
}

func testBit(bits []byte, n uint16) bool {
	i := int(n) / 8
	return i < len(bits) && bits[i]&(1<<(n%8)) != 0
}

func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

func ioctl(fd, req uintptr, arg unsafe.Pointer) error {
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// InputSource reads a key owned by a kernel driver (gpio-keys, adc-keys)
// from its evdev device.
type InputSource struct {
	code uint16
	name string
	// Path, if set before Start, skips the search by capability.
	Path string
	// Glob replaces filepath.Glob in the device search (tests).
	Glob func(string) ([]string, error)

	mu   sync.Mutex
	f    *os.File
	done chan struct{}
	wg   sync.WaitGroup
}

var _ Source = (*InputSource)(nil)

// NewInputSource returns a source for key code, preferring the device named
// name among those that report the key.
func NewInputSource(code uint16, name string) *InputSource {
	return &InputSource{code: code, name: name}
}

// Kind returns "input".
func (s *InputSource) Kind() string { return "input" }

// Start opens the device, switches its timestamps to CLOCK_MONOTONIC, reads
// the key's level (EVIOCGKEY) and starts reading edges.
func (s *InputSource) Start() (StartInfo, <-chan Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		return StartInfo{}, nil, errors.New("button: input source started twice")
	}
	dev := InputDevice{Path: s.Path}
	if dev.Path == "" {
		d, err := FindInputDevice(s.code, s.name, s.Glob)
		if err != nil {
			return StartInfo{}, nil, err
		}
		dev = d
	}
	// os.File puts the character device in the runtime poller, so Close
	// from another goroutine ends a blocked Read.
	f, err := os.OpenFile(dev.Path, os.O_RDONLY, 0)
	if err != nil {
		return StartInfo{}, nil, fmt.Errorf("button: open %s: %w", dev.Path, err)
	}
	device := fmt.Sprintf("input %s %q key %d", dev.Path, dev.Name, s.code)
	monotonic := true
	pressed := false
	err = control(f, func(fd uintptr) error {
		clk := int32(unix.CLOCK_MONOTONIC)
		if ioctl(fd, eviocsclockid, unsafe.Pointer(&clk)) != nil {
			monotonic = false // kernels before 3.4: realtime stamps, converted below
		}
		var e error
		pressed, e = keyDown(fd, s.code)
		return e
	})
	if err != nil {
		f.Close()
		return StartInfo{}, nil, fmt.Errorf("button: read key state of %s: %w", device, err)
	}
	ch := make(chan Event, eventQueue)
	s.f, s.done = f, make(chan struct{})
	s.wg.Add(1)
	go s.read(f, ch, monotonic, s.done)
	// gpio-keys debounces (debounce-interval) and adc-keys polls, so the
	// driver has filtered glitches already.
	return StartInfo{Pressed: pressed, Debounced: true, Device: device}, ch, nil
}

func control(f *os.File, fn func(fd uintptr) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(fd) }); err != nil {
		return err
	}
	return ferr
}

func keyDown(fd uintptr, code uint16) (bool, error) {
	bits := make([]byte, keyBitBytes)
	if err := ioctl(fd, eviocgkey(uintptr(len(bits))), unsafe.Pointer(&bits[0])); err != nil {
		return false, fmt.Errorf("EVIOCGKEY: %w", err)
	}
	return testBit(bits, code), nil
}

func (s *InputSource) read(f *os.File, ch chan<- Event, monotonic bool, done <-chan struct{}) {
	defer s.wg.Done()
	defer close(ch)
	send := func(ev Event) bool {
		select {
		case ch <- ev:
			return true
		case <-done:
			return false
		}
	}
	buf := make([]byte, 64*InputEventSize)
	dropped := false
	for {
		n, err := f.Read(buf)
		if err != nil {
			select {
			case <-done: // closed by Close: not a failure
			default:
				if err == io.EOF {
					err = errors.New("device gone")
				}
				send(Event{Err: fmt.Errorf("read %s: %w", f.Name(), err)})
			}
			return
		}
		evs, err := ParseInputEvents(buf[:n])
		if err != nil {
			send(Event{Err: err})
			return
		}
		for _, e := range evs {
			at := e.Time
			if !monotonic {
				at -= time.Duration(time.Now().UnixNano()) - MonotonicNow()
			}
			switch {
			case e.Type == evSyn && e.Code == synDropped:
				// The kernel's buffer overflowed: drop until SYN_REPORT,
				// then resynchronise from EVIOCGKEY (evdev protocol).
				dropped = true
			case e.Type == evSyn && e.Code == synReport && dropped:
				dropped = false
				var down bool
				if err := control(f, func(fd uintptr) (e error) { down, e = keyDown(fd, s.code); return }); err != nil {
					send(Event{Err: fmt.Errorf("resync %s: %w", f.Name(), err)})
					return
				}
				if !send(Event{Pressed: down, At: at, Lost: true}) {
					return
				}
			case dropped:
			case e.Type == evKey && e.Code == s.code && e.Value != 2: // 2 is autorepeat
				if !send(Event{Pressed: e.Value == 1, At: at}) {
					return
				}
			}
		}
	}
}

// Close stops the reader and closes the device.
func (s *InputSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	close(s.done)
	err := s.f.Close()
	s.wg.Wait()
	s.f = nil
	if err != nil {
		return fmt.Errorf("button: close input device: %w", err)
	}
	return nil
}
