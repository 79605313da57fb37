package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rknas/firmware/authd/button"
	"github.com/rknas/firmware/board"
)

// failsafeWindow is how long uinit watches RESET at boot. A button held at
// power-on is seen at once; the window also catches a press that starts
// right after the kernel came up, as OpenWrt's failsafe prompt does.
const failsafeWindow = 1500 * time.Millisecond

// holdAtBoot tells whether RESET is held while the board starts. Boards
// without a button never enter failsafe this way (their console menu is a
// keypress away).
func holdAtBoot(ctx context.Context, prof board.Profile) bool {
	src, err := button.SourceFor(prof)
	if err != nil {
		return false
	}
	defer src.Close()
	info, events, err := src.Start()
	if err != nil {
		fmt.Fprintf(os.Stderr, "uinit: RESET unreadable at boot: %v\n", err)
		return false
	}
	if info.Pressed {
		return true
	}
	fmt.Printf("uinit: failsafe window: hold RESET now to enter failsafe mode (%v)\n", failsafeWindow)
	t := time.NewTimer(failsafeWindow)
	defer t.Stop()
	for {
		select {
		case e, ok := <-events:
			if !ok || e.Err != nil {
				return false
			}
			if e.Pressed && !e.Lost {
				return true
			}
		case <-t.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}
