package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// The cf-style subcommands keep what Cloud Controller keeps in its database
// in a small local file: the names users type mapped to the guids the broker
// knows, and the credentials of bindings and service keys.

// Default org and space names of the local state.
const (
	ccDefaultOrg   = "local"
	ccDefaultSpace = "dev"
)

// ccState is the content of the state file.
type ccState struct {
	// UserGUID is the local user, sent as the originating identity.
	UserGUID  string        `json:"user_guid"`
	Orgs      []*ccOrg      `json:"orgs"`
	Apps      []*ccApp      `json:"apps"`
	Instances []*ccInstance `json:"instances"`
}

type ccOrg struct {
	Name   string     `json:"name"`
	GUID   string     `json:"guid"`
	Spaces []*ccSpace `json:"spaces"`
}

type ccSpace struct {
	Name string `json:"name"`
	GUID string `json:"guid"`
}

// ccApp is an application: a name and a guid in one space. Apps have no
// other life here; they appear with their first binding.
type ccApp struct {
	Name      string `json:"name"`
	GUID      string `json:"guid"`
	SpaceGUID string `json:"space_guid"`
}

// ccLastOperation is CC's last operation of an instance or binding.
type ccLastOperation struct {
	Type        string `json:"type"`  // create, update, delete
	State       string `json:"state"` // in progress, succeeded, failed
	Description string `json:"description,omitempty"`
}

// ccInstance is a managed service instance.
type ccInstance struct {
	Name        string `json:"name"`
	GUID        string `json:"guid"`
	ServiceID   string `json:"service_id"`
	ServiceName string `json:"service_name"`
	PlanID      string `json:"plan_id"`
	PlanName    string `json:"plan_name"`
	// OfferingTags are the catalog tags of the offering, Tags the ones
	// given with -t; VCAP_SERVICES lists both.
	OfferingTags    []string        `json:"offering_tags,omitempty"`
	Tags            []string        `json:"tags,omitempty"`
	Parameters      json.RawMessage `json:"parameters,omitempty"`
	MaintenanceInfo json.RawMessage `json:"maintenance_info,omitempty"`
	OrgGUID         string          `json:"org_guid"`
	SpaceGUID       string          `json:"space_guid"`
	DashboardURL    string          `json:"dashboard_url,omitempty"`
	LastOperation   ccLastOperation `json:"last_operation"`
	// Operation is the broker's operation id of a running async operation.
	Operation string       `json:"operation,omitempty"`
	Bindings  []*ccBinding `json:"bindings,omitempty"`
	Keys      []*ccBinding `json:"service_keys,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
}

// ccBinding is an app binding or (without AppGUID) a service key.
type ccBinding struct {
	GUID string `json:"guid"`
	// Name is the key name, or the --binding-name of an app binding.
	Name           string          `json:"name,omitempty"`
	AppGUID        string          `json:"app_guid,omitempty"`
	AppName        string          `json:"app_name,omitempty"`
	Credentials    json.RawMessage `json:"credentials,omitempty"`
	SyslogDrainURL *string         `json:"syslog_drain_url,omitempty"`
	VolumeMounts   json.RawMessage `json:"volume_mounts,omitempty"`
	LastOperation  ccLastOperation `json:"last_operation"`
	Operation      string          `json:"operation,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
}

// ccStatePath is -state, else $BROKER_CF_STATE, else
// ~/.config/btp-security-broker/cf-state.json.
func ccStatePath(flagValue string, getenv func(string) string) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if p := getenv("BROKER_CF_STATE"); p != "" {
		return p, nil
	}
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" {
		home := getenv("HOME")
		if home == "" {
			var err error
			if home, err = os.UserHomeDir(); err != nil {
				return "", errors.New("no home directory: set BROKER_CF_STATE or pass -state")
			}
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "btp-security-broker", "cf-state.json"), nil
}

// loadCCState reads the state file; a missing file is an empty state with
// a fresh user guid.
func loadCCState(path string) (*ccState, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &ccState{UserGUID: ccGUID()}, nil
	}
	if err != nil {
		return nil, err
	}
	st := &ccState{}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if st.UserGUID == "" {
		st.UserGUID = ccGUID()
	}
	return st, nil
}

// save writes the state atomically (temp file and rename), readable by the
// owner only: it holds credentials.
func (st *ccState) save(path string) error {
	var b bytes.Buffer
	if err := writeJSON(&b, st); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return writeFileAtomic(path, b.Bytes(), 0o600)
}

// space returns the org and space with these names, creating them (with
// new guids) when they do not exist yet.
func (st *ccState) space(orgName, spaceName string) (*ccOrg, *ccSpace) {
	var org *ccOrg
	for _, o := range st.Orgs {
		if o.Name == orgName {
			org = o
		}
	}
	if org == nil {
		org = &ccOrg{Name: orgName, GUID: ccGUID()}
		st.Orgs = append(st.Orgs, org)
	}
	for _, s := range org.Spaces {
		if s.Name == spaceName {
			return org, s
		}
	}
	s := &ccSpace{Name: spaceName, GUID: ccGUID()}
	org.Spaces = append(org.Spaces, s)
	return org, s
}

// spaceByGUID returns the org and space of a space guid.
func (st *ccState) spaceByGUID(guid string) (*ccOrg, *ccSpace, error) {
	for _, o := range st.Orgs {
		for _, s := range o.Spaces {
			if s.GUID == guid {
				return o, s, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("state file: no space with guid %s", guid)
}

// instance returns the instance of this name, or nil.
func (st *ccState) instance(name string) *ccInstance {
	for _, in := range st.Instances {
		if in.Name == name {
			return in
		}
	}
	return nil
}

// mustInstance is instance with CC's error for an unknown name.
func (st *ccState) mustInstance(name string) (*ccInstance, error) {
	if in := st.instance(name); in != nil {
		return in, nil
	}
	return nil, fmt.Errorf("service instance %s not found", name)
}

func (st *ccState) removeInstance(in *ccInstance) {
	st.Instances = removeItem(st.Instances, in)
}

// app returns the app of this name, or nil.
func (st *ccState) app(name string) *ccApp {
	for _, a := range st.Apps {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// appInSpace returns the app of this name, creating it in the space on
// first use. Apps are bound to instances of their own space only, as in
// CC (which needs instance sharing for anything else).
func (st *ccState) appInSpace(name, spaceGUID string) (*ccApp, error) {
	if a := st.app(name); a != nil {
		if a.SpaceGUID != spaceGUID {
			_, s, _ := st.spaceByGUID(a.SpaceGUID)
			where := a.SpaceGUID
			if s != nil {
				where = s.Name
			}
			return nil, fmt.Errorf("app %s lives in space %s; the service instance is in another space", name, where)
		}
		return a, nil
	}
	a := &ccApp{Name: name, GUID: ccGUID(), SpaceGUID: spaceGUID}
	st.Apps = append(st.Apps, a)
	return a, nil
}

// appBinding returns the binding of the app to the instance, or nil.
func (in *ccInstance) appBinding(appGUID string) *ccBinding {
	for _, b := range in.Bindings {
		if b.AppGUID == appGUID {
			return b
		}
	}
	return nil
}

// key returns the service key of this name, or nil.
func (in *ccInstance) key(name string) *ccBinding {
	for _, k := range in.Keys {
		if k.Name == name {
			return k
		}
	}
	return nil
}

func (in *ccInstance) removeBinding(b *ccBinding) {
	in.Bindings = removeItem(in.Bindings, b)
	in.Keys = removeItem(in.Keys, b)
}

func removeItem[T comparable](list []T, item T) []T {
	out := list[:0]
	for _, x := range list {
		if x != item {
			out = append(out, x)
		}
	}
	return out
}

// ccGUID returns a random v4 UUID, as CC uses for every guid.
func ccGUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
