package mail

import (
	"context"
	"time"
)

// ProcessDue runs one delivery pass of o, for tests that step a fake clock.
func ProcessDue(ctx context.Context, o *Outbox) time.Time { return o.processDue(ctx) }

// RecipientRefused reports whether err is a permanent refusal of the recipient.
func RecipientRefused(err error) bool {
	se, ok := err.(*SendError)
	return ok && se.recipientRefused
}
