package console

import (
	"strings"
)

// Clean makes text from outside (an action's result, an audit entry, an
// error) safe to show on a terminal: every byte that is not printable ASCII
// becomes '?', so no escape sequence or control byte reaches the operator's
// terminal, and a trailing newline is dropped.
func Clean(s string) string {
	s = strings.TrimRight(s, "\r\n")
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// output writes to the line, turning LF into CRLF (the port is raw: the
// kernel adds no CR) and remembering the first write error so a session can
// check once after a burst of output.
type output struct {
	w   interface{ Write([]byte) (int, error) }
	err error
}

func (o *output) write(s string) {
	if o.err != nil || s == "" {
		return
	}
	s = strings.ReplaceAll(s, "\n", "\r\n")
	_, o.err = o.w.Write([]byte(s))
}

// Columns is the width the console keeps to: an 80x24 terminal shows
// every line whole.
const Columns = 80

// line writes s, which the console wrote itself, and a line end. A line
// wider than Columns is broken at spaces, the rest indented by two spaces;
// a long "== failed: ... ==" frame too, which attach reads to its " ==".
func (o *output) line(s string) {
	if len(s) <= Columns {
		o.write(s + "\n")
		return
	}
	for i, l := range wrap(s, Columns) {
		if i > 0 {
			l = "  " + l
		}
		o.write(l + "\n")
	}
}

// text writes lines that came from outside, cleaned.
func (o *output) text(s string) {
	for l := range strings.SplitSeq(strings.TrimRight(s, "\r\n"), "\n") {
		o.line(Clean(l))
	}
}
