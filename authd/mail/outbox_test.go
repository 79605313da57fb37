package mail_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/clock/clocktest"
	"github.com/rknas/firmware/authd/mail"
	"github.com/rknas/firmware/authd/mail/mailtest"

	"github.com/rknas/firmware/internal/waittest"
)

func notice(t *testing.T, c *mail.Composer, kind mail.Kind) mail.Message {
	t.Helper()
	m, err := c.Notice(testTo, mail.Notice{Kind: kind, Account: "alice", ClientAddr: "198.51.100.4", Detail: "Firefox on Linux", Remaining: 7})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func newOutbox(t *testing.T, dir string, s mail.Sender, clk *clocktest.Clock, opt mail.OutboxOptions) *mail.Outbox {
	t.Helper()
	o, err := mail.NewOutbox(mail.NewFileOutboxStore(dir), s, clk, opt)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func only(t *testing.T, o *mail.Outbox) mail.EntryView {
	t.Helper()
	l := o.List()
	if len(l) != 1 {
		t.Fatalf("outbox holds %d entries, want 1: %+v", len(l), l)
	}
	return l[0]
}

var errTemp = &mail.SendError{Code: mail.CodeRejected, Reply: "451 4.3.0 Try again later", Err: errors.New("DATA refused")}

// Failed tries wait 1, 2, 4, ... minutes, at most an hour; the entry is not
// tried a second early.
func TestOutboxBackoff(t *testing.T) {
	clk := clocktest.New(t0)
	s := mailtest.NewSender()
	s.SetError(errTemp)
	o := newOutbox(t, t.TempDir(), s, clk, mail.OutboxOptions{})
	if _, err := o.Enqueue(notice(t, newComposer(t, clk), mail.KindTwoFAEnabled)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	mail.ProcessDue(ctx, o)
	if s.Calls() != 1 {
		t.Fatalf("calls after the first pass = %d, want 1", s.Calls())
	}
	wants := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60}
	for i, w := range wants {
		wait := w * time.Minute
		e := only(t, o)
		if got := e.NextTry.Sub(clk.Now()); got != wait {
			t.Fatalf("after try %d: next try in %v, want %v", i+1, got, wait)
		}
		clk.Advance(wait - time.Second)
		mail.ProcessDue(ctx, o)
		if s.Calls() != i+1 {
			t.Fatalf("tried a second early (try %d)", i+2)
		}
		clk.Advance(time.Second)
		if next := mail.ProcessDue(ctx, o); next.IsZero() {
			t.Fatal("no next try reported for a pending entry")
		}
		if s.Calls() != i+2 {
			t.Fatalf("not tried when due (try %d): calls %d", i+2, s.Calls())
		}
	}
	e := only(t, o)
	if e.State != mail.StatePending || e.Attempts != len(wants)+1 || e.LastErrorCode != mail.CodeRejected ||
		!strings.Contains(e.LastError, "451 4.3.0") {
		t.Fatalf("entry = %+v", e)
	}
	s.SetError(nil)
	clk.Advance(time.Hour)
	if next := mail.ProcessDue(ctx, o); !next.IsZero() {
		t.Errorf("next = %v after delivery, want zero", next)
	}
	e = only(t, o)
	if e.State != mail.StateDelivered || e.LastError == "" {
		t.Errorf("after success: %+v (want delivered, last error kept)", e)
	}
	if len(s.Sent()) != 1 {
		t.Errorf("sent %d, want 1", len(s.Sent()))
	}
}

func TestOutboxGivesUp(t *testing.T) {
	t.Run("after N attempts", func(t *testing.T) {
		clk := clocktest.New(t0)
		s := mailtest.NewSender()
		s.SetError(errTemp)
		o := newOutbox(t, t.TempDir(), s, clk, mail.OutboxOptions{MaxAttempts: 4})
		if _, err := o.Enqueue(notice(t, newComposer(t, clk), mail.KindTwoFADisabled)); err != nil {
			t.Fatal(err)
		}
		for range 10 {
			mail.ProcessDue(context.Background(), o)
			clk.Advance(time.Hour)
		}
		e := only(t, o)
		if e.State != mail.StateFailed || e.Attempts != 4 || !strings.Contains(e.LastError, "451") {
			t.Fatalf("entry = %+v, want failed after 4 attempts with the last error", e)
		}
	})
	t.Run("after 24 hours", func(t *testing.T) {
		clk := clocktest.New(t0)
		s := mailtest.NewSender()
		s.SetError(errTemp)
		o := newOutbox(t, t.TempDir(), s, clk, mail.OutboxOptions{MaxAttempts: 1000})
		if _, err := o.Enqueue(notice(t, newComposer(t, clk), mail.KindTwoFADisabled)); err != nil {
			t.Fatal(err)
		}
		for clk.Now().Sub(t0) <= 25*time.Hour {
			mail.ProcessDue(context.Background(), o)
			clk.Advance(time.Minute)
		}
		e := only(t, o)
		if e.State != mail.StateFailed || e.Done.Sub(t0) < 24*time.Hour || e.Done.Sub(t0) > 25*time.Hour {
			t.Fatalf("entry = %+v, want failed between 24 and 25 h", e)
		}
		t.Logf("gave up after %d attempts, %v", e.Attempts, e.Done.Sub(t0))
	})
	t.Run("clock jump does not give up unsent", func(t *testing.T) {
		clk := clocktest.New(time.Unix(0, 0).UTC()) // a board without RTC boots at 1970
		s := mailtest.NewSender()
		s.SetError(errTemp)
		o := newOutbox(t, t.TempDir(), s, clk, mail.OutboxOptions{})
		if _, err := o.Enqueue(notice(t, newComposer(t, clk), mail.KindDeviceReset)); err != nil {
			t.Fatal(err)
		}
		clk.Set(t0) // NTP sets the date
		mail.ProcessDue(context.Background(), o)
		if e := only(t, o); e.State != mail.StatePending || e.Attempts != 1 {
			t.Fatalf("entry = %+v, want still pending after one try", e)
		}
	})
}

// When the server is unreachable, one try is made per pass, and the other
// due notices wait with it instead of each running into the error.
func TestOutboxServerDownOneTryPerPass(t *testing.T) {
	clk := clocktest.New(t0)
	s := mailtest.NewSender()
	s.SetError(&mail.SendError{Code: mail.CodeConnectionRefused, Err: errors.New("connection refused")})
	o := newOutbox(t, t.TempDir(), s, clk, mail.OutboxOptions{})
	c := newComposer(t, clk)
	for _, k := range []mail.Kind{mail.KindTwoFAEnabled, mail.KindTrustedDeviceAdded, mail.KindRecoveryCodeUsed} {
		if _, err := o.Enqueue(notice(t, c, k)); err != nil {
			t.Fatal(err)
		}
	}
	mail.ProcessDue(context.Background(), o)
	if s.Calls() != 1 {
		t.Fatalf("calls = %d, want 1", s.Calls())
	}
	for _, e := range o.List() {
		if !e.NextTry.Equal(t0.Add(time.Minute)) || e.State != mail.StatePending {
			t.Errorf("entry %+v: want pending, next try in 1 min", e)
		}
	}
	s.SetError(nil)
	clk.Advance(time.Minute)
	mail.ProcessDue(context.Background(), o)
	if len(s.Sent()) != 3 {
		t.Fatalf("sent %d after the server came back, want 3", len(s.Sent()))
	}
}

func TestOutboxBound(t *testing.T) {
	clk := clocktest.New(t0)
	s := mailtest.NewSender()
	s.SetError(errTemp)
	o := newOutbox(t, t.TempDir(), s, clk, mail.OutboxOptions{Capacity: 3})
	c := newComposer(t, clk)
	var ids []string
	for range 3 {
		id, err := o.Enqueue(notice(t, c, mail.KindTwoFAEnabled))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		clk.Advance(time.Second)
	}
	if _, err := o.Enqueue(notice(t, c, mail.KindTwoFAEnabled)); !errors.Is(err, mail.ErrOutboxFull) {
		t.Fatalf("4th Enqueue into a full outbox of pending: %v, want ErrOutboxFull", err)
	}
	// Deliver everything: the oldest delivered entry makes room.
	s.SetError(nil)
	mail.ProcessDue(context.Background(), o)
	id4, err := o.Enqueue(notice(t, c, mail.KindTwoFADisabled))
	if err != nil {
		t.Fatalf("Enqueue with delivered entries to drop: %v", err)
	}
	var got []string
	for _, e := range o.List() {
		got = append(got, e.ID)
	}
	if len(got) != 3 || got[0] != ids[1] || got[1] != ids[2] || got[2] != id4 {
		t.Fatalf("entries %v, want %v (the oldest finished one dropped)", got, append(ids[1:], id4))
	}
}

func TestOutboxListMasksAndFilePermissions(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(t0)
	s := mailtest.NewSender()
	s.SetError(&mail.SendError{Code: mail.CodeRejected, Reply: "452 4.2.2 <alice@example.com>: mailbox full", Err: errors.New("x")})
	o := newOutbox(t, dir, s, clk, mail.OutboxOptions{})
	if _, err := o.Enqueue(notice(t, newComposer(t, clk), mail.KindEmergencyCodeUsed)); err != nil {
		t.Fatal(err)
	}
	mail.ProcessDue(context.Background(), o)
	e := only(t, o)
	if e.To != "a***@example.com" || strings.Contains(e.LastError, testTo) || e.Kind != mail.KindEmergencyCodeUsed {
		t.Errorf("view %+v: want masked recipient everywhere", e)
	}
	fi, err := os.Stat(filepath.Join(dir, mail.OutboxFileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("outbox file mode %v, want 0600", fi.Mode().Perm())
	}
}

// Notices survive a restart and a mail outage: the first outbox fails
// against a server that is down; a new outbox on the same file delivers
// them through Run once the server is back.
func TestOutboxRestartDeliversWhenServerReturns(t *testing.T) {
	dir := t.TempDir()
	clk := clocktest.New(t0)
	ca, err := mailtest.NewCA("restart CA")
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	st := mail.Settings{Preset: mail.PresetCustom, Host: "127.0.0.1", Port: port, Security: mail.SecurityStartTLS,
		Username: testUser, Password: testPassword, From: testFrom, CAPEM: ca.PEM}
	sender := mail.NewSMTPSender(staticSettings(st), mail.SMTPOptions{Timeout: 10 * time.Second})
	c := newComposer(t, clk)

	o1 := newOutbox(t, dir, sender, clk, mail.OutboxOptions{})
	kinds := []mail.Kind{mail.KindTwoFAEnabled, mail.KindRecoveryCodesRegenerated}
	for _, k := range kinds {
		if _, err := o1.Enqueue(notice(t, c, k)); err != nil {
			t.Fatal(err)
		}
	}
	mail.ProcessDue(context.Background(), o1)
	for _, e := range o1.List() {
		if e.State != mail.StatePending || e.LastErrorCode != mail.CodeConnectionRefused && e.Attempts > 0 {
			t.Fatalf("with the server down: %+v", e)
		}
	}
	// "Restart": o1 is dropped, the server comes up on the same port.
	srv := startServer(t, mailtest.Options{Mode: mailtest.ModeStartTLS, Username: testUser, Password: testPassword,
		Addr: "127.0.0.1:" + itoa(port), CA: ca})
	delivered := make(chan mail.EntryView, 10)
	o2 := newOutbox(t, dir, sender, clk, mail.OutboxOptions{Observe: func(e mail.EntryView) { delivered <- e }})
	if l := o2.List(); len(l) != 2 || l[0].Attempts != 1 {
		t.Fatalf("after restart the outbox holds %+v, want the 2 pending entries with 1 attempt", l)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- o2.Run(ctx) }()
	defer func() {
		cancel()
		if err := waittest.Recv(t, runDone, "the outbox to stop after cancel"); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	clk.Advance(time.Minute) // the backoff has passed by the injected clock
	o2.Wake()
	for range 2 {
		select {
		case e := <-delivered:
			if e.State != mail.StateDelivered {
				t.Fatalf("entry after try: %+v", e)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("notices not delivered within 30 s of the server's return")
		}
	}
	got, err := srv.WaitForMessages(ctxTimeout(t, 10*time.Second), 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range got {
		p := parseDelivered(t, r.Data)
		if !strings.Contains(p.Body, "alice") || strings.Contains(string(r.Data), testPassword) {
			t.Errorf("message %d body:\n%s", i, p.Body)
		}
		if d, _ := p.Header.Date(); !d.Equal(t0) {
			t.Errorf("message %d Date = %v, want the time of the event %v", i, d, t0)
		}
	}
	// A third outbox on the file sees them delivered.
	for _, e := range newOutbox(t, dir, sender, clk, mail.OutboxOptions{}).List() {
		if e.State != mail.StateDelivered {
			t.Errorf("after another restart: %+v", e)
		}
	}
}

// A permanent refusal of the recipient fails the notice at once.
func TestOutboxRecipientRefusedFailsAtOnce(t *testing.T) {
	srv := startServer(t, mailtest.Options{Mode: mailtest.ModeStartTLS, Username: testUser, Password: testPassword})
	srv.SetFailure(mailtest.FailRecipient)
	clk := clocktest.New(t0)
	o := newOutbox(t, t.TempDir(), mail.NewSMTPSender(staticSettings(settingsFor(srv, mail.SecurityStartTLS)), mail.SMTPOptions{}), clk, mail.OutboxOptions{})
	if _, err := o.Enqueue(notice(t, newComposer(t, clk), mail.KindTwoFAEnabled)); err != nil {
		t.Fatal(err)
	}
	mail.ProcessDue(context.Background(), o)
	e := only(t, o)
	if e.State != mail.StateFailed || e.Attempts != 1 || !strings.Contains(e.LastError, "550 5.1.1") || strings.Contains(e.LastError, testTo) {
		t.Fatalf("entry = %+v, want failed at once with the masked server answer", e)
	}
}

func TestOutboxCorruptFileIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, mail.OutboxFileName), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := mail.NewOutbox(mail.NewFileOutboxStore(dir), mailtest.NewSender(), clocktest.New(t0), mail.OutboxOptions{}); err == nil {
		t.Fatal("NewOutbox on a corrupt file succeeded")
	}
}

// TestOutboxOneAddressCannotCrowdOutOthers: an account that makes notices
// without end (regenerating recovery codes in a loop while the mail server
// is down) only replaces its own pending notices; every other address's
// notice stays, and there is room for new ones.
func TestOutboxOneAddressCannotCrowdOutOthers(t *testing.T) {
	clk := clocktest.New(t0)
	s := mailtest.NewSender()
	s.SetError(errTemp)
	o := newOutbox(t, t.TempDir(), s, clk, mail.OutboxOptions{Capacity: 20, PerRecipient: 3})
	c := newComposer(t, clk)
	to := func(addr string, kind mail.Kind) string {
		t.Helper()
		m, err := c.Notice(addr, mail.Notice{Kind: kind, Account: "someone"})
		if err != nil {
			t.Fatal(err)
		}
		id, err := o.Enqueue(m)
		if err != nil {
			t.Fatalf("enqueue to %s: %v", addr, err)
		}
		clk.Advance(time.Second)
		return id
	}
	bob := to("bob@example.com", mail.KindTwoFADisabled)
	var mallory []string
	for i := range 50 {
		addr := "mallory@example.com"
		if i%2 == 1 {
			addr = "Mallory@Example.com" // the same mailbox
		}
		mallory = append(mallory, to(addr, mail.KindRecoveryCodesRegenerated))
	}
	carol := to("carol@example.com", mail.KindTwoFAEnabled)
	pending := map[string]bool{}
	for _, e := range o.List() {
		if e.State == mail.StatePending {
			pending[e.ID] = true
		}
	}
	if !pending[bob] || !pending[carol] {
		t.Fatalf("another address's notice was dropped: bob %v carol %v", pending[bob], pending[carol])
	}
	if len(pending) != 5 || !pending[mallory[47]] || !pending[mallory[48]] || !pending[mallory[49]] {
		t.Fatalf("pending %v, want bob, carol and mallory's newest 3", pending)
	}
}
