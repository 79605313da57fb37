// Package diskimage describes the firmware's disk image (the Rockchip boot chain area, the GPT, the RKNAS-BOOT and RKNAS-STATE partitions) and reads and writes its parts.
package diskimage
