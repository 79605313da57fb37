// Package flash writes a firmware image to a TF card, a USB disk or an eMMC: it refuses unsafe targets, writes with progress, verifies, and provisions the device's own default password and hostname.
package flash
