package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
)

// The environment Cloud Foundry gives an app (osb.md B.6), built from the
// local state. Go maps marshal with sorted keys; CC's order matters to
// people comparing with 'cf env', so the objects here are structs and
// ordered lists.

// vcapEntry is one element of VCAP_SERVICES, fields in the order CC's
// ServiceBindingPresenter builds them.
type vcapEntry struct {
	Name           string            `json:"name"`
	InstanceGUID   string            `json:"instance_guid"`
	InstanceName   string            `json:"instance_name"`
	BindingGUID    string            `json:"binding_guid"`
	BindingName    *string           `json:"binding_name"`
	Credentials    json.RawMessage   `json:"credentials"`
	SyslogDrainURL *string           `json:"syslog_drain_url"`
	VolumeMounts   []vcapVolumeMount `json:"volume_mounts"`
	Label          string            `json:"label"`
	Provider       *string           `json:"provider"`
	Plan           string            `json:"plan"`
	Tags           []string          `json:"tags"`
}

// vcapVolumeMount keeps the keys CC lets through to the app.
type vcapVolumeMount struct {
	ContainerDir string `json:"container_dir"`
	Mode         string `json:"mode"`
	DeviceType   string `json:"device_type"`
}

// vcapApplication is VCAP_APPLICATION without what only a running CF has
// (cf_api, limits, version).
type vcapApplication struct {
	ApplicationID    string   `json:"application_id"`
	ApplicationName  string   `json:"application_name"`
	ApplicationURIs  []string `json:"application_uris"`
	Name             string   `json:"name"`
	SpaceName        string   `json:"space_name"`
	SpaceID          string   `json:"space_id"`
	OrganizationID   string   `json:"organization_id"`
	OrganizationName string   `json:"organization_name"`
	URIs             []string `json:"uris"`
	Users            *string  `json:"users"`
}

// appEnv is what 'broker env' prints and default-env.json holds.
type appEnv struct {
	VCAPServices    orderedObject   `json:"VCAP_SERVICES"`
	VCAPApplication vcapApplication `json:"VCAP_APPLICATION"`
}

// orderedField is one member of an orderedObject.
type orderedField struct {
	Key   string
	Value json.RawMessage
}

// orderedObject is a JSON object that keeps its members' order.
type orderedObject []orderedField

// MarshalJSON writes the members in order.
func (o orderedObject) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := marshalNoEscape(f.Key)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		if f.Value == nil {
			b.WriteString("null")
		} else {
			b.Write(f.Value)
		}
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// set replaces the value of key, or appends the member.
func (o *orderedObject) set(key string, v any) error {
	raw, err := marshalNoEscape(v)
	if err != nil {
		return err
	}
	for i := range *o {
		if (*o)[i].Key == key {
			(*o)[i].Value = raw
			return nil
		}
	}
	*o = append(*o, orderedField{Key: key, Value: raw})
	return nil
}

// parseOrderedObject reads a JSON object keeping its members' order.
func parseOrderedObject(raw []byte) (orderedObject, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	var o orderedObject
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		o = append(o, orderedField{Key: key, Value: v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("data after the JSON object")
	}
	return o, nil
}

// marshalNoEscape is json.Marshal without escaping <, > and &: URLs in
// credentials stay readable.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// writeJSON writes v indented, without HTML escaping.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// buildAppEnv builds the environment of the app from the state: only app
// bindings (never service keys), only the newest successful binding per
// instance, grouped by offering name in the order of the bindings'
// creation.
func buildAppEnv(st *ccState, app *ccApp) (appEnv, error) {
	type pick struct {
		in *ccInstance
		b  *ccBinding
	}
	var picks []pick
	for _, in := range st.Instances {
		var newest *ccBinding
		for _, b := range in.Bindings {
			if b.AppGUID != app.GUID || !b.usable() {
				continue
			}
			if newest == nil || !b.CreatedAt.Before(newest.CreatedAt) {
				newest = b
			}
		}
		if newest != nil {
			picks = append(picks, pick{in, newest})
		}
	}
	sort.SliceStable(picks, func(i, j int) bool { return picks[i].b.CreatedAt.Before(picks[j].b.CreatedAt) })

	var labels []string
	groups := map[string][]vcapEntry{}
	for _, p := range picks {
		e, err := vcapEntryOf(p.in, p.b)
		if err != nil {
			return appEnv{}, err
		}
		if _, seen := groups[e.Label]; !seen {
			labels = append(labels, e.Label)
		}
		groups[e.Label] = append(groups[e.Label], e)
	}
	env := appEnv{VCAPServices: orderedObject{}}
	for _, l := range labels {
		if err := env.VCAPServices.set(l, groups[l]); err != nil {
			return appEnv{}, err
		}
	}
	org, space, err := st.spaceByGUID(app.SpaceGUID)
	if err != nil {
		return appEnv{}, err
	}
	env.VCAPApplication = vcapApplication{
		ApplicationID: app.GUID, ApplicationName: app.Name, ApplicationURIs: []string{}, Name: app.Name,
		SpaceName: space.Name, SpaceID: space.GUID, OrganizationID: org.GUID, OrganizationName: org.Name,
		URIs: []string{},
	}
	return env, nil
}

// usable reports whether the binding exists for CC: created, and not gone.
func (b *ccBinding) usable() bool {
	return !(b.LastOperation.Type == "create" && b.LastOperation.State != "succeeded")
}

// vcapEntryOf is CC's ServiceBindingPresenter for one app binding.
func vcapEntryOf(in *ccInstance, b *ccBinding) (vcapEntry, error) {
	e := vcapEntry{
		Name:           in.Name,
		InstanceGUID:   in.GUID,
		InstanceName:   in.Name,
		BindingGUID:    b.GUID,
		Credentials:    b.Credentials,
		SyslogDrainURL: b.SyslogDrainURL,
		VolumeMounts:   []vcapVolumeMount{},
		Label:          in.ServiceName,
		Plan:           in.PlanName,
		Tags:           mergeTags(in.OfferingTags, in.Tags),
	}
	if b.Name != "" {
		name := b.Name
		e.Name, e.BindingName = name, &name
	}
	if len(e.Credentials) == 0 {
		e.Credentials = json.RawMessage("{}")
	}
	if len(b.VolumeMounts) > 0 && string(b.VolumeMounts) != "null" {
		if err := json.Unmarshal(b.VolumeMounts, &e.VolumeMounts); err != nil {
			return vcapEntry{}, fmt.Errorf("volume_mounts of binding %s: %w", b.GUID, err)
		}
	}
	return e, nil
}

// mergeTags is CC's offering tags + instance tags without duplicates.
func mergeTags(offering, user []string) []string {
	out := []string{}
	for _, t := range append(slices.Clone(offering), user...) {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// splitTags splits -t "a, b,c" as the cf CLI does.
func splitTags(s string) []string {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// mergeDefaultEnv puts env into the content of an existing default-env.json,
// keeping its other members (approuter reads "destinations" from it, for
// instance). An empty existing file yields env alone.
func mergeDefaultEnv(existing []byte, env appEnv) ([]byte, error) {
	var doc orderedObject
	if len(bytes.TrimSpace(existing)) > 0 {
		var err error
		if doc, err = parseOrderedObject(existing); err != nil {
			return nil, fmt.Errorf("existing file is not a JSON object: %w", err)
		}
	}
	if err := doc.set("VCAP_SERVICES", env.VCAPServices); err != nil {
		return nil, err
	}
	if err := doc.set("VCAP_APPLICATION", env.VCAPApplication); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := writeJSON(&b, doc); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
