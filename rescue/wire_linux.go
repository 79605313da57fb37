package main

import (
	"log/slog"

	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/sysactions"
)

// wire returns the actions and the button the console uses on the board.
// The firmware's wiring replaces it to reach authd; a nil Button means the
// operator confirms by typing a word. Reboot and power off go through the
// firmware's uinit when it started us, so it unmounts the state partition
// cleanly.
var wire = func(log *slog.Logger) (console.Actions, console.Button, error) {
	initPID := sysactions.ParentIfNamed("uinit")
	log.Info("rescue: reboot and power off", "via_init_pid", initPID)
	return sysactions.System{Version: version, InitPID: initPID}, nil, nil
}
