package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole store file to w while the
// broker keeps serving: bbolt's hot backup, one read transaction, so the
// copy is the state after some commit and never a mix of two. Writers are
// not blocked, but the read transaction lasts until w has taken
// everything; give it a fast writer (a local file), not a slow network
// client.
func (s *Store) Backup(w io.Writer) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		_, err := tx.WriteTo(w)
		return err
	})
}

// Check opens the store file at path read-only and verifies every page
// and bucket of it, e.g. a backup before it replaces an older one. It
// does not modify the file and fails if another process holds it open for
// writing.
func Check(path string) error {
	if err := checkSize(path); err != nil {
		return err
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 2 * time.Second})
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		// Buckets every broker version has; a newer one may add more.
		for _, b := range [][]byte{bInstances, bBindings, bMeta} {
			if tx.Bucket(b) == nil {
				errs = append(errs, fmt.Errorf("bucket %s missing: not a broker store", b))
			}
		}
		return errors.Join(errs...)
	})
}

// bbolt's meta page, as laid out in go.etcd.io/bbolt/internal/common: a
// 16-byte page header, then magic, version, page size, flags (4 bytes
// each), the root bucket (16), the freelist page id and the high water
// mark (8 each). bbolt writes it in the machine's byte order.
const (
	boltMagic        = 0xED0CDAED
	metaMagicOff     = 16
	metaPageSizeOff  = 24
	metaHighWaterOff = 56
	metaLen          = 64
)

// checkSize refuses a file shorter than its meta pages say. bbolt maps the
// file and reads its pages without checking them against the file size,
// so opening a truncated copy (an interrupted download) would crash the
// process with SIGBUS instead of returning an error.
func checkSize(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	var meta [metaLen]byte
	if _, err := f.ReadAt(meta[:], 0); err != nil {
		return fmt.Errorf("%s: not a bbolt file (%d bytes)", path, size)
	}
	ne := binary.NativeEndian
	if ne.Uint32(meta[metaMagicOff:]) != boltMagic {
		return fmt.Errorf("%s: not a bbolt file", path)
	}
	pageSize := int64(ne.Uint32(meta[metaPageSizeOff:]))
	if pageSize < 512 || pageSize > 1<<20 {
		return fmt.Errorf("%s: implausible page size %d", path, pageSize)
	}
	if size < 2*pageSize {
		return fmt.Errorf("%s: truncated: %d bytes, less than its two meta pages", path, size)
	}
	for _, off := range []int64{0, pageSize} {
		if _, err := f.ReadAt(meta[:], off); err != nil {
			return err
		}
		if ne.Uint32(meta[metaMagicOff:]) != boltMagic {
			continue // a torn meta page; bbolt falls back to the other
		}
		// The high water mark is the number of pages in use.
		if hw := ne.Uint64(meta[metaHighWaterOff:]); hw > uint64(size/pageSize) {
			return fmt.Errorf("%s: truncated: %d bytes, its pages need %d", path, size, hw*uint64(pageSize))
		}
	}
	return nil
}
