package oauth

import (
	"encoding/json"
	"net/http"
)

// handleTokenKeys is GET /token_keys[?zid=]: the JWKS. An unknown zid gets
// 400, which xssec turns into WrongAudienceError (its "online validation").
func (s *Server) handleTokenKeys(w http.ResponseWriter, r *http.Request) {
	if !s.knownZid(r) {
		writeError(w, errInvalidRequest("unknown zid"))
		return
	}
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_, _ = w.Write(s.cfg.Keys.JWKS())
}

// handleTokenKey is the legacy GET /token_key: the current key alone.
func (s *Server) handleTokenKey(w http.ResponseWriter, r *http.Request) {
	if !s.knownZid(r) {
		writeError(w, errInvalidRequest("unknown zid"))
		return
	}
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	_ = json.Unmarshal(s.cfg.Keys.JWKS(), &doc)
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	_, _ = w.Write(doc.Keys[0])
}

func (s *Server) knownZid(r *http.Request) bool {
	zid := r.URL.Query().Get("zid")
	if zid == "" {
		zid = r.Header.Get("X-Zid") // the Java library sends the header
	}
	return zid == "" || zid == s.cfg.Zone.ID
}
