package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
	"testing"
)

// TestStorageErrors checks a write the state partition refused is named
// for what it is, through the wrapping the store adds, and anything else
// stays internal.
func TestStorageErrors(t *testing.T) {
	for _, tt := range []struct {
		cause error
		code  string
	}{
		{&fs.PathError{Op: "write", Path: "/state/authd/auth.db", Err: syscall.ENOSPC}, CodeStorageFull},
		{fmt.Errorf("store: commit: %w", syscall.EDQUOT), CodeStorageFull},
		{fmt.Errorf("store: commit: %w", &fs.PathError{Op: "fdatasync", Path: "auth.db", Err: syscall.EROFS}), CodeStorageFailed},
		{fmt.Errorf("store: commit: %w", syscall.EIO), CodeStorageFailed},
		{errors.New("something else"), CodeInternal},
	} {
		for _, e := range []*Error{errInternal(tt.cause), AsError(tt.cause)} {
			if e.Code != tt.code || !errors.Is(e, tt.cause) {
				t.Errorf("%v: %s (%s), want %s", tt.cause, e.Code, e.Message, tt.code)
			}
		}
	}
}
