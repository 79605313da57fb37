// Package mail sends authd's security mails over SMTP: verification and
// emergency login codes directly, and security notices through a persistent
// outbox that retries until the mail server takes them.
//
// The pieces, from the outside in:
//
//   - Settings and SettingsStore: the admin's SMTP settings (presets,
//     validation, the password kept but never shown), persisted in the state
//     directory.
//   - Composer: builds the Message for each kind of mail with the device's
//     name in subject and body; Message.Validate refuses header injection.
//   - Sender and SMTPSender: delivery with timeouts, mandatory certificate
//     verification, and errors classified as a *SendError with a stable Code.
//   - Outbox: retries notices with exponential backoff across restarts and
//     mail outages; Run drives it in its own goroutine.
//   - Mailer: ties the above together for the API and the auth core.
package mail
