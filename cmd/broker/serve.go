package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"code.cloudfoundry.org/lager/v3"

	btpsecuritybroker "github.com/ossbroker/btp-security-broker"
	"github.com/ossbroker/btp-security-broker/admin"
	"github.com/ossbroker/btp-security-broker/broker"
	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/oauth"
	"github.com/ossbroker/btp-security-broker/observe"
	"github.com/ossbroker/btp-security-broker/reseal"
	"github.com/ossbroker/btp-security-broker/store"
	"github.com/ossbroker/btp-security-broker/store/bolt"
	"github.com/ossbroker/btp-security-broker/store/postgres"
	"github.com/ossbroker/btp-security-broker/users"
)

const (
	storeFile       = "broker.db"
	keyFile         = "data.key"
	caFile          = "ca.pem"
	credentialsFile = "broker-credentials.json"
	metaCA          = "ca"
	// retiredKeyLifetime keeps a rotated signing key published for as long
	// as the longest token validity xs-security.json allows by default.
	retiredKeyLifetime = 24 * time.Hour
)

func serve(ctx context.Context, cfg *config, stdout io.Writer) error {
	logger := lager.NewLogger("broker")
	logger.RegisterSink(lager.NewWriterSink(stdout, lager.INFO))

	publicURL, err := baseURL("BROKER_PUBLIC_URL", cfg.PublicURL)
	if err != nil {
		return err
	}
	identityURL, err := baseURL("BROKER_IDENTITY_URL", cfg.IdentityURL)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return err
	}

	keyMaterial := cfg.EncryptionKey
	if keyMaterial == "" {
		if keyMaterial, err = credentials.LoadOrCreateKeyFile(filepath.Join(cfg.DataDir, keyFile)); err != nil {
			return err
		}
	}
	sealer, err := credentials.NewSealer(keyMaterial, cfg.PreviousEncryptionKeys...)
	if err != nil {
		return err
	}

	db, where, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	metrics := observe.NewMetrics()
	st := metrics.InstrumentStore(db)

	osbCreds, credsPath, err := osbCredentials(cfg)
	if err != nil {
		return err
	}
	zone, err := broker.EnsureZone(ctx, st, cfg.Zone)
	if err != nil {
		return err
	}
	ca, err := loadOrCreateCA(ctx, st, sealer, time.Now())
	if err != nil {
		return err
	}
	caPath := filepath.Join(cfg.DataDir, caFile)
	if err := writeFileAtomic(caPath, ca.RootPEM(), 0o644); err != nil {
		return err
	}
	keys, err := oauth.LoadKeys(ctx, st, sealer, retiredKeyLifetime, time.Now)
	if err != nil {
		return err
	}
	catalog, err := broker.ParseCatalog(btpsecuritybroker.CatalogYAML)
	if err != nil {
		return err
	}

	if cfg.UsersFile != "" {
		unknown, err := users.ApplySeedFile(ctx, st, cfg.UsersFile, time.Now())
		if err != nil {
			return fmt.Errorf("BROKER_USERS_FILE: %w", err)
		}
		if len(unknown) > 0 {
			// Kept by name: an instance created later may declare them.
			logger.Info("users-file-unknown-role-collections", lager.Data{"role_collections": unknown})
		}
	}
	proxies, err := oauth.ParseTrustedProxies(cfg.TrustedProxies)
	if err != nil {
		return fmt.Errorf("BROKER_TRUSTED_PROXIES: %w", err)
	}
	tokens := oauth.NewServer(oauth.Config{
		Store: st, Keys: keys, CA: ca, Sealer: sealer, Zone: oauth.Zone{Name: zone.Name, ID: zone.ID},
		XsuaaURL: publicURL, IdentityURL: identityURL, TrustedProxies: proxies, SharedStore: isShared(db),
		Logger: logger.Session("oauth"),
	})
	// A few keys of each size are kept ready; 2048 is by far the most
	// common. The pool is refilled in the background, one key at a time,
	// once the token server's table is built (see below).
	keyPool := credentials.NewKeyPool(map[int]int{2048: 32, 4096: 4, 8192: 1})
	for _, bits := range []int{2048, 4096, 8192} {
		bits := bits
		metrics.Gauge(fmt.Sprintf("broker_key_pool_depth_%d", bits), fmt.Sprintf("Pre-generated RSA-%d keys ready for X.509 binds.", bits),
			func() float64 { return float64(keyPool.Depth(bits)) })
	}
	b := broker.New(broker.Config{
		KeyPool: keyPool,
		Store:   st, Catalog: catalog, Sealer: sealer, CA: ca, Keys: keys, Zone: zone,
		XsuaaURL: publicURL, IdentityURL: identityURL, Logger: logger.Session("broker"),
		Changed: tokens.InstanceChanged,
	})

	mux := http.NewServeMux()
	mux.Handle("/v2/", broker.Handler(b, osbCreds, logger.Session("osb")))
	tokens.Register(mux)
	adminCreds := osbCreds
	if cfg.AdminUsername != "" {
		adminCreds = broker.Credentials{Username: cfg.AdminUsername, Password: cfg.AdminPassword}
	}
	adminAuth := func(h http.Handler) http.Handler { return broker.BasicAuth(adminCreds, h) }
	tokens.RegisterAdmin(mux, adminAuth)
	(&admin.API{Store: st, Changed: tokens.RoleCollectionsChanged, Logger: logger.Session("admin"), Now: time.Now}).Register(mux, adminAuth)
	backup := &admin.Backup{Dir: cfg.DataDir, Logger: logger.Session("backup")}
	if b, ok := db.(admin.Backuper); ok {
		backup.Store = b // bbolt; PostgreSQL answers with pg_dump advice
	}
	backup.Register(mux, adminAuth)
	health := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := st.Ping(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"store unavailable"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	}
	// healthz: the process and its store work. readyz: additionally the
	// token server can answer (signing key and client table loaded).
	mux.HandleFunc("GET /healthz", health)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := tokens.Warm(r.Context()); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"token server not ready"}` + "\n"))
			return
		}
		health(w, r)
	})
	mux.Handle("GET /metrics", metrics.Handler(cfg.MetricsUsername, cfg.MetricsPassword, func(u, p string, h http.Handler) http.Handler {
		return broker.BasicAuth(broker.Credentials{Username: u, Password: p}, h)
	}))

	srv := &http.Server{
		Addr:    cfg.Addr,
		Handler: metrics.Middleware(logger.Session("http"), mux),
		// Bounded reads and writes: a slow client (slowloris) cannot hold
		// a connection forever.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      90 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	scheme := "http"
	if cfg.TLS == "auto" {
		tlsCfg, err := serverTLS(cfg, ca, publicURL, identityURL)
		if err != nil {
			ln.Close()
			return err
		}
		srv.TLSConfig = tlsCfg
		ln = tls.NewListener(ln, tlsCfg)
		scheme = "https"
	}

	info := lager.Data{
		"listen":       scheme + "://" + ln.Addr().String(),
		"xsuaa_url":    publicURL.String(),
		"identity_url": identityURL.String(),
		"ca":           caPath,
		"zone":         zone.Name,
		"store":        where,
	}
	if credsPath != "" {
		info["osb_credentials_file"] = credsPath
	}
	logger.Info("started", info)

	// The token server reads every instance into memory (seconds with a
	// hundred thousand of them) while the OSB API and /healthz already
	// answer: the broker needs no table. A token request that arrives
	// meanwhile waits for the same build. Keys for the pool are generated
	// afterwards, so they do not compete with it for the CPU.
	startKeyPool := sync.OnceFunc(func() { go keyPool.Run(ctx) })
	warm := func() {
		began := time.Now()
		if err := tokens.Warm(ctx); err != nil {
			logger.Error("token-table", err) // the next token request retries
		} else {
			logger.Info("token-table-ready", lager.Data{"duration_ms": time.Since(began).Milliseconds()})
		}
		// Building the table leaves as much garbage as it keeps, and
		// bbolt's mmap keeps every page the scan touched mapped: give
		// both back now rather than carrying them as resident memory.
		debug.FreeOSMemory()
		if r, ok := db.(interface{ ReleaseMappedPages() (int64, error) }); ok {
			if _, err := r.ReleaseMappedPages(); err != nil {
				logger.Error("release-mapped-pages", err)
			}
		}
		startKeyPool()
	}
	watcher, shared := db.(store.Watcher)
	if !shared {
		go warm()
	}
	go purgeEphemeral(ctx, st, logger)
	reportExpiry(ctx, logger.Session("expiry"), metrics, time.Now, expiryCheckInterval, watchedCerts(ca, srv.TLSConfig, cfg.TLSCert != ""))
	if len(cfg.PreviousEncryptionKeys) > 0 {
		// Records sealed under a previous data key are re-sealed under
		// the current one, now and hourly (a replica still running with
		// the old key may seal more until it is restarted).
		rs := &reseal.Resealer{Store: st, Sealer: sealer, Logger: logger.Session("reseal")}
		metrics.Gauge("broker_reseal_pending_records", "Records still sealed under a previous data key (-1 until the first scan finished).",
			func() float64 { return float64(rs.Pending()) })
		metrics.Gauge("broker_reseal_unreadable_records", "Sealed records no configured data key opens.",
			func() float64 { return float64(rs.Unreadable()) })
		go rs.Loop(ctx, time.Hour)
	}
	if shared {
		// Replicas share the database: another replica's bind, unbind or
		// key rotation reaches this replica's caches within the
		// watcher's bound (LISTEN/NOTIFY, with a polling fallback).
		// The watcher says what changed, so that a bind on any replica
		// rereads one instance here, not all of them.
		// The first call once watching says Unknown: the table is built
		// then, so that one build covers every change committed before
		// (a build started earlier would be invalidated and built twice).
		go watcher.Watch(ctx, func(ch store.Change) {
			if ch.Unknown {
				tokens.Invalidate()
				warm()
			} else {
				for _, id := range ch.Instances {
					tokens.InstanceChanged(id)
				}
				if ch.RoleCollections {
					tokens.RoleCollectionsChanged()
				}
			}
			if ch.Meta || ch.Unknown {
				if err := keys.Reload(ctx); err != nil && ctx.Err() == nil {
					logger.Error("reload-signing-keys", err)
				}
			}
		})
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting-down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// osbCredentials returns the OSB basic-auth credentials: from the
// environment, or generated once into a 0600 file in the data dir (whose path,
// never the password, is printed).
func osbCredentials(cfg *config) (broker.Credentials, string, error) {
	if cfg.Username != "" {
		return broker.Credentials{Username: cfg.Username, Password: cfg.Password}, "", nil
	}
	path := filepath.Join(cfg.DataDir, credentialsFile)
	var c struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	raw, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(raw, &c); err != nil || c.Username == "" || c.Password == "" {
			return broker.Credentials{}, "", fmt.Errorf("%s: expected {\"username\":…,\"password\":…}", path)
		}
		return broker.Credentials{Username: c.Username, Password: c.Password}, path, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return broker.Credentials{}, "", err
	}
	pw, err := credentials.NewPassword()
	if err != nil {
		return broker.Credentials{}, "", err
	}
	c.Username, c.Password = "broker", pw
	raw, _ = json.MarshalIndent(c, "", "  ")
	if err := writeFileAtomic(path, append(raw, '\n'), 0o600); err != nil {
		return broker.Credentials{}, "", err
	}
	return broker.Credentials{Username: c.Username, Password: c.Password}, path, nil
}

// storedCA is the CA as kept in the store: certificates in clear, keys sealed.
type storedCA struct {
	Certs      []byte `json:"certs"`
	SealedKeys []byte `json:"sealed_keys"`
}

// loadOrCreateCA returns the broker's CA, creating it on first start and
// replacing it only once it is no longer valid for another 400 days (the
// longest client certificate a binding may ask for is one year).
func loadOrCreateCA(ctx context.Context, st store.Store, sealer *credentials.Sealer, now time.Time) (*credentials.CA, error) {
	var ca *credentials.CA
	err := st.Update(ctx, func(tx store.Tx) error {
		raw, err := tx.GetMeta(metaCA)
		if err == nil {
			var s storedCA
			if err := json.Unmarshal(raw, &s); err != nil {
				return err
			}
			keys, err := sealer.Open(s.SealedKeys, []byte(metaCA))
			if err != nil {
				return fmt.Errorf("CA keys: %w", err)
			}
			if ca, err = credentials.LoadCA(s.Certs, keys); err != nil {
				return err
			}
			if ca.ValidFor(now, caRenewMargin) {
				return nil
			}
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if ca, err = credentials.NewCA("Open Service Broker"); err != nil {
			return err
		}
		certs, keys, err := ca.MarshalPEM()
		if err != nil {
			return err
		}
		sealed, err := sealer.Seal(keys, []byte(metaCA))
		if err != nil {
			return err
		}
		raw, err = json.Marshal(storedCA{Certs: certs, SealedKeys: sealed})
		if err != nil {
			return err
		}
		return tx.PutMeta(metaCA, raw)
	})
	return ca, err
}

// serverTLS builds the listener's TLS config. It requests a client
// certificate but does not verify it in the handshake: secret clients send
// none, and X.509 clients are verified by the token endpoint against the
// broker's CA or a pinned fingerprint (self-signed X509_PROVIDED
// certificates would fail a handshake-level check).
func serverTLS(cfg *config, ca *credentials.CA, urls ...interface{ Hostname() string }) (*tls.Config, error) {
	var cert tls.Certificate
	var err error
	if cfg.TLSCert != "" {
		cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	} else {
		hosts := []string{"localhost", "127.0.0.1"}
		for _, u := range urls {
			hosts = append(hosts, u.Hostname(), broker.CertHost(u.Hostname()))
		}
		cert, err = ca.IssueServerCertificate(hosts, time.Now())
	}
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
	}, nil
}

// writeFileAtomic writes data to path through a temporary file and rename.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// purgeEphemeral deletes expired authorization codes and refresh tokens
// every few minutes. Expired records are already ignored when read; this
// only bounds the store's size.
func purgeEphemeral(ctx context.Context, st store.Store, logger lager.Logger) {
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var n int
		err := st.Update(ctx, func(tx store.Tx) (err error) {
			n, err = tx.PurgeEphemeral(time.Now())
			return err
		})
		if err != nil && ctx.Err() == nil {
			logger.Error("purge-ephemeral", err)
		} else if n > 0 {
			logger.Debug("purged-ephemeral", lager.Data{"records": n})
		}
	}
}

// openStore opens the PostgreSQL store when a database is configured, else
// bbolt in the data dir. where describes it for the start-up log (never
// the database password).
func openStore(ctx context.Context, cfg *config) (store.Store, string, error) {
	if cfg.DatabaseURL != "" {
		st, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, "", fmt.Errorf("database: %w", err)
		}
		return st, "postgresql " + redactURL(cfg.DatabaseURL), nil
	}
	st, err := bolt.Open(filepath.Join(cfg.DataDir, storeFile))
	if err != nil {
		return nil, "", err
	}
	return st, st.Path(), nil
}

// redactURL drops the password from a database URL.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		u.User = url.User(u.User.Username())
	}
	return u.Redacted()
}

// isShared reports whether st is shared between replicas.
func isShared(st store.Store) bool {
	_, ok := st.(store.Watcher)
	return ok
}
