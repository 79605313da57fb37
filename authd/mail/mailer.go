package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// DefaultCodeTimeout bounds the synchronous sending of a code.
const DefaultCodeTimeout = 30 * time.Second

// Config holds what a Mailer needs. StateDir and DeviceName are required.
type Config struct {
	// StateDir holds SettingsFileName and, unless OutboxStore is set,
	// OutboxFileName.
	StateDir string
	// DeviceName appears in every subject and body and as the sender's
	// display name.
	DeviceName string
	Clock      clock.Clock  // default clock.System{}
	Logger     *slog.Logger // default: discard
	// Sender replaces the SMTP sender (tests: mailtest.Sender).
	Sender Sender
	// SMTP tunes the default SMTP sender.
	SMTP SMTPOptions
	// OutboxStore replaces the file store (e.g. by the database).
	OutboxStore OutboxStore
	Outbox      OutboxOptions
	// CodeTimeout bounds SendVerificationCode and SendEmergencyCode;
	// default DefaultCodeTimeout.
	CodeTimeout time.Duration
}

// Mailer is what authd uses: settings for the admin API, codes sent
// directly, notices through the outbox.
type Mailer struct {
	settings    *SettingsStore
	composer    *Composer
	sender      Sender
	outbox      *Outbox
	log         *slog.Logger
	codeTimeout time.Duration
}

// replySender is a Sender that also returns the server's answer.
type replySender interface {
	SendReply(ctx context.Context, m Message) (string, error)
}

// New opens the settings and the outbox in cfg.StateDir. An unreadable
// outbox file is moved aside (logged) so mail keeps working; unreadable
// settings are an error, as the admin must see them fixed.
func New(cfg Config) (*Mailer, error) {
	if cfg.StateDir == "" {
		return nil, errors.New("mail: no state directory")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.CodeTimeout <= 0 {
		cfg.CodeTimeout = DefaultCodeTimeout
	}
	composer, err := NewComposer(cfg.DeviceName, cfg.Clock)
	if err != nil {
		return nil, err
	}
	settings, err := OpenSettings(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	sender := cfg.Sender
	if sender == nil {
		if cfg.SMTP.Logger == nil {
			cfg.SMTP.Logger = cfg.Logger
		}
		sender = NewSMTPSender(settings, cfg.SMTP)
	}
	store := cfg.OutboxStore
	if store == nil {
		store = NewFileOutboxStore(cfg.StateDir)
	}
	if cfg.Outbox.Logger == nil {
		cfg.Outbox.Logger = cfg.Logger
	}
	outbox, err := NewOutbox(store, sender, cfg.Clock, cfg.Outbox)
	if fs, ok := store.(*FileOutboxStore); ok && err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", fs.Path(), cfg.Clock.Now().Unix())
		cfg.Logger.Error("mail: outbox unreadable, moved aside; pending notices are lost", "err", err, "moved_to", aside)
		if rerr := os.Rename(fs.Path(), aside); rerr != nil {
			return nil, fmt.Errorf("mail: move unreadable outbox aside: %w (after %w)", rerr, err)
		}
		outbox, err = NewOutbox(store, sender, cfg.Clock, cfg.Outbox)
	}
	if err != nil {
		return nil, err
	}
	return &Mailer{settings: settings, composer: composer, sender: sender, outbox: outbox,
		log: cfg.Logger, codeTimeout: cfg.CodeTimeout}, nil
}

// Settings returns the settings store (Redacted for GET).
func (m *Mailer) Settings() *SettingsStore { return m.settings }

// UpdateSettings applies a PUT of the admin's settings (see
// SettingsStore.Update) and retries pending notices at once with them.
func (m *Mailer) UpdateSettings(update Settings) (RedactedSettings, error) {
	r, err := m.settings.Update(update)
	if err != nil {
		return r, err
	}
	m.log.Info("mail: SMTP settings changed", "host", r.Host, "port", r.Port, "security", r.Security)
	m.outbox.RetryNow()
	return r, nil
}

// Outbox returns the outbox (List for admins).
func (m *Mailer) Outbox() *Outbox { return m.outbox }

// Run runs the outbox worker until ctx ends; start it in its own goroutine.
func (m *Mailer) Run(ctx context.Context) error { return m.outbox.Run(ctx) }

// SendVerificationCode mails code to the address being confirmed as the
// security email of account, synchronously. The error is a *SendError
// (see CodeOf) or a validation error (CodeInvalidMessage).
func (m *Mailer) SendVerificationCode(ctx context.Context, to, account, code string) error {
	msg, err := m.composer.VerificationCode(to, account, code)
	if err != nil {
		return err
	}
	return m.sendNow(ctx, msg)
}

// SendEmergencyCode mails a one-time emergency login code, synchronously;
// requestedAt and clientAddr describe the request, validFor its lifetime.
func (m *Mailer) SendEmergencyCode(ctx context.Context, to, account, code string, requestedAt time.Time, clientAddr string, validFor time.Duration) error {
	msg, err := m.composer.EmergencyCode(to, account, code, requestedAt, clientAddr, validFor)
	if err != nil {
		return err
	}
	return m.sendNow(ctx, msg)
}

func (m *Mailer) sendNow(ctx context.Context, msg Message) error {
	ctx, cancel := context.WithTimeout(ctx, m.codeTimeout)
	defer cancel()
	return m.sender.Send(ctx, msg)
}

// Notify queues a notice to to and returns its outbox ID. It does not wait
// for delivery. With no SMTP settings it returns ErrNotConfigured and
// queues nothing, so stale notices do not go out once mail is set up.
func (m *Mailer) Notify(to string, n Notice) (string, error) {
	if _, err := m.settings.Current(); err != nil {
		return "", err
	}
	msg, err := m.composer.Notice(to, n)
	if err != nil {
		return "", err
	}
	return m.outbox.Enqueue(msg)
}

// Test sends the test mail of the admin's "send a test mail" button
// synchronously and returns the server's answer.
func (m *Mailer) Test(ctx context.Context, to string) (serverReply string, err error) {
	msg, err := m.composer.TestMessage(to)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, m.codeTimeout)
	defer cancel()
	if rs, ok := m.sender.(replySender); ok {
		return rs.SendReply(ctx, msg)
	}
	return "", m.sender.Send(ctx, msg)
}
