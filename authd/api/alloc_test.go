//go:build !race

// The race detector allocates for its own bookkeeping and sync.Pool drops
// items at random under it, so the allocation rules build without it:
// make test-host runs them in a run of their own.

package api

import "testing"

// TestMeAllocatesNothing: the session-checked GET /api/v1/me, through
// authd's whole handler, allocates nothing.
func TestMeAllocatesNothing(t *testing.T) {
	for _, from := range [][2]string{{"127.0.0.1:40000", "127.0.0.1:443"}, {"[2001:db8:1:2::a]:40000", "[2001:db8:1:2::10]:443"}} {
		serve := meHandlerFrom(t, from[0], from[1])
		status := 0
		if allocs := testing.AllocsPerRun(200, func() { status = serve() }); allocs != 0 || status != 200 {
			t.Errorf("GET /api/v1/me from %s: status %d, %v allocations a request, want 200 and none", from[0], status, allocs)
		}
	}
}
