package auth

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestCeremoniesOfOneOwnerGiveWay: an owner asking again and again keeps
// its newest ceremonies and takes nobody else's room; when many owners
// fill the table, the ones that have waited half their time give way, and
// until then a new one is refused as busy.
func TestCeremoniesOfOneOwnerGiveWay(t *testing.T) {
	var cs ceremonies
	now := time.Unix(1.7e9, 0)
	other, err := cs.put(now, &ceremony{owner: "client 192.0.2.1", kind: ceremonySignIn})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 3*maxCeremonies; i++ {
		now = now.Add(time.Millisecond)
		id, err := cs.put(now, &ceremony{owner: "client 192.0.2.66", kind: ceremonySignIn})
		if err != nil {
			t.Fatalf("ceremony %d of one address: %v", i, err)
		}
		ids = append(ids, id)
	}
	if len(cs.m) != 1+maxCeremoniesPerOwner {
		t.Errorf("%d ceremonies in the table, want %d", len(cs.m), 1+maxCeremoniesPerOwner)
	}
	if _, ok := cs.take(now, ids[len(ids)-maxCeremoniesPerOwner-1]); ok {
		t.Error("an owner's ceremony older than its last four is still there")
	}
	if _, ok := cs.take(now, ids[len(ids)-1]); !ok {
		t.Error("an owner's newest ceremony is gone")
	}
	if _, ok := cs.take(now, other); !ok {
		t.Error("another address's ceremony gave way to one address asking again and again")
	}

	// Many owners: full, then busy, then room once half the time is over.
	cs = ceremonies{}
	start := now
	for i := 0; i < maxCeremonies; i++ {
		if _, err := cs.put(now, &ceremony{owner: fmt.Sprint("account user", i), kind: ceremonyStepUp}); err != nil {
			t.Fatalf("ceremony %d: %v", i, err)
		}
	}
	var e *Error
	if _, err := cs.put(now, &ceremony{owner: "client 192.0.2.2"}); !errors.As(err, &e) || e.Code != CodeBusy {
		t.Errorf("a ceremony beyond the table's room: %v, want busy", err)
	}
	now = start.Add(ceremonyTTL / 2)
	if _, err := cs.put(now, &ceremony{owner: "client 192.0.2.2"}); err != nil {
		t.Errorf("a ceremony once the others waited half their time: %v", err)
	}
}

// TestSignInsLeaveRoomForAccounts: sign-ins with a passkey alone, which
// anyone may begin, from enough addresses to fill the table, get busy at
// half of it; an account's ceremony still finds room.
func TestSignInsLeaveRoomForAccounts(t *testing.T) {
	var cs ceremonies
	now := time.Unix(1.7e9, 0)
	busy := 0
	for a := 1; a <= 250; a++ {
		for range maxCeremoniesPerOwner {
			_, err := cs.put(now, &ceremony{owner: fmt.Sprintf("client 192.0.2.%d", a), kind: ceremonySignIn})
			var e *Error
			switch {
			case errors.As(err, &e) && e.Code == CodeBusy:
				busy++
			case err != nil:
				t.Fatal(err)
			}
		}
	}
	if want := 250*maxCeremoniesPerOwner - maxSignInCeremonies; busy != want {
		t.Errorf("%d sign-ins refused as busy, want %d", busy, want)
	}
	for i := range maxCeremonies - maxSignInCeremonies {
		if _, err := cs.put(now, &ceremony{owner: fmt.Sprint("account user", i), kind: ceremonySecondFactor}); err != nil {
			t.Fatalf("an account's ceremony beside %d sign-ins: %v", maxSignInCeremonies, err)
		}
	}
	// Sign-ins that have waited half their time give way to new ones.
	now = now.Add(ceremonyTTL / 2)
	if _, err := cs.put(now, &ceremony{owner: "client 192.0.2.251", kind: ceremonySignIn}); err != nil {
		t.Errorf("a sign-in once the others waited half their time: %v", err)
	}
}
