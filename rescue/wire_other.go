//go:build !linux

package main

import (
	"errors"
	"log/slog"

	"github.com/rknas/firmware/rescue/console"
)

// wire refuses: the console runs on the board, which runs Linux; elsewhere
// rescue is only the attach client.
var wire = func(_ *slog.Logger) (console.Actions, console.Button, error) {
	return nil, nil, errors.New("the rescue console runs on Linux only; use rescue attach")
}
