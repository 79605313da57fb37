package button

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/board"
	"github.com/warthog618/go-gpiocdev"
	"golang.org/x/sys/unix"
)

func gpiocdevEvent(seq uint32, rising bool, at time.Duration) gpiocdev.LineEvent {
	typ := gpiocdev.LineEventFallingEdge
	if rising {
		typ = gpiocdev.LineEventRisingEdge
	}
	return gpiocdev.LineEvent{Offset: 0, Timestamp: at, Type: typ, Seqno: seq, LineSeqno: seq}
}

func TestGPIOSourceMissingChip(t *testing.T) {
	find := board.ChipFinder{
		Glob:  func(string) ([]string, error) { return nil, nil },
		Label: func(string) (string, error) { return "", nil },
	}.Find
	s := NewGPIOSource(board.GPIOLine{Chip: "rknas-sim", Offset: 0, ActiveLow: true}, 30*time.Millisecond, find)
	_, _, err := s.Start()
	if !errors.Is(err, board.ErrChipNotFound) {
		t.Fatalf("Start = %v, want ErrChipNotFound", err)
	}
	if !strings.Contains(err.Error(), `rknas-sim line 0 (active-low)`) || !strings.Contains(err.Error(), `"rknas-sim"`) {
		t.Errorf("error does not name the chip and line: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("Close of an unstarted source = %v", err)
	}
}

func TestRequestErrorHints(t *testing.T) {
	l := board.GPIOLine{Chip: "gpio0", Offset: 13}
	err := requestError(l, "/dev/gpiochip0", unix.EBUSY)
	for _, want := range []string{"request gpio0 line 13 on /dev/gpiochip0: device or resource busy", "gpio-keys"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
	if !errors.Is(err, unix.EBUSY) {
		t.Error("EBUSY not wrapped")
	}
}
