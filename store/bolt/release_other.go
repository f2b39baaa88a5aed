//go:build !linux

package bolt

// ReleaseMappedPages is a no-op outside Linux (see release_linux.go).
func (s *Store) ReleaseMappedPages() (int64, error) { return 0, nil }
