package porttest

import (
	"net"
	"strconv"
	"testing"
)

// TestFreeHandsEachPortOnce: many ports asked for in a row are all
// different, and each can be listened on.
func TestFreeHandsEachPortOnce(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		p := Free(t)
		if seen[p] {
			t.Fatalf("port %d handed out twice", p)
		}
		seen[p] = true
	}
	for p := range seen {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			t.Errorf("port %d: %v", p, err)
			continue
		}
		ln.Close()
		break
	}
}
