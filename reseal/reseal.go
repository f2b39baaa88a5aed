// Package reseal re-seals the broker's sealed records under the current data
// key after the key was rotated: the broker starts with the new key in
// BROKER_ENCRYPTION_KEY and the old one in BROKER_PREVIOUS_ENCRYPTION_KEYS,
// keeps serving (credentials.Sealer opens both), and a Resealer rewrites
// every record still sealed under an old key in the background.
//
// A pass first walks the store in short read transactions and notes the
// records sealed under a previous key, then re-seals them in batches of
// small write transactions. Each write transaction reads its records again
// and re-seals only what still needs it, so a pass is idempotent, may run
// beside OSB traffic and beside the same pass on other replicas of a shared
// store, and a record unbound or re-sealed in the meantime is simply
// skipped.
package reseal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"code.cloudfoundry.org/lager/v3"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/store"
)

// DefaultBatchSize is how many records one write transaction re-seals when
// Resealer.BatchSize is zero: small enough that OSB calls waiting for the
// store's writer lock hardly notice.
const DefaultBatchSize = 100

// The sealed records and the associated data each is sealed with. They
// follow broker/bind.go (binding credentials, legacy instance secret),
// oauth/keys.go (signing keys) and cmd/broker/serve.go (CA keys); the
// rotation test in cmd/broker fails if one of them drifts, because a pass
// then reports the record as unreadable.
const (
	// MetaSigningKeys is the meta record of the token signing keys: a JSON
	// array of objects with "kid" and "sealed_pkcs1".
	MetaSigningKeys = "signing_keys"
	// MetaCA is the meta record of the CA: a JSON object whose
	// "sealed_keys" is sealed with the associated data "ca".
	MetaCA = "ca"
)

func bindingAAD(id string) []byte        { return []byte("binding:" + id) }
func instanceSecretAAD(id string) []byte { return []byte("instance-secret:" + id) }
func signingKeyAAD(kid string) []byte    { return []byte("signing-key:" + kid) }
func caAAD() []byte                      { return []byte(MetaCA) }

// Kinds of sealed record, as they appear in Ref.Kind and in the log.
const (
	KindBinding        = "binding"
	KindInstanceSecret = "instance-secret"
	KindSigningKeys    = "signing-keys"
	KindCA             = "ca"
)

// Ref names one sealed record: a binding or an instance (by id), or one of
// the meta records (empty id).
type Ref struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// Result describes one pass.
type Result struct {
	// Scanned is the number of sealed values looked at (each signing key
	// counts once).
	Scanned int
	// Resealed is the number of records this pass re-sealed.
	Resealed int
	// Unreadable lists the records that no key of the Sealer opens: sealed
	// under a key this broker does not have, or damaged. They are left as
	// they are.
	Unreadable []Ref
}

// Resealer re-seals records sealed under a previous data key. The zero
// value is not usable: set Store and Sealer. Safe for concurrent use.
type Resealer struct {
	Store  store.Store
	Sealer *credentials.Sealer
	// Logger records progress; nil discards it.
	Logger lager.Logger
	// BatchSize is the number of records per write transaction; zero
	// means DefaultBatchSize.
	BatchSize int

	started    atomic.Bool
	pending    atomic.Int64
	unreadable atomic.Int64
	// batchDone, when set (tests), runs after each committed batch.
	batchDone func()
}

// Pending returns how many records the last scan found sealed under a
// previous key that have not been re-sealed since, or -1 before the first
// scan has finished. Zero after a pass means the previous keys can go.
func (r *Resealer) Pending() int64 {
	if !r.started.Load() {
		return -1
	}
	return r.pending.Load()
}

// Unreadable returns how many records the last pass could not open.
func (r *Resealer) Unreadable() int64 { return r.unreadable.Load() }

func (r *Resealer) logger() lager.Logger {
	if r.Logger == nil {
		return lager.NewLogger("reseal")
	}
	return r.Logger
}

func (r *Resealer) batchSize() int {
	if r.BatchSize <= 0 {
		return DefaultBatchSize
	}
	return r.BatchSize
}

// Loop runs a pass at once and then every interval until ctx ends. Later
// passes catch records that a replica still running with the old key
// sealed after the first pass. It logs the first pass's outcome and any
// pass that re-sealed something or met unreadable records.
func (r *Resealer) Loop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for first := true; ; first = false {
		res, err := r.Run(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			r.logger().Error("reseal-failed", err, lager.Data{"resealed": res.Resealed, "pending": r.Pending()})
		case err == nil && (first || res.Resealed > 0 || len(res.Unreadable) > 0):
			r.logger().Info("reseal-finished", resultData(res, r.Pending()))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func resultData(res Result, pending int64) lager.Data {
	d := lager.Data{"scanned": res.Scanned, "resealed": res.Resealed, "pending": pending, "unreadable": len(res.Unreadable)}
	if n := len(res.Unreadable); n > 0 {
		// A few names help find the cause; the full list could be long.
		d["unreadable_records"] = res.Unreadable[:min(n, 10)]
	}
	return d
}

// Run makes one pass: it finds the records sealed under a previous key and
// re-seals them under the current one. It returns early (with what was
// done so far) when ctx ends or the store fails.
func (r *Resealer) Run(ctx context.Context) (Result, error) {
	stale, res, err := r.scan(ctx)
	if err != nil {
		return res, err
	}
	r.pending.Store(int64(len(stale)))
	r.unreadable.Store(int64(len(res.Unreadable)))
	r.started.Store(true)
	if len(stale) == 0 {
		return res, nil
	}
	log := r.logger()
	log.Info("reseal-started", lager.Data{"pending": len(stale), "key_id": r.Sealer.KeyID()})
	for batch := range slices.Chunk(stale, r.batchSize()) {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var resealed int
		var failed []Ref
		err := r.Store.Update(ctx, func(tx store.Tx) error {
			// A store may run fn more than once (PostgreSQL retries
			// serialization failures): start from zero every time.
			resealed, failed = 0, nil
			for _, ref := range batch {
				done, err := r.reseal(tx, ref)
				var open *openError
				switch {
				case errors.As(err, &open):
					failed = append(failed, ref)
				case err != nil:
					return fmt.Errorf("%s %s: %w", ref.Kind, ref.ID, err)
				case done:
					resealed++
				}
			}
			return nil
		})
		if err != nil {
			return res, err
		}
		res.Resealed += resealed
		res.Unreadable = append(res.Unreadable, failed...)
		// A record of the batch that was not re-sealed is no longer
		// stale either (unbound meanwhile, or re-sealed by another
		// replica), unless it failed to open.
		r.pending.Add(-int64(len(batch) - len(failed)))
		r.unreadable.Add(int64(len(failed)))
		log.Info("reseal-progress", lager.Data{"resealed": res.Resealed, "pending": r.pending.Load()})
		if r.batchDone != nil {
			r.batchDone()
		}
	}
	return res, nil
}

// openError marks a sealed value that could not be opened while
// re-sealing; the record is skipped, not the batch.
type openError struct{ err error }

func (e *openError) Error() string { return e.err.Error() }
func (e *openError) Unwrap() error { return e.err }

// scan walks every sealed record in short read transactions and returns
// those sealed under a previous key.
func (r *Resealer) scan(ctx context.Context) ([]Ref, Result, error) {
	var res Result
	var stale []Ref
	// classify records one sealed value in res and says whether it is stale.
	classify := func(ref Ref, sealed, aad []byte) bool {
		res.Scanned++
		if r.Sealer.NeedsReseal(sealed) {
			return true
		}
		if _, err := r.Sealer.Open(sealed, aad); err != nil {
			res.Unreadable = append(res.Unreadable, ref)
		}
		return false
	}

	var instanceIDs []string
	err := r.Store.View(ctx, func(tx store.Tx) error {
		instances, err := tx.ListInstances()
		if err != nil {
			return err
		}
		for _, in := range instances {
			instanceIDs = append(instanceIDs, in.ID)
			if in.InstanceSecret == nil {
				continue
			}
			ref := Ref{KindInstanceSecret, in.ID}
			if classify(ref, in.InstanceSecret.Sealed, instanceSecretAAD(in.ID)) {
				stale = append(stale, ref)
			}
		}
		return nil
	})
	if err != nil {
		return nil, res, err
	}
	for batch := range slices.Chunk(instanceIDs, r.batchSize()) {
		if err := ctx.Err(); err != nil {
			return nil, res, err
		}
		err := r.Store.View(ctx, func(tx store.Tx) error {
			for _, id := range batch {
				bindings, err := tx.ListBindings(id)
				if err != nil {
					return err
				}
				for _, b := range bindings {
					ref := Ref{KindBinding, b.ID}
					if classify(ref, b.SealedCredentials, bindingAAD(b.ID)) {
						stale = append(stale, ref)
					}
				}
			}
			return nil
		})
		if err != nil {
			return nil, res, err
		}
	}
	err = r.Store.View(ctx, func(tx store.Tx) error {
		keys, err := readSigningKeys(tx)
		if err != nil {
			return err
		}
		isStale := false
		for _, k := range keys {
			if classify(Ref{KindSigningKeys, k.kid}, k.sealed, signingKeyAAD(k.kid)) {
				isStale = true
			}
		}
		if isStale {
			stale = append(stale, Ref{Kind: KindSigningKeys})
		}
		ca, err := readCA(tx)
		if err != nil || ca == nil {
			return err
		}
		if classify(Ref{Kind: KindCA}, ca.sealed, caAAD()) {
			stale = append(stale, Ref{Kind: KindCA})
		}
		return nil
	})
	if err != nil {
		return nil, res, err
	}
	return stale, res, nil
}

// reseal re-seals one record inside tx if it still needs it, and says
// whether it did.
func (r *Resealer) reseal(tx store.Tx, ref Ref) (bool, error) {
	switch ref.Kind {
	case KindBinding:
		b, err := tx.GetBinding(ref.ID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil // unbound meanwhile
		}
		if err != nil || !r.Sealer.NeedsReseal(b.SealedCredentials) {
			return false, err
		}
		if b.SealedCredentials, err = r.reseal1(b.SealedCredentials, bindingAAD(b.ID)); err != nil {
			return false, err
		}
		// store.Tx has no update of a binding; delete and create in one
		// transaction is one, and keeps the indexes (fingerprint,
		// instance) consistent.
		if _, err := tx.DeleteBinding(b.ID); err != nil {
			return false, err
		}
		return true, tx.CreateBinding(b)

	case KindInstanceSecret:
		in, err := tx.GetInstance(ref.ID)
		if errors.Is(err, store.ErrNotFound) {
			return false, nil // deprovisioned meanwhile
		}
		if err != nil || in.InstanceSecret == nil || !r.Sealer.NeedsReseal(in.InstanceSecret.Sealed) {
			return false, err
		}
		if in.InstanceSecret.Sealed, err = r.reseal1(in.InstanceSecret.Sealed, instanceSecretAAD(in.ID)); err != nil {
			return false, err
		}
		return true, tx.PutInstance(in)

	case KindSigningKeys:
		keys, err := readSigningKeys(tx)
		if err != nil {
			return false, err
		}
		changed := false
		for i := range keys {
			if !r.Sealer.NeedsReseal(keys[i].sealed) {
				continue
			}
			if keys[i].sealed, err = r.reseal1(keys[i].sealed, signingKeyAAD(keys[i].kid)); err != nil {
				return false, err
			}
			changed = true
		}
		if !changed {
			return false, nil
		}
		return true, writeSigningKeys(tx, keys)

	case KindCA:
		ca, err := readCA(tx)
		if err != nil || ca == nil || !r.Sealer.NeedsReseal(ca.sealed) {
			return false, err
		}
		if ca.sealed, err = r.reseal1(ca.sealed, caAAD()); err != nil {
			return false, err
		}
		return true, writeCA(tx, ca)
	}
	return false, fmt.Errorf("reseal: unknown record kind %q", ref.Kind)
}

// reseal1 opens sealed with aad and seals it again under the current key.
func (r *Resealer) reseal1(sealed, aad []byte) ([]byte, error) {
	pt, err := r.Sealer.Open(sealed, aad)
	if err != nil {
		return nil, &openError{err}
	}
	return r.Sealer.Seal(pt, aad)
}

// signingKey is one element of the signing_keys meta record. The record is
// decoded field by field and only "sealed_pkcs1" is replaced, so fields
// this package does not know survive a re-seal.
type signingKey struct {
	fields map[string]json.RawMessage
	kid    string
	sealed []byte
}

func readSigningKeys(tx store.Tx) ([]signingKey, error) {
	raw, err := tx.GetMeta(MetaSigningKeys)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return nil, fmt.Errorf("meta %s: %w", MetaSigningKeys, err)
	}
	keys := make([]signingKey, len(list))
	for i, f := range list {
		keys[i].fields = f
		if err := json.Unmarshal(f["kid"], &keys[i].kid); err != nil {
			return nil, fmt.Errorf("meta %s: key %d: kid: %w", MetaSigningKeys, i, err)
		}
		if err := json.Unmarshal(f["sealed_pkcs1"], &keys[i].sealed); err != nil {
			return nil, fmt.Errorf("meta %s: key %s: %w", MetaSigningKeys, keys[i].kid, err)
		}
	}
	return keys, nil
}

func writeSigningKeys(tx store.Tx, keys []signingKey) error {
	list := make([]map[string]json.RawMessage, len(keys))
	for i, k := range keys {
		sealed, err := json.Marshal(k.sealed)
		if err != nil {
			return err
		}
		k.fields["sealed_pkcs1"] = sealed
		list[i] = k.fields
	}
	raw, err := json.Marshal(list)
	if err != nil {
		return err
	}
	return tx.PutMeta(MetaSigningKeys, raw)
}

// storedCA is the ca meta record, decoded like signingKey.
type storedCA struct {
	fields map[string]json.RawMessage
	sealed []byte
}

// readCA returns nil (and no error) when there is no CA yet.
func readCA(tx store.Tx) (*storedCA, error) {
	raw, err := tx.GetMeta(MetaCA)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ca := &storedCA{}
	if err := json.Unmarshal(raw, &ca.fields); err != nil {
		return nil, fmt.Errorf("meta %s: %w", MetaCA, err)
	}
	if err := json.Unmarshal(ca.fields["sealed_keys"], &ca.sealed); err != nil {
		return nil, fmt.Errorf("meta %s: sealed_keys: %w", MetaCA, err)
	}
	return ca, nil
}

func writeCA(tx store.Tx, ca *storedCA) error {
	sealed, err := json.Marshal(ca.sealed)
	if err != nil {
		return err
	}
	ca.fields["sealed_keys"] = sealed
	raw, err := json.Marshal(ca.fields)
	if err != nil {
		return err
	}
	return tx.PutMeta(MetaCA, raw)
}
