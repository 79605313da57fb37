// Package console is the rescue console on the board's debug UART: a banner
// with the board's state, and a menu of a few fixed recovery actions behind
// physical confirmation. It offers no shell and runs no commands.
package console

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/rescue/lineread"
)

// The console's fixed texts. Scripts (and the attach client) look for them, so
// they are part of the interface: change them only together with attach.
const (
	// Title starts the banner.
	Title = "rknas rescue console"
	// FailsafeNote is on the banner in failsafe mode.
	FailsafeNote = "FAILSAFE MODE (RESET held at power-on)"
	// FailsafeOpen follows FailsafeNote while the menu opens by itself.
	FailsafeOpen = ": menu open"
	// BannerHint ends the banner: the console waits for "r".
	BannerHint = "press r and Enter for the rescue menu"
	// Prompt is the menu prompt, written without a line end.
	Prompt = "rescue> "
	// OK is the line that ends a successful action's output.
	OK = "== ok =="
	// FailedPrefix starts the line that ends a failed action's output; the
	// reason and " ==" follow.
	FailedPrefix = "== failed: "
	// ConfirmTypePrefix starts the prompt asking for the confirmation word,
	// which follows it up to the next space.
	ConfirmTypePrefix = "confirm: type "
	// ConfirmButtonPrefix starts the line asking for a button press.
	ConfirmButtonPrefix = "confirm: press the button on the board"
	// TellsPrefix starts what an action will do, shown before its
	// confirmation; the lines up to the confirmation belong to it.
	TellsPrefix = "this will: "
	// TimePrompt asks for the new time in set-clock.
	TimePrompt = "new time in UTC (YYYY-MM-DD HH:MM, seconds optional): "
	// CommentPrefix starts a line the console ignores without a word, at the
	// banner and in the menu. attach sends one with a random tag and waits for
	// its echo to know that what follows is fresh output; on a line where a
	// shell listens instead, it is a shell comment and harmless too.
	CommentPrefix = "#"
	// UnknownChoice starts the answer to input that is not in the menu.
	UnknownChoice = "unknown choice "
	// TimeLayout is how set-clock reads the time.
	TimeLayout = "2006-01-02 15:04:05"
)

// Begin returns the line that starts the output of the action named name.
func Begin(name string) string { return "== " + name + " ==" }

// Names of the menu entries, as typed at the prompt and given to attach --run.
const (
	ActionStatus       = "status"
	ActionResetAdmin   = "reset-admin"
	ActionResetNetwork = "reset-network"
	ActionAudit        = "audit"
	ActionClock        = "clock"
	ActionSetClock     = "set-clock"
	ActionReboot       = "reboot"
	ActionPowerOff     = "poweroff"
	ActionInstallEMMC  = "install-emmc"
	// ActionNewCertificate makes a new HTTPS device certificate.
	ActionNewCertificate = "new-certificate"
	// ActionSetAsideDatabase renames a damaged accounts database so the
	// login service starts anew.
	ActionSetAsideDatabase = "set-aside-database"
)

// Defaults of Config.
const (
	DefaultIdleTimeout    = 5 * time.Minute
	DefaultConfirmTimeout = 30 * time.Second
	DefaultConfirmWord    = "RESET"
	DefaultAuditEntries   = 20
	DefaultActionTimeout  = 2 * time.Minute
	// InstallTimeout bounds install-emmc, which writes and reads back
	// about 200 MiB: a slow eMMC or card may take minutes.
	InstallTimeout       = 20 * time.Minute
	DefaultStatusTimeout = 5 * time.Second
	DefaultBackoffMin    = 250 * time.Millisecond
	DefaultBackoffMax    = 10 * time.Second
)

// Config configures a Console. Actions is required; the rest has defaults.
type Config struct {
	// Actions performs the menu's actions.
	Actions Actions
	// Button confirms destructive actions. Nil means the board has no usable
	// button: the operator types a confirmation word instead.
	Button Button
	// Failsafe opens the menu at once (the board was started with RESET
	// held) and says so on the banner.
	Failsafe bool
	// Clock measures idle and confirmation timeouts; clock.System when nil.
	Clock clock.Clock
	// Log receives what happened (never secrets); slog.Default when nil.
	Log *slog.Logger
	// IdleTimeout sends an idle menu back to the banner.
	IdleTimeout time.Duration
	// ConfirmTimeout is how long the operator has to confirm.
	ConfirmTimeout time.Duration
	// ConfirmWord starts the word to type on boards without a button; four
	// random digits are added each time so that stale or replayed input
	// cannot confirm by accident.
	ConfirmWord string
	// AuditEntries is how many audit entries the audit entry shows.
	AuditEntries int
	// MaxLine bounds an input line (lineread.DefaultMax when zero).
	MaxLine int
	// ActionTimeout bounds each call to Actions.
	ActionTimeout time.Duration
	// StatusTimeout bounds the Status call of the banner.
	StatusTimeout time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts to open the
	// port in Run; the wait doubles after each failure.
	BackoffMin, BackoffMax time.Duration
}

func (c *Config) setDefaults() error {
	if c.Actions == nil {
		return errors.New("console: config: Actions is required")
	}
	if c.Clock == nil {
		c.Clock = clock.System{}
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	durations := []struct {
		name string
		d    *time.Duration
		def  time.Duration
	}{
		{"IdleTimeout", &c.IdleTimeout, DefaultIdleTimeout},
		{"ConfirmTimeout", &c.ConfirmTimeout, DefaultConfirmTimeout},
		{"ActionTimeout", &c.ActionTimeout, DefaultActionTimeout},
		{"StatusTimeout", &c.StatusTimeout, DefaultStatusTimeout},
		{"BackoffMin", &c.BackoffMin, DefaultBackoffMin},
		{"BackoffMax", &c.BackoffMax, DefaultBackoffMax},
	}
	for _, d := range durations {
		if *d.d < 0 {
			return fmt.Errorf("console: config: %s is negative (%v)", d.name, *d.d)
		}
		if *d.d == 0 {
			*d.d = d.def
		}
	}
	if c.BackoffMax < c.BackoffMin {
		return fmt.Errorf("console: config: BackoffMax %v is below BackoffMin %v", c.BackoffMax, c.BackoffMin)
	}
	if c.ConfirmWord == "" {
		c.ConfirmWord = DefaultConfirmWord
	}
	for _, b := range []byte(c.ConfirmWord) {
		if b <= 0x20 || b >= 0x7f {
			return fmt.Errorf("console: config: ConfirmWord %q must be printable ASCII without spaces", c.ConfirmWord)
		}
	}
	if c.AuditEntries < 0 {
		return fmt.Errorf("console: config: AuditEntries is negative (%d)", c.AuditEntries)
	}
	if c.AuditEntries == 0 {
		c.AuditEntries = DefaultAuditEntries
	}
	if c.MaxLine < 0 {
		return fmt.Errorf("console: config: MaxLine is negative (%d)", c.MaxLine)
	}
	return nil
}

// Console serves the rescue console over a line.
type Console struct {
	cfg     Config
	entries []entry
}

type entry struct {
	key, name, help string
	confirm         bool
	// word starts the confirmation word ("RESET" gives "RESET-1234"); the
	// config's ConfirmWord when empty.
	word string
	// tells says everything the action will do, shown before the
	// confirmation is asked for; tellsAlone replaces it where the network
	// is not managed (reset-network unavailable for NetworkUnmanaged).
	tells, tellsAlone string
	// timeout replaces the config's ActionTimeout for this entry.
	timeout time.Duration
	// ask reads what the action needs before confirmation (set-clock).
	ask func(s *session) (any, bool, error)
	run func(ctx context.Context, s *session, arg any) error
}

// New checks cfg and returns a console.
func New(cfg Config) (*Console, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg}
	c.entries = []entry{
		{key: "1", name: ActionStatus, help: "board, version, addresses, clock, authd", run: c.doStatus},
		{key: "2", name: ActionResetAdmin, help: "admin password, 2FA and network to defaults", confirm: true, run: c.doResetAdmin,
			tells: "the admin account gets the device's default password back (printed on the label the flasher made, " +
				"and in rknas/default-password on the boot partition) and loses its 2FA (app and passkeys), sessions, trusted devices and app passwords; " +
				"the network goes back to DHCP on every Ethernet port, so the NAS may get a new address. " +
				"Other accounts and all data are kept.",
			tellsAlone: "the admin account gets the device's default password back (printed on the label the flasher made, " +
				"and in rknas/default-password on the boot partition) and loses its 2FA (app and passkeys), sessions, trusted devices and app passwords. " +
				"The network is not managed here and stays as it is. Other accounts and all data are kept."},
		{key: "3", name: ActionResetNetwork, help: "reset the network to DHCP", confirm: true, word: "NETWORK", run: c.doResetNetwork,
			tells: "the network goes back to DHCP on every Ethernet port and the default hostname, so the NAS may get a new address."},
		{key: "4", name: ActionAudit, help: fmt.Sprintf("show the last %d audit entries", cfg.AuditEntries), run: c.doAudit},
		{key: "5", name: ActionClock, help: "show the clock", run: c.doClock},
		{key: "6", name: ActionSetClock, help: "set the clock", confirm: true, word: "CLOCK", ask: c.askTime, run: c.doSetClock},
		{key: "7", name: ActionReboot, help: "reboot the board", confirm: true, word: "REBOOT", run: c.doReboot},
		{key: "8", name: ActionPowerOff, help: "power the board off", confirm: true, word: "POWEROFF", run: c.doPowerOff},
		{key: "9", name: ActionInstallEMMC, help: "copy this firmware and settings to the eMMC",
			confirm: true, word: "INSTALL", timeout: InstallTimeout, run: c.doInstallEMMC,
			tells: "everything on the board's eMMC is erased; this firmware, its accounts and settings are copied there."},
		{key: "10", name: ActionNewCertificate, help: "a new HTTPS certificate (browsers warn)", confirm: true, word: "CERT", run: c.doNewCertificate,
			tells: "the login pages get a new device certificate (an imported one is removed); every browser that accepted the old one warns again."},
		{key: "11", name: ActionSetAsideDatabase, help: "set a damaged accounts database aside", confirm: true, word: "DATABASE",
			run: c.doSetAsideDatabase,
			tells: "the damaged accounts database (auth.db) is renamed and kept beside the new one the login service makes " +
				"at the next start: every account, password, 2FA and login setting starts anew, and the admin gets the " +
				"device's default password. The data on the disks is kept."},
	}
	return c, nil
}

// ActionNames lists the menu's action names in menu order.
func ActionNames() []string {
	return []string{ActionStatus, ActionResetAdmin, ActionResetNetwork, ActionAudit, ActionClock,
		ActionSetClock, ActionReboot, ActionPowerOff, ActionInstallEMMC, ActionNewCertificate, ActionSetAsideDatabase}
}

// session is one connection of the line: it lives until the line fails.
type session struct {
	ctx context.Context
	out *output
	in  *lineread.Reader
	// shown is set once the banner was shown in this session.
	shown bool
}

// errLine marks an error of the line itself (read or write): the session
// ends and Run reopens the port.
type errLine struct{ err error }

func (e errLine) Error() string { return "console: line: " + e.err.Error() }
func (e errLine) Unwrap() error { return e.err }

// Serve runs the console over rw until ctx is done (it returns nil) or the
// line fails (it returns the read or write error). rw should return from Read
// now and then without input, as go.bug.st/serial does with a read timeout
// ((0, nil)); otherwise timeouts and ctx are only noticed on input.
func (c *Console) Serve(ctx context.Context, rw io.ReadWriter) error {
	out := &output{w: rw}
	s := &session{
		ctx: ctx,
		out: out,
		in:  lineread.New(rw, rw, lineread.Config{Max: c.cfg.MaxLine, Idle: c.cfg.IdleTimeout, Clock: c.cfg.Clock}),
	}
	inMenu := false
	if c.cfg.Failsafe {
		// Rescue mode at power-on: show where we are, then the menu at once.
		c.showBanner(s)
		inMenu = true
	}
	for {
		var err error
		if inMenu {
			err = c.menu(s)
		} else {
			err = c.banner(s)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		inMenu = !inMenu
	}
}

// readLine reads a line; errors of the line come back as errLine, the rest
// (idle, deadline, too long, Ctrl-C, ctx) as they are.
func (s *session) readLine(deadline time.Time) (string, error) {
	if s.out.err != nil {
		return "", errLine{s.out.err}
	}
	line, err := s.in.ReadLine(s.ctx, deadline)
	switch {
	case err == nil, errors.Is(err, lineread.ErrIdle), errors.Is(err, lineread.ErrDeadline),
		errors.Is(err, lineread.ErrTooLong), errors.Is(err, lineread.ErrInterrupt),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return line, err
	}
	return "", errLine{err}
}

// banner shows the banner and waits for "r". It returns nil when the menu
// should open.
func (c *Console) banner(s *session) error {
	c.showBanner(s)
	for {
		line, err := s.readLine(time.Time{})
		switch {
		case errors.Is(err, lineread.ErrIdle), errors.Is(err, lineread.ErrInterrupt):
			continue
		case errors.Is(err, lineread.ErrTooLong):
			s.out.line(c.tooLong())
			s.out.line(BannerHint)
			continue
		case err != nil:
			return err
		}
		choice := strings.ToLower(strings.TrimSpace(line))
		switch {
		case choice == "r", choice == "m", choice == "menu", choice == "help", choice == "?":
			return s.out.err
		case strings.HasPrefix(choice, CommentPrefix):
		case choice == "":
			c.showBanner(s)
		default:
			s.out.line(BannerHint)
		}
		if s.out.err != nil {
			return errLine{s.out.err}
		}
	}
}

func (c *Console) tooLong() string {
	return fmt.Sprintf("input too long (more than %d characters): ignored", c.maxLine())
}

func (c *Console) maxLine() int {
	if c.cfg.MaxLine == 0 {
		return lineread.DefaultMax
	}
	return c.cfg.MaxLine
}

func (c *Console) showBanner(s *session) {
	s.out.line("")
	switch {
	case c.cfg.Failsafe && !s.shown:
		s.out.line(Title + " -- " + FailsafeNote + FailsafeOpen)
	case c.cfg.Failsafe:
		// Back from the menu (idle or q): the menu waits for r now.
		s.out.line(Title + " -- " + FailsafeNote)
	default:
		s.out.line(Title)
	}
	ctx, cancel := context.WithTimeout(s.ctx, c.cfg.StatusTimeout)
	st, err := c.cfg.Actions.Status(ctx)
	cancel()
	if err != nil {
		c.cfg.Log.Warn("rescue: status", "err", err)
		s.out.line("status: unavailable: " + Clean(err.Error()))
	} else {
		for _, l := range statusLines(st) {
			s.out.line(l)
		}
		// First aid for an owner without a manual: where the pages are,
		// and the way back in.
		for _, u := range webURLs(st) {
			s.out.line("web pages: " + u)
		}
		s.out.line("forgot the admin password? press r and Enter, then 2")
	}
	if !c.cfg.Failsafe || s.shown {
		s.out.line(BannerHint)
	}
	s.shown = true
}

// webURLs are the login pages' addresses: HTTPS on the IPv4 addresses of
// st (at most two), when the port is known.
func webURLs(st Status) []string {
	if st.WebPort == 0 {
		return nil
	}
	var out []string
	for _, a := range st.Addresses {
		f := strings.Fields(a)
		if len(f) != 2 {
			continue
		}
		ip, _, err := net.ParseCIDR(f[1])
		if err != nil || ip.To4() == nil || ip.IsLoopback() {
			continue
		}
		u := "https://" + ip.String()
		if st.WebPort != 443 {
			u += ":" + strconv.Itoa(st.WebPort)
		}
		out = append(out, u+"/")
		if len(out) == 2 {
			break
		}
	}
	return out
}

// statusLines formats st as "key: value" lines; scripts read them (for
// example the address lines), so the keys are stable.
func statusLines(st Status) []string {
	lines := []string{"board: " + orUnknown(st.Board), "version: " + orUnknown(st.Version)}
	if len(st.Addresses) == 0 {
		lines = append(lines, "address: none")
	}
	for _, a := range st.Addresses {
		lines = append(lines, "address: "+Clean(a))
	}
	lines = append(lines, "clock: "+clockLine(st.Clock))
	// "login service", not "authd": the owner knows what the daemon does,
	// not its name.
	authd := orUnknown(st.Authd)
	switch {
	case st.AuthdOK:
	case st.AuthdStarting:
		authd = "starting: " + authd
	case st.AuthdStopped:
		authd = "stopped (failsafe mode): " + authd
	default:
		authd = "FAILING: " + authd
	}
	lines = append(lines, "login service: "+authd)
	if fp := Clean(st.Certificate); fp != "" {
		// 95 characters: two lines, so an 80-column terminal does not
		// wrap it where the eye loses its place.
		half := min(len(fp), 48)
		lines = append(lines, "https certificate SHA-256: "+fp[:half])
		if half < len(fp) {
			lines = append(lines, "                           "+fp[half:])
		}
	}
	return lines
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return Clean(s)
}

func clockLine(c ClockState) string {
	s := c.Now.UTC().Format(time.RFC3339)
	if c.Synchronized {
		s += " synchronized"
	} else {
		s += " NOT synchronized"
	}
	if c.Source != "" {
		s += " (" + Clean(c.Source) + ")"
	}
	return s
}

// unavailable asks the Actions which entries cannot run now.
func (c *Console) unavailable(s *session) map[string]string {
	av, ok := c.cfg.Actions.(Availability)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, c.cfg.StatusTimeout)
	defer cancel()
	return av.Unavailable(ctx)
}

func (c *Console) showMenu(s *session) {
	s.out.line("")
	s.out.line("rescue menu (no shell: only these actions)")
	off := c.unavailable(s)
	for _, e := range c.entries {
		mark := ""
		switch _, no := off[e.name]; {
		case no:
			mark = "  [not now]"
		case e.confirm:
			mark = "  [confirm]"
		}
		s.out.line(fmt.Sprintf("  %-2s %-15s %s%s", e.key, e.name, e.help, mark))
	}
	s.out.line(fmt.Sprintf("  %-2s %-15s %s", "q", "quit", "back to the banner"))
	s.out.line("type a number or a name and press Enter")
}

// menu runs the menu until the operator quits or it is idle (nil: back to
// the banner) or the line fails.
func (c *Console) menu(s *session) error {
	c.showMenu(s)
	for {
		s.out.write(Prompt)
		line, err := s.readLine(time.Time{})
		switch {
		case errors.Is(err, lineread.ErrIdle):
			s.out.line("")
			s.out.line(fmt.Sprintf("idle for %v: back to the banner", c.cfg.IdleTimeout))
			return s.out.err
		case errors.Is(err, lineread.ErrTooLong):
			s.out.line(c.tooLong())
			continue
		case errors.Is(err, lineread.ErrInterrupt):
			continue
		case err != nil:
			return err
		}
		choice := strings.ToLower(strings.TrimSpace(line))
		if strings.HasPrefix(choice, CommentPrefix) {
			continue
		}
		switch choice {
		case "", "?", "h", "help", "m", "menu", "r":
			c.showMenu(s)
			continue
		case "q", "quit", "exit":
			return s.out.err
		}
		e := c.lookup(choice)
		if e == nil {
			// One line, not the whole menu again: on a 24-line screen the
			// menu would push the earlier output away.
			c.cfg.Log.Info("rescue: unknown menu choice", "len", len(choice))
			msg := fmt.Sprintf("%s%.32q", UnknownChoice, Clean(choice))
			if near := c.nearest(choice); near != "" {
				msg += ": did you mean " + near + "?"
			}
			s.out.line(msg + " (? shows the menu)")
			continue
		}
		if err := c.runEntry(s, e); err != nil {
			return err
		}
	}
}

// nearest returns the menu name closest to a mistyped choice (at most two
// edits away, or one it starts), or "".
func (c *Console) nearest(choice string) string {
	best, bestDist := "", 3
	for _, e := range c.entries {
		if len(choice) >= 3 && strings.HasPrefix(e.name, choice) {
			return e.name
		}
		if d := editDistance(choice, e.name); d < bestDist {
			best, bestDist = e.name, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (c *Console) lookup(choice string) *entry {
	for i := range c.entries {
		if c.entries[i].key == choice || c.entries[i].name == choice {
			return &c.entries[i]
		}
	}
	return nil
}

// runEntry runs one action between its Begin line and OK or FailedPrefix. It
// returns only errors of the line.
func (c *Console) runEntry(s *session, e *entry) error {
	log := c.cfg.Log.With("action", e.name)
	s.out.line(Begin(e.name))
	// Checked first: the operator must not type a word or fetch a
	// screwdriver for an action that cannot run.
	off := c.unavailable(s)
	if reason, no := off[e.name]; no {
		return c.finish(s, log, fmt.Errorf("%w: %s", ErrNotAvailable, reason))
	}
	var arg any
	if e.ask != nil {
		a, ok, err := e.ask(s)
		if err != nil {
			return err
		}
		if !ok {
			return c.finish(s, log, ErrNotConfirmed)
		}
		arg = a
	}
	if e.confirm {
		tells := e.tells
		if e.tellsAlone != "" && off[ActionResetNetwork] == NetworkUnmanaged {
			tells = e.tellsAlone
		}
		if tells != "" {
			for _, l := range wrap(TellsPrefix+tells, 80) {
				s.out.line(l)
			}
		}
		word := e.word
		if word == "" {
			word = c.cfg.ConfirmWord
		}
		ok, err := c.confirm(s, e.name, word)
		if err != nil {
			return err
		}
		if !ok {
			log.Warn("rescue: action not confirmed")
			return c.finish(s, log, ErrNotConfirmed)
		}
		log.Warn("rescue: action confirmed")
	}
	timeout := c.cfg.ActionTimeout
	if e.timeout > 0 {
		timeout = e.timeout
	}
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	err := e.run(ctx, s, arg)
	if s.ctx.Err() != nil {
		return nil
	}
	return c.finish(s, log, err)
}

func (c *Console) finish(s *session, log *slog.Logger, err error) error {
	// The frame line first, the log after: on a board whose log goes to the
	// same UART, the log line then falls outside the action's output.
	if err != nil {
		s.out.line(FailedPrefix + Clean(err.Error()) + " ==")
		if !errors.Is(err, ErrNotConfirmed) {
			log.Error("rescue: action failed", "err", err)
		}
	} else {
		s.out.line(OK)
		log.Info("rescue: action done")
	}
	if s.out.err != nil {
		return errLine{s.out.err}
	}
	return nil
}

// confirm asks for physical confirmation of the action named name. It
// returns false when the operator did not confirm in time or cancelled, and
// an error only when the line failed.
func (c *Console) confirm(s *session, name, prefix string) (bool, error) {
	if c.cfg.Button != nil {
		return c.confirmButton(s, name)
	}
	word, err := confirmWord(prefix)
	if err != nil {
		c.cfg.Log.Error("rescue: confirmation word", "err", err)
		return false, nil
	}
	// The deadline is fixed before the prompt is shown: the operator's time
	// starts when they can read it, never later.
	deadline := c.cfg.Clock.Now().Add(c.cfg.ConfirmTimeout)
	s.out.write(fmt.Sprintf("%s%s and press Enter within %v to %s: ", ConfirmTypePrefix, word, c.cfg.ConfirmTimeout, name))
	line, err := s.readLine(deadline)
	switch {
	case err == nil:
	case isLine(err) || s.ctx.Err() != nil:
		return false, lineErr(s, err)
	case errors.Is(err, lineread.ErrDeadline), errors.Is(err, lineread.ErrIdle):
		s.out.line("")
		s.out.line("no confirmation within " + c.cfg.ConfirmTimeout.String())
		return false, nil
	default: // Ctrl-C or a line too long
		s.out.line("cancelled")
		return false, nil
	}
	switch typed := strings.TrimSpace(line); {
	case typed == "":
		s.out.line("cancelled")
		return false, nil
	case !strings.EqualFold(typed, word):
		s.out.line("that is not " + word)
		return false, nil
	}
	return true, nil
}

// wrap breaks text into lines of at most width columns at spaces.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}

func isLine(err error) bool {
	var le errLine
	return errors.As(err, &le)
}

func lineErr(s *session, err error) error {
	if s.ctx.Err() != nil {
		return s.ctx.Err()
	}
	return err
}

// confirmButton waits for the button while still reading the line, so that
// Enter cancels.
func (c *Console) confirmButton(s *session, name string) (bool, error) {
	s.out.line(fmt.Sprintf("%s within %v to %s (Enter cancels)", ConfirmButtonPrefix, c.cfg.ConfirmTimeout, name))
	if s.out.err != nil {
		return false, errLine{s.out.err}
	}
	bctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	type result struct {
		pressed bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		p, err := c.cfg.Button.WaitPress(bctx, c.cfg.ConfirmTimeout)
		done <- result{p, err}
		cancel()
	}()
	rs := &session{ctx: bctx, out: s.out, in: s.in}
	var rerr error
	for {
		_, rerr = rs.readLine(time.Time{})
		if !errors.Is(rerr, lineread.ErrIdle) { // an idle limit shorter than the wait
			break
		}
	}
	cancel()
	res := <-done
	switch {
	case s.ctx.Err() != nil:
		return false, s.ctx.Err()
	case rerr != nil && isLine(rerr):
		return false, rerr
	case rerr == nil, errors.Is(rerr, lineread.ErrInterrupt), errors.Is(rerr, lineread.ErrTooLong):
		s.out.line("cancelled")
		return false, nil
	case res.err != nil && !errors.Is(res.err, context.Canceled):
		c.cfg.Log.Error("rescue: button", "err", res.err)
		s.out.line("the button could not be read")
		return false, nil
	case !res.pressed:
		s.out.line("no button press within " + c.cfg.ConfirmTimeout.String())
		return false, nil
	}
	s.out.line("button pressed")
	return true, nil
}

// confirmWord returns prefix, a dash and four random digits.
func confirmWord(prefix string) (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(10000))
	if err != nil {
		return "", fmt.Errorf("console: random confirmation word: %w", err)
	}
	return fmt.Sprintf("%s-%04d", prefix, n.Int64()), nil
}

func (c *Console) doStatus(ctx context.Context, s *session, _ any) error {
	st, err := c.cfg.Actions.Status(ctx)
	if err != nil {
		return fmt.Errorf("status: %w", err)
	}
	for _, l := range statusLines(st) {
		s.out.line(l)
	}
	return nil
}

func (c *Console) doResetAdmin(ctx context.Context, s *session, _ any) error {
	msg, err := c.cfg.Actions.ResetAdmin(ctx)
	if msg != "" {
		s.out.text(msg)
	}
	if err != nil {
		return fmt.Errorf("reset-admin: %w", err)
	}
	return nil
}

func (c *Console) doResetNetwork(ctx context.Context, s *session, _ any) error {
	msg, err := c.cfg.Actions.ResetNetwork(ctx)
	if msg != "" {
		s.out.text(msg)
	}
	if err != nil {
		return fmt.Errorf("reset-network: %w", err)
	}
	return nil
}

func (c *Console) doNewCertificate(ctx context.Context, s *session, _ any) error {
	msg, err := c.cfg.Actions.NewCertificate(ctx)
	if msg != "" {
		s.out.text(msg)
	}
	if err != nil {
		return fmt.Errorf("new-certificate: %w", err)
	}
	return nil
}

func (c *Console) doSetAsideDatabase(ctx context.Context, s *session, _ any) error {
	msg, err := c.cfg.Actions.SetAsideDatabase(ctx)
	if msg != "" {
		s.out.text(msg)
	}
	if err != nil {
		return fmt.Errorf("set-aside-database: %w", err)
	}
	return nil
}

func (c *Console) doInstallEMMC(ctx context.Context, s *session, _ any) error {
	msg, err := c.cfg.Actions.InstallEMMC(ctx)
	if msg != "" {
		s.out.text(msg)
	}
	if err != nil {
		return fmt.Errorf("install-emmc: %w", err)
	}
	return nil
}

func (c *Console) doAudit(ctx context.Context, s *session, _ any) error {
	entries, err := c.cfg.Actions.Audit(ctx, c.cfg.AuditEntries)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if len(entries) == 0 {
		s.out.line("no audit entries")
	}
	if len(entries) > c.cfg.AuditEntries {
		entries = entries[len(entries)-c.cfg.AuditEntries:]
	}
	for _, e := range entries {
		s.out.line(Clean(e))
	}
	return nil
}

func (c *Console) doClock(ctx context.Context, s *session, _ any) error {
	cs, err := c.cfg.Actions.Clock(ctx)
	if err != nil {
		return fmt.Errorf("clock: %w", err)
	}
	s.out.line("clock: " + clockLine(cs))
	return nil
}

// askTime reads the new time for set-clock.
func (c *Console) askTime(s *session) (any, bool, error) {
	now := c.cfg.Clock.Now().UTC()
	s.out.line("the clock says " + now.Format(TimeLayout) + " UTC")
	// A typing error asks again, three times in all; an empty line
	// cancels.
	for try := 0; try < 3; try++ {
		s.out.write(TimePrompt)
		line, err := s.readLine(time.Time{})
		if err != nil {
			if isLine(err) || s.ctx.Err() != nil {
				return nil, false, lineErr(s, err)
			}
			s.out.line("")
			return nil, false, nil
		}
		if strings.TrimSpace(line) == "" {
			s.out.line("cancelled")
			return nil, false, nil
		}
		t, err := ParseTime(line)
		if err == nil {
			return t, true, nil
		}
		s.out.line(Clean(err.Error()))
	}
	return nil, false, nil
}

// ParseTime reads the time an operator typed for set-clock: TimeLayout in
// UTC, or RFC 3339. Years before 2020 and after 2200 are refused: no board
// runs then, and such a time is a typing error.
func ParseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	var t time.Time
	var err error
	for _, layout := range []string{TimeLayout, "2006-01-02 15:04", time.RFC3339} {
		if t, err = time.ParseInLocation(layout, s, time.UTC); err == nil {
			break
		}
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("not a time: %q (want YYYY-MM-DD HH:MM in UTC, seconds optional)", s)
	}
	if t.Year() < 2020 || t.Year() > 2200 {
		return time.Time{}, fmt.Errorf("year %d is out of range 2020..2200", t.Year())
	}
	return t.UTC(), nil
}

func (c *Console) doSetClock(ctx context.Context, s *session, arg any) error {
	t := arg.(time.Time)
	if err := c.cfg.Actions.SetClock(ctx, t); err != nil {
		return fmt.Errorf("set-clock: %w", err)
	}
	s.out.line("clock set to " + t.Format(time.RFC3339))
	return nil
}

func (c *Console) doReboot(ctx context.Context, s *session, _ any) error {
	s.out.line("rebooting")
	if err := c.cfg.Actions.Reboot(ctx); err != nil {
		return fmt.Errorf("reboot: %w", err)
	}
	return nil
}

func (c *Console) doPowerOff(ctx context.Context, s *session, _ any) error {
	s.out.line("powering off")
	if err := c.cfg.Actions.PowerOff(ctx); err != nil {
		return fmt.Errorf("poweroff: %w", err)
	}
	return nil
}

// Run opens the line with open, serves it, and when it fails (a cable pulled,
// a USB adapter gone) closes it and opens it again, waiting between attempts
// from BackoffMin doubling up to BackoffMax. It returns when ctx is done.
func (c *Console) Run(ctx context.Context, open func() (io.ReadWriteCloser, error)) error {
	delay := c.cfg.BackoffMin
	wait := func() bool {
		t := time.NewTimer(delay)
		defer t.Stop()
		delay = min(delay*2, c.cfg.BackoffMax)
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	for ctx.Err() == nil {
		port, err := open()
		if err != nil {
			c.cfg.Log.Warn("rescue: open port", "err", err, "retry_in", delay)
			if !wait() {
				break
			}
			continue
		}
		c.cfg.Log.Info("rescue: port open")
		started := time.Now()
		err = c.Serve(ctx, port)
		if cerr := port.Close(); cerr != nil {
			c.cfg.Log.Debug("rescue: close port", "err", cerr)
		}
		if ctx.Err() != nil {
			break
		}
		// A line that worked for a while starts again from the shortest
		// wait; one that fails at once backs off.
		if time.Since(started) > 10*c.cfg.BackoffMax {
			delay = c.cfg.BackoffMin
		}
		c.cfg.Log.Warn("rescue: line lost, reopening", "err", err, "retry_in", delay)
		if !wait() {
			break
		}
	}
	return nil
}
