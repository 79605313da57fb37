//go:build !linux

package main

import (
	"errors"
	"log/slog"

	"github.com/rknas/firmware/rescue/console"
)

// wireOptions say where authd and its state are.
type wireOptions struct {
	ControlSocket, StateDir, DefaultPasswordFile, Board, StateMount string
	Direct                                                          bool
}

// wire refuses: the console runs on the board, which runs Linux; elsewhere
// rescue is only the attach client.
var wire = func(_ *slog.Logger, _ wireOptions) (console.Actions, console.Button, error) {
	return nil, nil, errors.New("the rescue console runs on Linux only; use rescue attach")
}
