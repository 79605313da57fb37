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
	comm := strings.TrimSpace(string(self))
	if !processRunning(comm, "") {
		t.Errorf("processRunning(%q), this test's own process, = false", comm)
	}
	if processRunning("no-such-process-rknas", "") {
		t.Error("a process that does not exist runs")
	}
	if processRunning(comm, "/no/such/state") {
		t.Error("this test's process counts as working on a state directory it was not given")
	}
}

func TestUsesStateDir(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want bool
	}{
		{[]string{"/bbin/authd", "-state", "/state/authd", "-listen", ":443"}, true},
		{[]string{"authd", "--state", "/state/authd/"}, true},
		{[]string{"authd", "-state=/state/authd"}, true},
		{[]string{"authd", "--state=/state//authd"}, true},
		{[]string{"authd", "-state", "/tmp/other"}, false},
		{[]string{"authd", "-listen", "/state/authd"}, false},
		{[]string{"authd", "-state"}, false},
		{[]string{"authd", "state", "/state/authd"}, false},
		{nil, false},
	} {
		if got := usesStateDir(tc.args, "/state/authd"); got != tc.want {
			t.Errorf("usesStateDir(%q) = %v, want %v", tc.args, got, tc.want)
		}
	}
}
