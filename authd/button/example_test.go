package button_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/board"
)

// How authd wires the watcher: detect the board, build the source and LED
// from its profile, start the watcher, and keep serving whatever happens.
func Example() {
	p, _ := board.ByName("none") // authd uses board.Detect()
	src, err := button.SourceFor(p)
	if err != nil && !errors.Is(err, button.ErrNoButton) {
		slog.Error("button", "err", err)
	}
	led, err := button.LEDFor(p, "status")
	if err != nil {
		slog.Warn("button: no feedback LED", "err", err)
	}
	cfg := button.Config{
		Source:     src, // nil for boards without a button: Status says so
		Thresholds: button.ThresholdsFor(p),
		Recover:    func(ctx context.Context) error { return nil }, // recovery.Run
	}
	if led != nil {
		cfg.LED = led
		defer led.Close()
	}
	w, err := button.NewWatcher(cfg)
	if err != nil {
		panic(err)
	}
	err = w.Run(context.Background()) // in authd: go func() { ... }()
	fmt.Println(err)
	fmt.Println(w.Status().Available, w.Status().Error)
	// Output:
	// button: the board has no button
	// false button: the board has no button
}
