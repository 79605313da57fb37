package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestProcessRunning(t *testing.T) {
	self, err := os.ReadFile(filepath.Join("/proc", "self", "comm"))
	if err != nil {
		t.Fatal(err)
	}
	if comm := strings.TrimSpace(string(self)); !processRunning(comm) {
		t.Errorf("processRunning(%q), this test's own process, = false", comm)
	}
	if processRunning("no-such-process-rknas") {
		t.Error("a process that does not exist runs")
	}
}
