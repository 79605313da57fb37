package lineread

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
)

// chunkReader returns its input in pieces of at most n bytes, then io.EOF.
type chunkReader struct {
	data []byte
	n    int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := min(c.n, len(c.data), len(p))
	copy(p, c.data[:k])
	c.data = c.data[k:]
	return k, nil
}

type result struct {
	line string
	err  error
}

func readAll(t *testing.T, in string, chunk int, cfg Config) ([]result, string) {
	t.Helper()
	var echo bytes.Buffer
	r := New(&chunkReader{data: []byte(in), n: chunk}, &echo, cfg)
	var out []result
	for range 1000 {
		line, err := r.ReadLine(context.Background(), time.Time{})
		if errors.Is(err, io.EOF) {
			return out, echo.String()
		}
		out = append(out, result{line, err})
	}
	t.Fatal("reader did not reach EOF")
	return nil, ""
}

func TestReadLine(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want []result
		echo string
	}{
		{"LF", "status\n", 0, []result{{"status", nil}}, "status\r\n"},
		{"CR", "status\r", 0, []result{{"status", nil}}, "status\r\n"},
		{"CRLF is one line end", "a\r\nb\r\n", 0, []result{{"a", nil}, {"b", nil}}, "a\r\nb\r\n"},
		{"LFCR is two", "a\n\r", 0, []result{{"a", nil}, {"", nil}}, "a\r\n\r\n"},
		{"CR CR is an empty line", "a\r\r", 0, []result{{"a", nil}, {"", nil}}, "a\r\n\r\n"},
		{"DEL", "stx\x7fa\r", 0, []result{{"sta", nil}}, "stx\b \ba\r\n"},
		{"backspace", "stx\x08a\r", 0, []result{{"sta", nil}}, "stx\b \ba\r\n"},
		{"DEL on empty line", "\x7f\x7fa\r", 0, []result{{"a", nil}}, "a\r\n"},
		{"Ctrl-U", "abc\x15x\r", 0, []result{{"x", nil}}, "abc\b \b\b \b\b \bx\r\n"},
		{"Ctrl-C", "abc\x03x\r", 0, []result{{"", ErrInterrupt}, {"x", nil}}, "abc^C\r\nx\r\n"},
		{"NUL and controls dropped", "\x00r\x00\x01\x02\x7e\r", 0, []result{{"r~", nil}}, "r~\r\n"},
		{"high bytes dropped", "\xff\xfer\xe9\r", 0, []result{{"r", nil}}, "r\r\n"},
		{"arrow keys ignored", "a\x1b[A\x1b[Bb\x1b[1;5Cc\r", 0, []result{{"abc", nil}}, "abc\r\n"},
		{"SS3 keys ignored", "a\x1bOPb\r", 0, []result{{"ab", nil}}, "ab\r\n"},
		{"8-bit CSI ignored", "a\x9bAb\r", 0, []result{{"ab", nil}}, "ab\r\n"},
		{"ESC then letter", "a\x1bcb\r", 0, []result{{"ab", nil}}, "ab\r\n"},
		{"CR inside an escape ends the line", "a\x1b[1\r", 0, []result{{"a", nil}}, "a\r\n"},
		{"too long", "abcdef\rok\r", 4, []result{{"", ErrTooLong}, {"ok", nil}}, "abcd\a\r\nok\r\n"},
		{"exactly max", "abcd\r", 4, []result{{"abcd", nil}}, "abcd\r\n"},
		{"too long then DEL stays too long", "abcdef\x7f\x7f\x7f\r", 4, []result{{"", ErrTooLong}}, "abcd\a\r\n"},
		{"too long then Ctrl-U recovers", "abcdef\x15ok\r", 4, []result{{"ok", nil}}, "abcd\a\b \b\b \b\b \b\b \bok\r\n"},
		{"unfinished line at EOF", "abc", 0, nil, "abc"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 1024} {
			got, echo := readAll(t, tt.in, chunk, Config{Max: tt.max})
			if len(got) != len(tt.want) {
				t.Errorf("%s (chunk %d): got %v, want %v", tt.name, chunk, got, tt.want)
				continue
			}
			for i := range got {
				if got[i].line != tt.want[i].line || !errors.Is(got[i].err, tt.want[i].err) {
					t.Errorf("%s (chunk %d): line %d = %q, %v; want %q, %v", tt.name, chunk, i,
						got[i].line, got[i].err, tt.want[i].line, tt.want[i].err)
				}
			}
			if echo != tt.echo {
				t.Errorf("%s (chunk %d): echo %q, want %q", tt.name, chunk, echo, tt.echo)
			}
		}
	}
}

// tickReader returns (0, nil) like a serial port whose read timeout expired,
// and calls tick each time so a test can move its clock.
type tickReader struct{ tick func() }

func (r tickReader) Read([]byte) (int, error) { r.tick(); return 0, nil }

func TestIdleAndDeadline(t *testing.T) {
	start := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	clk := clocktest.New(start)
	r := New(tickReader{func() { clk.Advance(time.Second) }}, nil, Config{Idle: time.Minute, Clock: clk})
	if _, err := r.ReadLine(context.Background(), time.Time{}); !errors.Is(err, ErrIdle) {
		t.Fatalf("idle: got %v, want ErrIdle", err)
	}
	if got := clk.Now().Sub(start); got < time.Minute || got > time.Minute+time.Second {
		t.Errorf("idle after %v, want 1m", got)
	}
	start = clk.Now()
	if _, err := r.ReadLine(context.Background(), start.Add(10*time.Second)); !errors.Is(err, ErrDeadline) {
		t.Fatalf("deadline: got %v, want ErrDeadline", err)
	}
	if got := clk.Now().Sub(start); got != 10*time.Second {
		t.Errorf("deadline after %v, want 10s", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r = New(tickReader{cancel}, nil, Config{Clock: clk})
	if _, err := r.ReadLine(ctx, time.Time{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: got %v, want context.Canceled", err)
	}
}

func TestKeysResetIdle(t *testing.T) {
	clk := clocktest.New(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC))
	// One key every 40 s, the idle limit is 60 s: the line completes.
	in := []byte("abc\r")
	i := 0
	rd := readerFunc(func(p []byte) (int, error) {
		clk.Advance(40 * time.Second)
		if i == len(in) {
			return 0, io.EOF
		}
		p[0] = in[i]
		i++
		return 1, nil
	})
	r := New(rd, nil, Config{Idle: time.Minute, Clock: clk})
	line, err := r.ReadLine(context.Background(), time.Time{})
	if err != nil || line != "abc" {
		t.Fatalf("got %q, %v; want abc", line, err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestReadErrorAfterData(t *testing.T) {
	boom := errors.New("port gone")
	calls := 0
	rd := readerFunc(func(p []byte) (int, error) {
		calls++
		if calls > 1 {
			t.Fatal("read again after an error")
		}
		return copy(p, "ok\rpart"), boom
	})
	r := New(rd, nil, Config{})
	if line, err := r.ReadLine(context.Background(), time.Time{}); line != "ok" || err != nil {
		t.Fatalf("got %q, %v; want ok", line, err)
	}
	if _, err := r.ReadLine(context.Background(), time.Time{}); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the read error", err)
	}
}

func TestEchoError(t *testing.T) {
	r := New(strings.NewReader("abc\r"), errWriter{}, Config{})
	if _, err := r.ReadLine(context.Background(), time.Time{}); err == nil || !strings.Contains(err.Error(), "echo") {
		t.Fatalf("got %v, want an echo error", err)
	}
}

type errWriter struct{}

func (errWriter) Write([]byte) (int, error) { return 0, errors.New("write failed") }

func FuzzLineReader(f *testing.F) {
	for _, s := range []string{"status\r\n", "a\x7fb\x08c\r", "\x1b[A\x1b[1;5C\x1bOP\r", "\x00\xff\x9bA\r",
		strings.Repeat("x", 300) + "\r", "ab\x15\x03\n\r\n"} {
		f.Add([]byte(s), uint8(3), uint8(16))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk, max uint8) {
		var echo bytes.Buffer
		r := New(&chunkReader{data: in, n: int(chunk%64) + 1}, &echo, Config{Max: int(max%64) + 1})
		ends := 0
		for range len(in) + 2 {
			line, err := r.ReadLine(context.Background(), time.Time{})
			if errors.Is(err, io.EOF) {
				break
			}
			ends++
			if err != nil && !errors.Is(err, ErrTooLong) && !errors.Is(err, ErrInterrupt) {
				t.Fatalf("unexpected error %v", err)
			}
			if len(line) > r.Max() {
				t.Fatalf("line of %d bytes exceeds max %d", len(line), r.Max())
			}
			for _, b := range []byte(line) {
				if b < 0x20 || b >= 0x7f {
					t.Fatalf("line %q holds byte %#x", line, b)
				}
			}
		}
		if ends > len(in) {
			t.Fatalf("%d lines from %d bytes", ends, len(in))
		}
		for _, b := range echo.Bytes() {
			if (b < 0x20 || b >= 0x7f) && b != '\r' && b != '\n' && b != '\b' && b != bel && b != '^' {
				t.Fatalf("echo holds byte %#x: %q", b, echo.Bytes())
			}
		}
	})
}

// BenchmarkReadLine measures the reader on typical operator lines with some
// noise and editing, in bytes per second.
func BenchmarkReadLine(b *testing.B) {
	in := []byte(strings.Repeat("status\r\nreset-admin\x7f\x7f\x7f\x7f\x7fnetwork\r\x1b[A\x00\xffclock\n", 100))
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		r := New(&chunkReader{data: in, n: 64}, io.Discard, Config{})
		for {
			if _, err := r.ReadLine(context.Background(), time.Time{}); errors.Is(err, io.EOF) {
				break
			}
		}
	}
}
