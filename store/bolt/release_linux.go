package bolt

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ReleaseMappedPages drops this process's mappings of the store file's
// pages (madvise MADV_DONTNEED on bbolt's read-only shared mmap). bbolt
// reads records through that mmap, so one scan of a large zone (the token
// server's start-up read of every instance) leaves hundreds of MiB of the
// file mapped — more than was read, since the kernel maps cached
// neighbouring pages on each fault — and counted as the broker's resident
// memory for as long as it runs. The pages are clean: the next access
// simply maps them again from the page cache (or the disk), so this changes
// no data and costs only those later faults. It returns how many bytes of
// mappings it released.
func (s *Store) ReleaseMappedPages() (int64, error) {
	path, err := filepath.Abs(s.db.Path())
	if err != nil {
		return 0, err
	}
	if p, err := filepath.EvalSymlinks(path); err == nil {
		path = p
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var released int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || strings.Join(fields[5:], " ") != path || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, uintptr(start), uintptr(end-start), syscall.MADV_DONTNEED); errno != 0 {
			return released, fmt.Errorf("madvise %s: %w", path, errno)
		}
		released += int64(end - start)
	}
	return released, sc.Err()
}
