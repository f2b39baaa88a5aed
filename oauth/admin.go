package oauth

import (
	"net/http"
	"time"

	"code.cloudfoundry.org/lager/v3"
)

// RegisterAdmin adds the token server's operator routes to mux, each
// wrapped by auth (the operator credentials check).
//
//	GET  /admin/signing-keys          the published keys
//	POST /admin/signing-keys/rotate   make a new current key
func (s *Server) RegisterAdmin(mux *http.ServeMux, auth func(http.Handler) http.Handler) {
	mux.Handle("GET /admin/signing-keys", auth(http.HandlerFunc(s.handleListKeys)))
	mux.Handle("POST /admin/signing-keys/rotate", auth(http.HandlerFunc(s.handleRotate)))
}

type keyInfo struct {
	KID       string     `json:"kid"`
	Current   bool       `json:"current"`
	CreatedAt time.Time  `json:"created_at"`
	RetiredAt *time.Time `json:"retired_at,omitempty"`
}

func (s *Server) keyInfos() []keyInfo {
	s.cfg.Keys.mu.RLock()
	defer s.cfg.Keys.mu.RUnlock()
	var out []keyInfo
	for _, k := range s.cfg.Keys.publishedLocked() {
		ki := keyInfo{KID: k.ID, Current: k.RetiredAt.IsZero(), CreatedAt: k.CreatedAt}
		if !k.RetiredAt.IsZero() {
			r := k.RetiredAt
			ki.RetiredAt = &r
		}
		out = append(out, ki)
	}
	return out
}

func (s *Server) handleListKeys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": s.keyInfos()})
}

// handleRotate makes a new signing key. The previous key stays in the JWKS
// until tokens it signed have expired, so validation never breaks.
func (s *Server) handleRotate(w http.ResponseWriter, r *http.Request) {
	if err := s.cfg.Keys.Rotate(r.Context()); err != nil {
		s.cfg.Logger.Error("rotate-signing-key", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error", "error_description": "rotation failed"})
		return
	}
	s.cfg.Logger.Info("rotated-signing-key", lager.Data{"kid": s.cfg.Keys.Current().ID})
	writeJSON(w, http.StatusOK, map[string]any{"keys": s.keyInfos()})
}
