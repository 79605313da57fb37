//go:build vmtest

package vmtest

import "sync"

var (
	imageOnce sync.Once
	imagePath string
	imageErr  error
)
