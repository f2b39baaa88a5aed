package admin

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"

	"code.cloudfoundry.org/lager/v3"
)

// Backuper is a store that can write a consistent copy of itself while the
// broker runs (store/bolt.Store).
type Backuper interface {
	Backup(w io.Writer) error
}

// pgDumpAdvice is the answer for stores that cannot be copied by the
// broker: PostgreSQL has its own consistent online backup.
const pgDumpAdvice = "this broker keeps its state in PostgreSQL, which the broker does not copy itself: " +
	"back it up with the database's tools, e.g. pg_dump --format=custom --file=broker.dump \"$BROKER_DATABASE_URL\" " +
	"(a consistent snapshot, taken while the broker runs). The dump holds sealed records only: " +
	"keep BROKER_ENCRYPTION_KEY separately, without it the dump's credentials, signing keys and CA cannot be restored"

// backupWriteTimeout bounds the download of a copy; it replaces the
// server's write timeout, which is meant for API answers.
const backupWriteTimeout = time.Hour

// Backup serves GET /admin/backup: a consistent copy of the bbolt store
// file, taken while the broker keeps serving.
//
// The copy is first written to a temporary file, so the store's read
// transaction lasts as long as a local disk write rather than a slow
// download, and the answer carries a Content-Length by which the client
// can tell a complete copy from an interrupted one.
type Backup struct {
	// Store is the store to copy; nil (PostgreSQL) answers 501 with
	// pg_dump advice.
	Store Backuper
	// Dir holds the temporary copy. It holds sealed records only, but
	// should be as protected as the store itself: the data dir. Empty
	// means os.TempDir().
	Dir string
	// Logger records failures; nil discards them.
	Logger lager.Logger
	// Now is the clock for the file name; nil means time.Now.
	Now func() time.Time
}

// Register adds GET /admin/backup to mux, wrapped by auth.
func (b *Backup) Register(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /admin/backup", auth(b))
}

// ServeHTTP implements http.Handler.
func (b *Backup) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	api := &API{Logger: b.Logger}
	if b.Store == nil {
		api.respond(w, 0, nil, fail(http.StatusNotImplemented, "%s", pgDumpAdvice))
		return
	}
	tmp, err := os.CreateTemp(b.Dir, ".backup-*.db") // mode 0600
	if err != nil {
		api.respond(w, 0, nil, fmt.Errorf("backup: %w", err))
		return
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := b.Store.Backup(tmp); err != nil {
		api.respond(w, 0, nil, fmt.Errorf("backup: %w", err))
		return
	}
	size, err := tmp.Seek(0, io.SeekCurrent)
	if err == nil {
		_, err = tmp.Seek(0, io.SeekStart)
	}
	if err != nil {
		api.respond(w, 0, nil, fmt.Errorf("backup: %w", err))
		return
	}

	now := time.Now
	if b.Now != nil {
		now = b.Now
	}
	name := "broker-" + now().UTC().Format("20060102T150405Z") + ".db"
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	h.Set("Content-Disposition", `attachment; filename="`+name+`"`)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("Cache-Control", "no-store")
	// Not every ResponseWriter supports deadlines (tests); the server's
	// own write timeout then applies.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(backupWriteTimeout))
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, tmp); err != nil {
		// The status is sent; the client sees fewer bytes than the
		// Content-Length and must discard the copy.
		api.logger().Error("backup-send", err, lager.Data{"bytes": size})
	}
}
