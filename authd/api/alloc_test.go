//go:build !race

// The race detector allocates for its own bookkeeping and sync.Pool drops
// items at random under it, so the allocation rules build without it:
// make test-host runs them in a run of their own.

package api

import "testing"

// TestMeAllocatesNothing: the session-checked GET /api/v1/me, through
// authd's whole handler, allocates nothing.
func TestMeAllocatesNothing(t *testing.T) {
	serve := meHandler(t)
	status := 0
	if allocs := testing.AllocsPerRun(200, func() { status = serve() }); allocs != 0 || status != 200 {
		t.Errorf("GET /api/v1/me: status %d, %v allocations a request, want 200 and none", status, allocs)
	}
}
