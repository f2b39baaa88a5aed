package oauth

import (
	"encoding/json"
	"net/http"
)

// Error is an OAuth 2.0 error response (RFC 6749 §5.2).
type Error struct {
	Status      int      `json:"-"`
	Code        string   `json:"error"`
	Description string   `json:"error_description,omitempty"`
	Scope       string   `json:"scope,omitempty"` // UAA lists the valid scopes on invalid_scope
	header      []string // extra header name/value pairs
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func errInvalidRequest(desc string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_request", Description: desc}
}

// errInvalidClient is the answer to any failed client authentication. The
// description never says which part was wrong.
// errRegistryUnavailable answers when the store could not be read: the
// client may well be right, so this is not a failed authentication.
func errRegistryUnavailable() *Error {
	return &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "client registry unavailable"}
}

func errInvalidClient() *Error {
	return &Error{Status: http.StatusUnauthorized, Code: "invalid_client", Description: "Bad credentials",
		header: []string{"WWW-Authenticate", `Basic realm="UAA/client", error="unauthorized", error_description="Bad credentials"`}}
}

func errUnsupportedGrant(g string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "unsupported_grant_type", Description: "Unsupported grant type: " + g}
}

func errUnauthorizedClient(g string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "unauthorized_client", Description: "Unauthorized grant type: " + g}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *Error) {
	for i := 0; i+1 < len(e.header); i += 2 {
		w.Header().Set(e.header[i], e.header[i+1])
	}
	writeJSON(w, e.Status, e)
}
