package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/ossbroker/btp-security-broker/credentials"
)

// config is the broker's configuration from the environment (CF style) and
// flags; a flag given on the command line wins over its variable.
type config struct {
	DataDir       string
	Addr          string
	PublicURL     string
	IdentityURL   string
	EncryptionKey string
	// PreviousEncryptionKeys are older data keys (BROKER_PREVIOUS_ENCRYPTION_KEYS,
	// comma-separated): records sealed under them stay readable and are
	// re-sealed under EncryptionKey in the background.
	PreviousEncryptionKeys []string
	Username               string
	Password               string
	// AdminUsername/AdminPassword protect /admin/…; default: the OSB
	// credentials.
	AdminUsername string
	AdminPassword string
	// MetricsUsername/MetricsPassword protect /metrics (open by default:
	// it carries counts, never secrets).
	MetricsUsername string
	MetricsPassword string
	TLS             string // auto | off
	TLSCert         string
	TLSKey          string
	Zone            string
	// DatabaseURL selects the PostgreSQL store (BROKER_DATABASE_URL, or a
	// bound PostgreSQL service in VCAP_SERVICES); empty means bbolt.
	DatabaseURL string
	// UsersFile is the BROKER_USERS_FILE seed file.
	UsersFile string
	// TrustedProxies may set X-Forwarded-Client-Cert (gorouter).
	TrustedProxies string
	OnCF           bool
}

func loadConfig(args []string, getenv func(string) string) (*config, error) {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	c := &config{}
	fs := flag.NewFlagSet("broker serve", flag.ContinueOnError)
	fs.StringVar(&c.DataDir, "data-dir", env("BROKER_DATA_DIR", "./data"), "data directory (BROKER_DATA_DIR)")
	fs.StringVar(&c.Addr, "addr", env("BROKER_ADDR", ""), "listen address (BROKER_ADDR; default 127.0.0.1:8443, or :$PORT on Cloud Foundry)")
	fs.StringVar(&c.PublicURL, "public-url", env("BROKER_PUBLIC_URL", ""), "public base URL of the xsuaa endpoints (BROKER_PUBLIC_URL)")
	fs.StringVar(&c.IdentityURL, "identity-url", env("BROKER_IDENTITY_URL", ""), "public base URL of the identity endpoints (BROKER_IDENTITY_URL)")
	fs.StringVar(&c.TLS, "tls", env("BROKER_TLS", ""), "auto (serve HTTPS with a certificate from the broker's CA) or off (BROKER_TLS)")
	fs.StringVar(&c.TLSCert, "tls-cert", env("BROKER_TLS_CERT", ""), "PEM server certificate chain instead of the generated one (BROKER_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", env("BROKER_TLS_KEY", ""), "PEM server key (BROKER_TLS_KEY)")
	fs.StringVar(&c.Zone, "zone", env("BROKER_ZONE", "default"), "identity zone name / subdomain (BROKER_ZONE)")
	fs.StringVar(&c.TrustedProxies, "trusted-proxies", env("BROKER_TRUSTED_PROXIES", ""), "comma-separated IPs or CIDRs whose X-Forwarded-Client-Cert header is trusted (BROKER_TRUSTED_PROXIES)")
	fs.StringVar(&c.UsersFile, "users-file", env("BROKER_USERS_FILE", ""), "YAML seed file of users, applied at every start (BROKER_USERS_FILE)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.EncryptionKey = getenv("BROKER_ENCRYPTION_KEY")
	prev, err := previousKeys(getenv("BROKER_PREVIOUS_ENCRYPTION_KEYS"), c.EncryptionKey)
	if err != nil {
		return nil, err
	}
	c.PreviousEncryptionKeys = prev
	c.DatabaseURL = getenv("BROKER_DATABASE_URL")
	if c.DatabaseURL == "" {
		url, err := postgresFromVCAP(getenv("VCAP_SERVICES"))
		if err != nil {
			return nil, err
		}
		c.DatabaseURL = url
	}
	c.Username = getenv("BROKER_USERNAME")
	c.AdminUsername = getenv("BROKER_ADMIN_USERNAME")
	c.AdminPassword = getenv("BROKER_ADMIN_PASSWORD")
	c.MetricsUsername = getenv("BROKER_METRICS_USERNAME")
	c.MetricsPassword = getenv("BROKER_METRICS_PASSWORD")
	if (c.MetricsUsername == "") != (c.MetricsPassword == "") {
		return nil, errors.New("BROKER_METRICS_USERNAME and BROKER_METRICS_PASSWORD go together")
	}
	if (c.AdminUsername == "") != (c.AdminPassword == "") {
		return nil, errors.New("BROKER_ADMIN_USERNAME and BROKER_ADMIN_PASSWORD go together")
	}
	c.Password = getenv("BROKER_PASSWORD")

	var routes []string
	if vcap := getenv("VCAP_APPLICATION"); vcap != "" {
		c.OnCF = true
		var app struct {
			URIs []string `json:"application_uris"`
		}
		if err := json.Unmarshal([]byte(vcap), &app); err != nil {
			return nil, fmt.Errorf("VCAP_APPLICATION: %w", err)
		}
		routes = app.URIs
	}
	if c.DatabaseURL != "" && c.EncryptionKey == "" {
		return nil, errors.New("BROKER_ENCRYPTION_KEY is required with a database: every replica must unseal what another sealed, so the data key cannot be a file one replica generates")
	}
	if c.OnCF {
		if c.EncryptionKey == "" {
			return nil, errors.New("BROKER_ENCRYPTION_KEY is required on Cloud Foundry: the container disk does not survive a restage, so a generated key file would be lost with everything it seals")
		}
		if c.TLS == "" {
			c.TLS = "off" // gorouter terminates TLS
		}
		if c.Addr == "" && getenv("PORT") != "" {
			c.Addr = ":" + getenv("PORT")
		}
		if c.PublicURL == "" && len(routes) > 0 {
			c.PublicURL = "https://" + routes[0]
		}
		if c.IdentityURL == "" && len(routes) > 1 {
			c.IdentityURL = "https://" + routes[1]
		}
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8443"
	}
	if c.TLS == "" {
		c.TLS = "auto"
	}
	if c.TLS != "auto" && c.TLS != "off" {
		return nil, fmt.Errorf("BROKER_TLS must be auto or off, not %q", c.TLS)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("BROKER_TLS_CERT and BROKER_TLS_KEY go together")
	}
	if c.PublicURL == "" {
		c.PublicURL = "https://localhost:" + portOf(c.Addr)
	}
	if c.IdentityURL == "" {
		c.IdentityURL = "https://127.0.0.1:" + portOf(c.Addr)
	}
	if (c.Username == "") != (c.Password == "") {
		return nil, errors.New("BROKER_USERNAME and BROKER_PASSWORD go together")
	}
	if c.EncryptionKey != "" && len(c.EncryptionKey) < 32 {
		return nil, errors.New("BROKER_ENCRYPTION_KEY must be at least 32 characters")
	}
	return c, nil
}

// previousKeys splits BROKER_PREVIOUS_ENCRYPTION_KEYS. Errors name a key
// by its position, never by its value.
func previousKeys(raw, current string) ([]string, error) {
	var keys []string
	for i, k := range strings.Split(raw, ",") {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
			continue
		case len(k) < credentials.MinSecretLen:
			return nil, fmt.Errorf("BROKER_PREVIOUS_ENCRYPTION_KEYS: key %d has %d characters, need at least %d", i+1, len(k), credentials.MinSecretLen)
		case k == current:
			return nil, fmt.Errorf("BROKER_PREVIOUS_ENCRYPTION_KEYS: key %d is BROKER_ENCRYPTION_KEY itself; list only the keys it replaced", i+1)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func portOf(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || i == len(addr)-1 {
		return "8443"
	}
	return addr[i+1:]
}

// baseURL parses a public base URL: https (or http for TLS-terminating
// setups), a host, no path.
func baseURL(name, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimSuffix(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("%s must look like https://host[:port] without a path, not %q", name, raw)
	}
	u.Path = ""
	return u, nil
}

// postgresFromVCAP finds a PostgreSQL service bound to the app on Cloud
// Foundry: one tagged "postgres"/"postgresql" or whose credentials carry a
// postgres:// uri. More than one is an error (which would we pick?).
func postgresFromVCAP(vcap string) (string, error) {
	if vcap == "" {
		return "", nil
	}
	var services map[string][]struct {
		Name        string         `json:"name"`
		Label       string         `json:"label"`
		Tags        []string       `json:"tags"`
		Credentials map[string]any `json:"credentials"`
	}
	if err := json.Unmarshal([]byte(vcap), &services); err != nil {
		return "", fmt.Errorf("VCAP_SERVICES: %w", err)
	}
	var found []string
	for _, list := range services {
		for _, s := range list {
			uri, _ := s.Credentials["uri"].(string)
			if uri == "" {
				uri, _ = s.Credentials["url"].(string)
			}
			isPG := strings.HasPrefix(uri, "postgres://") || strings.HasPrefix(uri, "postgresql://")
			for _, t := range s.Tags {
				if strings.EqualFold(t, "postgres") || strings.EqualFold(t, "postgresql") {
					isPG = isPG || uri != ""
				}
			}
			if isPG && uri != "" {
				found = append(found, uri)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", nil
	case 1:
		return found[0], nil
	default:
		return "", errors.New("VCAP_SERVICES: more than one PostgreSQL service is bound; set BROKER_DATABASE_URL to choose")
	}
}
