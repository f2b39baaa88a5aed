package broker

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"code.cloudfoundry.org/lager/v3"
	"github.com/pivotal-cf/brokerapi/v10"
	"github.com/pivotal-cf/brokerapi/v10/domain"
)

// MaxBodyBytes bounds OSB request bodies. A maximal xs-security.json (500
// scopes, 500 role templates, 250 role collections) stays well below it.
const MaxBodyBytes = 4 << 20

// Credentials are the OSB basic-auth credentials the platform uses.
type Credentials struct {
	Username string
	Password string
}

// Handler returns the OSB API (/v2/...) for b. In front of brokerapi's own
// handlers it fixes the library's deviations from the spec that Cloud
// Controller notices (osb.md A.0):
//   - 401 bodies are JSON and echo X-Broker-API-Request-Identity;
//   - a missing or unsupported X-Broker-API-Version gets 412 with a
//     lower-case "description" (the library writes "Description");
//   - a body that is not a JSON object gets 400, not the library's 422,
//     which Cloud Controller would answer with orphan mitigation.
func Handler(b *Broker, creds Credentials, logger lager.Logger) http.Handler {
	api := brokerapi.NewWithOptions(b, logger)
	return echoRequestIdentity(BasicAuth(creds, allowSlowBinds(checkVersion(checkBody(api)))))
}

// SlowBindWriteTimeout is how long an authenticated bind may take to answer.
// An RSA-8192 key for an x509 binding, when the key pool has none ready,
// takes minutes to generate on a small machine: longer than the server's
// WriteTimeout, which would otherwise cut the connection before the
// credentials are written (the binding would exist, the platform would not
// know it).
const SlowBindWriteTimeout = 15 * time.Minute

func allowSlowBinds(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/service_bindings/") {
			// Not every ResponseWriter supports deadlines (httptest's
			// recorder); those have no timeout to lift.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(SlowBindWriteTimeout))
		}
		next.ServeHTTP(w, r)
	})
}

func writeOSBError(w http.ResponseWriter, status int, key, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]string{"description": desc}
	if key != "" {
		body["error"] = key
	}
	_ = json.NewEncoder(w).Encode(body)
}

func echoRequestIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get("X-Broker-API-Request-Identity"); id != "" {
			w.Header().Set("X-Broker-API-Request-Identity", id)
		}
		next.ServeHTTP(w, r)
	})
}

// BasicAuth requires HTTP Basic credentials equal to creds (compared in
// constant time); others get 401 with a JSON body.
func BasicAuth(creds Credentials, next http.Handler) http.Handler {
	user, pass := []byte(creds.Username), []byte(creds.Password)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		// Compare both always, so timing does not tell which was wrong.
		uOK := subtle.ConstantTimeCompare([]byte(u), user)
		pOK := subtle.ConstantTimeCompare([]byte(p), pass)
		if !ok || uOK&pOK != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="service broker"`)
			writeOSBError(w, http.StatusUnauthorized, "Unauthorized", "missing or wrong broker credentials")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// MinAPIMinor is the lowest 2.x minor version accepted. Cloud Controller
// sends 2.15; 2.14 is the first with GET binding/instance, which the
// catalog declares.
const MinAPIMinor = 14

func checkVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get("X-Broker-API-Version")
		major, minor, ok := strings.Cut(v, ".")
		m, err := strconv.Atoi(minor)
		if v == "" || !ok || major != "2" || err != nil || m < MinAPIMinor {
			writeOSBError(w, http.StatusPreconditionFailed, "PreconditionFailed",
				fmt.Sprintf("X-Broker-API-Version %q is not supported: this broker implements 2.%d to 2.17 (Cloud Foundry sends 2.15)", v, MinAPIMinor))
			return
		}
		next.ServeHTTP(w, r)
	})
}

func checkBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPut && r.Method != http.MethodPatch {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
		if err != nil {
			writeOSBError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("request body: %v", err))
			return
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(body, &obj); err != nil {
			writeOSBError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("request body is not a JSON object: %v", err))
			return
		}
		// A well-formed object with a field of the wrong type
		// ({"service_id": 5}) fails the library's own decoding, which
		// also answers 422: decode into the library's type first.
		if err := json.Unmarshal(body, detailsFor(r)); err != nil {
			writeOSBError(w, http.StatusBadRequest, "BadRequest", fmt.Sprintf("request body: %v", err))
			return
		}
		if p, ok := obj["parameters"]; ok {
			if t := bytes.TrimSpace(p); len(t) > 0 && t[0] != '{' && string(t) != "null" {
				writeOSBError(w, http.StatusBadRequest, "BadRequest", "parameters: must be a JSON object")
				return
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// detailsFor returns a pointer to the brokerapi type the handler of a PUT or
// PATCH request decodes its body into. It looks at the path the way the
// library's router does (the escaped path when there is one): an instance id
// may contain an escaped "/service_bindings/" and is still a provision.
func detailsFor(r *http.Request) any {
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	// /v2/service_instances/{instance_id}/service_bindings/{binding_id}
	seg := strings.Split(path, "/")
	switch {
	case r.Method == http.MethodPatch:
		return &domain.UpdateDetails{}
	case len(seg) == 6 && seg[4] == "service_bindings":
		return &domain.BindDetails{}
	default:
		return &domain.ProvisionDetails{}
	}
}
