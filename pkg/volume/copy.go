package volume

import (
	"context"
	"fmt"
	"io"
	"os"
)

// FileCopier copies between block devices with plain reads and writes.
type FileCopier struct{}

const copyChunk = 4 << 20

// Copy copies size bytes from src to dst and syncs dst. It checks ctx between chunks.
func (FileCopier) Copy(ctx context.Context, src, dst string, size uint64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer out.Close()
	buf := make([]byte, copyChunk)
	var done uint64
	for done < size {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := uint64(len(buf))
		if size-done < n {
			n = size - done
		}
		if _, err := io.ReadFull(in, buf[:n]); err != nil {
			return fmt.Errorf("reading %s at %d: %w", src, done, err)
		}
		if _, err := out.Write(buf[:n]); err != nil {
			return fmt.Errorf("writing %s at %d: %w", dst, done, err)
		}
		done += n
	}
	return out.Sync()
}
