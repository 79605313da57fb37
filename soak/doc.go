// Package soak is the firmware's fault and load campaign (make soak): it
// kills, floods, fills and garbles a real authd and prints one table of what
// it did and what it found.
package soak
