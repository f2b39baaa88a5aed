package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// bookshop is a typical xs-security.json: scopes, an attribute, a role
// template with a default role, authorities and oauth2-configuration.
func bookshop(xsappname string) map[string]any {
	return map[string]any{
		"xsappname":   xsappname,
		"tenant-mode": "dedicated",
		"description": "bookshop security",
		"scopes": []any{
			map[string]any{"name": "$XSAPPNAME.Display", "description": "display"},
			map[string]any{"name": "$XSAPPNAME.Edit", "description": "edit"},
		},
		"attributes": []any{
			map[string]any{"name": "Country", "description": "country", "valueType": "string", "valueRequired": false},
		},
		"role-templates": []any{
			map[string]any{"name": "Viewer", "scope-references": []any{"$XSAPPNAME.Display"}, "attribute-references": []any{"Country"}},
		},
		"authorities": []any{"$XSAPPNAME.Display"},
		"oauth2-configuration": map[string]any{
			"token-validity": 3600,
			"redirect-uris":  []any{"https://*.example.com/**"},
		},
	}
}

// instanceParams returns the parameters of GET instance.
func instanceParams(t *testing.T, tb *testBroker, in instance) map[string]any {
	t.Helper()
	status, body := tb.getInstance(in)
	expectStatus(t, "GET instance", status, body, http.StatusOK)
	var resp struct {
		ServiceID  string         `json:"service_id"`
		PlanID     string         `json:"plan_id"`
		Parameters map[string]any `json:"parameters"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		t.Fatalf("GET instance: %v: %s", err, body)
	}
	if resp.ServiceID != in.ServiceID || resp.PlanID != in.PlanID {
		t.Fatalf("GET instance: service/plan %s/%s, want %s/%s", resp.ServiceID, resp.PlanID, in.ServiceID, in.PlanID)
	}
	return resp.Parameters
}

// jsonEqual compares two values after a JSON round trip, so that numbers
// and nested maps compare by value.
func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	norm := func(v any) any {
		raw, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var out any
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatal(err)
		}
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func TestOSBHeaders(t *testing.T) {
	tb := startBroker(t, nil)

	t.Run("missing version", func(t *testing.T) {
		r := tb.do(http.MethodGet, "/v2/catalog", nil, "X-Broker-API-Version", "", "X-Broker-API-Request-Identity", "req-412")
		expectError(t, "no version", r.Status, r.Body, http.StatusPreconditionFailed, "X-Broker-API-Version")
		if strings.Contains(string(r.Body), `"Description"`) {
			t.Errorf("412 body uses the library's capitalised Description: %s", r.Body)
		}
		if got := r.Header.Get("X-Broker-API-Request-Identity"); got != "req-412" {
			t.Errorf("request identity on 412: %q", got)
		}
	})

	t.Run("unsupported versions", func(t *testing.T) {
		for _, v := range []string{"1.0", "3.0", "abc", "2.13", "2", "2.x"} {
			status, body := tb.osb(http.MethodGet, "/v2/catalog", nil, "X-Broker-API-Version", v)
			expectError(t, "version "+v, status, body, http.StatusPreconditionFailed, "2.15")
		}
		// Every route, not only the catalog.
		in := newInstance(xsuaaServiceID, xsuaaApplicationID, "unused")
		status, body := tb.osb(http.MethodPut, in.path(), in.provisionBody(nil), "X-Broker-API-Version", "1.0")
		expectError(t, "provision with 1.0", status, body, http.StatusPreconditionFailed)
		if s, b := tb.getInstance(in); s != http.StatusNotFound {
			t.Fatalf("refused provision created the instance: %d %s", s, b)
		}
	})

	t.Run("supported versions", func(t *testing.T) {
		for _, v := range []string{"2.14", "2.15", "2.16", "2.17"} {
			status, body := tb.osb(http.MethodGet, "/v2/catalog", nil, "X-Broker-API-Version", v)
			expectStatus(t, "version "+v, status, body, http.StatusOK)
		}
	})

	t.Run("basic auth", func(t *testing.T) {
		cases := map[string]string{
			"missing":        "",
			"wrong password": basicAuth(testUsername, "nope"),
			"wrong user":     basicAuth("nope", testPassword),
			"not basic":      "Bearer " + testPassword,
		}
		for name, auth := range cases {
			r := tb.do(http.MethodGet, "/v2/catalog", nil, "Authorization", auth, "X-Broker-API-Request-Identity", "req-401")
			expectError(t, name, r.Status, r.Body, http.StatusUnauthorized)
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s: 401 Content-Type %q", name, ct)
			}
			if got := r.Header.Get("X-Broker-API-Request-Identity"); got != "req-401" {
				t.Errorf("%s: request identity on 401: %q", name, got)
			}
		}
		// Authentication comes before the version check.
		status, body := tb.osb(http.MethodGet, "/v2/catalog", nil, "Authorization", "", "X-Broker-API-Version", "")
		expectStatus(t, "no auth, no version", status, body, http.StatusUnauthorized)
	})

	t.Run("originating identity optional", func(t *testing.T) {
		for name, v := range map[string]string{"absent": "", "garbage": "cloudfoundry !!!", "other platform": "kubernetes e30="} {
			in := newInstance(xsuaaServiceID, xsuaaApplicationID, "oi-"+strings.ReplaceAll(name, " ", "-"))
			status, body := tb.osb(http.MethodPut, in.path(), in.provisionBody(nil), "X-Broker-API-Originating-Identity", v)
			expectStatus(t, "provision, originating identity "+name, status, body, http.StatusCreated)
		}
	})

	t.Run("request identity echoed", func(t *testing.T) {
		r := tb.do(http.MethodGet, "/v2/catalog", nil, "X-Broker-API-Request-Identity", "req-200")
		expectStatus(t, "catalog", r.Status, r.Body, http.StatusOK)
		if got := r.Header.Get("X-Broker-API-Request-Identity"); got != "req-200" {
			t.Errorf("request identity on 200: %q", got)
		}
		r = tb.do(http.MethodGet, "/v2/catalog", nil, "X-Broker-API-Request-Identity", "")
		if got, ok := r.Header["X-Broker-Api-Request-Identity"]; ok {
			t.Errorf("request identity %q answered to a request without one", got)
		}
	})
}

func basicAuth(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth(user, pass)
	return req.Header.Get("Authorization")
}

func TestOSBCatalog(t *testing.T) {
	tb := startBroker(t, nil)
	status, body := tb.osb(http.MethodGet, "/v2/catalog", nil)
	expectStatus(t, "catalog", status, body, http.StatusOK)

	var cat struct {
		Services []struct {
			ID                   string           `json:"id"`
			Name                 string           `json:"name"`
			Description          string           `json:"description"`
			Bindable             bool             `json:"bindable"`
			Tags                 []string         `json:"tags"`
			InstancesRetrievable bool             `json:"instances_retrievable"`
			BindingsRetrievable  bool             `json:"bindings_retrievable"`
			Plans                []map[string]any `json:"plans"`
		} `json:"services"`
	}
	if err := json.Unmarshal(body, &cat); err != nil {
		t.Fatalf("catalog: %v", err)
	}
	want := map[string]struct {
		id    string
		tags  []string
		plans map[string]string
	}{
		"xsuaa": {xsuaaServiceID, []string{"xsuaa"}, map[string]string{
			"application": xsuaaApplicationID, "broker": xsuaaBrokerPlanID, "apiaccess": xsuaaAPIAccessID,
		}},
		"identity": {identityServiceID, []string{"ias"}, map[string]string{"application": identityApplication}},
	}
	if len(cat.Services) != len(want) {
		t.Fatalf("catalog has %d services, want %d", len(cat.Services), len(want))
	}
	for _, s := range cat.Services {
		w, ok := want[s.Name]
		if !ok {
			t.Errorf("unexpected offering %q", s.Name)
			continue
		}
		if s.ID != w.id {
			t.Errorf("%s: id %q, want %q (ids must be stable)", s.Name, s.ID, w.id)
		}
		if !reflect.DeepEqual(s.Tags, w.tags) {
			t.Errorf("%s: tags %v, want %v", s.Name, s.Tags, w.tags)
		}
		if s.Description == "" || !s.Bindable || !s.InstancesRetrievable || !s.BindingsRetrievable {
			t.Errorf("%s: description/bindable/instances_retrievable/bindings_retrievable: %q %v %v %v",
				s.Name, s.Description, s.Bindable, s.InstancesRetrievable, s.BindingsRetrievable)
		}
		got := map[string]string{}
		for _, p := range s.Plans {
			name, _ := p["name"].(string)
			id, _ := p["id"].(string)
			got[name] = id
			if d, _ := p["description"].(string); d == "" {
				t.Errorf("%s/%s: no description", s.Name, name)
			}
			checkPlanSchemas(t, s.Name+"/"+name, p)
			if mi, ok := p["maintenance_info"]; ok {
				m, _ := mi.(map[string]any)
				for k := range m {
					if k != "version" && k != "description" {
						t.Errorf("%s/%s: maintenance_info has key %q, which CC rejects", s.Name, name, k)
					}
				}
			}
		}
		if !reflect.DeepEqual(got, w.plans) {
			t.Errorf("%s: plans %v, want %v", s.Name, got, w.plans)
		}
	}

	// A second fetch is byte-for-byte the same.
	_, again := tb.osb(http.MethodGet, "/v2/catalog", nil)
	if string(again) != string(body) {
		t.Errorf("catalog changed between two fetches")
	}
}

// checkPlanSchemas requires all three schemas, each an object with $schema.
func checkPlanSchemas(t *testing.T, what string, plan map[string]any) {
	t.Helper()
	paths := [][]string{
		{"schemas", "service_instance", "create", "parameters"},
		{"schemas", "service_instance", "update", "parameters"},
		{"schemas", "service_binding", "create", "parameters"},
	}
	for _, path := range paths {
		var v any = plan
		for _, k := range path {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		m, ok := v.(map[string]any)
		if !ok {
			t.Errorf("%s: %s is %v, want a schema object", what, strings.Join(path, "."), v)
			continue
		}
		if s, _ := m["$schema"].(string); s == "" {
			t.Errorf("%s: %s has no $schema", what, strings.Join(path, "."))
		}
	}
}

func TestOSBProvision(t *testing.T) {
	tb := startBroker(t, nil)

	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "prov-main")
	params := bookshop("prov-main")

	t.Run("create and identical again", func(t *testing.T) {
		tb.mustProvision(t, in, params)
		status, body := tb.provision(in, params)
		expectStatus(t, "identical provision", status, body, http.StatusOK)
		expectEmptyObject(t, "identical provision", body)
		if got := instanceParams(t, tb, in); !jsonEqual(t, got, params) {
			t.Errorf("GET instance parameters %v, want %v", got, params)
		}
	})

	t.Run("conflicts", func(t *testing.T) {
		other := bookshop("prov-main")
		other["description"] = "changed"
		status, body := tb.provision(in, other)
		expectStatus(t, "different parameters", status, body, http.StatusConflict)

		plan := in
		plan.PlanID = xsuaaBrokerPlanID
		status, body = tb.provision(plan, params)
		expectStatus(t, "different plan", status, body, http.StatusConflict)

		space := in
		space.SpaceGUID = "space-guid-2"
		status, body = tb.provision(space, params)
		expectStatus(t, "different space", status, body, http.StatusConflict)

		status, body = tb.provision(in, nil)
		expectStatus(t, "parameters left out", status, body, http.StatusConflict)

		if got := instanceParams(t, tb, in); !jsonEqual(t, got, params) {
			t.Errorf("a 409 changed the instance: %v", got)
		}
	})

	t.Run("missing org or space", func(t *testing.T) {
		fresh := newInstance(xsuaaServiceID, xsuaaApplicationID, "prov-noorg")
		for _, key := range []string{"organization_guid", "space_guid"} {
			for _, val := range []any{nil, ""} {
				body := fresh.provisionBody(bookshop("prov-noorg"))
				if val == nil {
					delete(body, key)
				} else {
					body[key] = val
				}
				status, resp := tb.osb(http.MethodPut, fresh.path(), body)
				expectError(t, key, status, resp, http.StatusBadRequest, key)
			}
		}
		if s, b := tb.getInstance(fresh); s != http.StatusNotFound {
			t.Fatalf("a 400 created the instance: %d %s", s, b)
		}
	})

	t.Run("unknown or mismatched ids", func(t *testing.T) {
		cases := map[string][2]string{
			"unknown service_id":       {"5f0c0a53-0000-4000-8000-000000000000", xsuaaApplicationID},
			"unknown plan_id":          {xsuaaServiceID, "5f0c0a53-0000-4000-8000-000000000001"},
			"plan of the other offer":  {xsuaaServiceID, identityApplication},
			"xsuaa plan for identity":  {identityServiceID, xsuaaApplicationID},
			"missing service_id":       {"", xsuaaApplicationID},
			"missing plan_id":          {xsuaaServiceID, ""},
			"both ids of the wrong id": {identityServiceID, xsuaaBrokerPlanID},
		}
		for name, ids := range cases {
			fresh := newInstance(ids[0], ids[1], "prov-ids")
			status, body := tb.provision(fresh, nil)
			expectError(t, name, status, body, http.StatusBadRequest)
		}
	})

	t.Run("malformed body", func(t *testing.T) {
		fresh := newInstance(xsuaaServiceID, xsuaaApplicationID, "prov-malformed")
		for name, raw := range map[string]string{
			"truncated":   `{"service_id": "` + xsuaaServiceID + `", "plan_id": `,
			"not json":    `service_id=1`,
			"array":       `[1,2]`,
			"wrong types": `{"service_id": 5, "plan_id": "x"}`,
		} {
			status, body := tb.osb(http.MethodPut, fresh.path(), raw)
			expectError(t, name, status, body, http.StatusBadRequest)
		}
		for name, p := range map[string]any{"string": "xsappname", "array": []any{1}, "number": 7, "bool": true} {
			status, body := tb.provision(fresh, p)
			expectError(t, "parameters "+name, status, body, http.StatusBadRequest, "parameters")
		}
	})

	t.Run("invalid xs-security.json", func(t *testing.T) {
		fresh := newInstance(xsuaaServiceID, xsuaaApplicationID, "prov-invalid")
		cases := []struct {
			name   string
			modify func(map[string]any)
			key    string
		}{
			{"xsappname with !", func(d map[string]any) { d["xsappname"] = "book!shop" }, "xsappname"},
			{"xsappname too long", func(d map[string]any) { d["xsappname"] = strings.Repeat("a", 129) }, "xsappname"},
			{"scope starting with .", func(d map[string]any) {
				d["scopes"] = []any{map[string]any{"name": ".Display"}}
				d["role-templates"] = []any{}
				d["authorities"] = []any{}
			}, "scopes[0].name"},
			{"attribute with -", func(d map[string]any) {
				d["attributes"] = []any{map[string]any{"name": "cost-center", "valueType": "string"}}
				d["role-templates"] = []any{}
			}, "attributes[0].name"},
			{"token-validity 10", func(d map[string]any) {
				d["oauth2-configuration"] = map[string]any{"token-validity": 10}
			}, "oauth2-configuration.token-validity"},
			{"role template name too long", func(d map[string]any) {
				d["role-templates"] = []any{map[string]any{"name": strings.Repeat("r", 65)}}
			}, "role-templates[0].name"},
			{"undeclared scope reference", func(d map[string]any) {
				d["role-templates"] = []any{map[string]any{"name": "V", "scope-references": []any{"$XSAPPNAME.Nope"}}}
			}, "role-templates[0].scope-references[0]"},
			{"more than 500 scopes", func(d map[string]any) {
				var ss []any
				for i := range 501 {
					ss = append(ss, map[string]any{"name": fmt.Sprintf("$XSAPPNAME.s%d", i)})
				}
				d["scopes"] = ss
			}, "scopes"},
		}
		for _, c := range cases {
			d := bookshop("prov-invalid")
			c.modify(d)
			status, body := tb.provision(fresh, d)
			expectError(t, c.name, status, body, http.StatusBadRequest, c.key)
		}
		if s, b := tb.getInstance(fresh); s != http.StatusNotFound {
			t.Fatalf("a 400 created the instance: %d %s", s, b)
		}
	})

	t.Run("without accepts_incomplete", func(t *testing.T) {
		// The broker is synchronous: 201 with or without the flag.
		fresh := newInstance(xsuaaServiceID, xsuaaApplicationID, "prov-sync")
		status, body := tb.osb(http.MethodPut, fresh.path()+"?accepts_incomplete=false", fresh.provisionBody(bookshop("prov-sync")))
		expectStatus(t, "accepts_incomplete=false", status, body, http.StatusCreated)
	})

	t.Run("without parameters", func(t *testing.T) {
		fresh := newInstance(xsuaaServiceID, xsuaaApplicationID, "My Default App")
		tb.mustProvision(t, fresh, nil)
		if got := instanceParams(t, tb, fresh); len(got) != 0 {
			t.Errorf("GET instance parameters %v, want {}", got)
		}
		creds := tb.mustBind(t, fresh, newUUID(), "", nil)
		xsappname, _ := creds["xsappname"].(string)
		if !strings.HasPrefix(xsappname, "My-Default-App!t") {
			t.Errorf("default xsappname %q, want it derived from the instance name", xsappname)
		}
		// {} counts as no parameters (CC leaves them out, but other
		// platforms send {}).
		status, body := tb.provision(fresh, map[string]any{})
		expectStatus(t, "identical provision with {}", status, body, http.StatusOK)
	})

	t.Run("opaque ids", func(t *testing.T) {
		// Ids are opaque strings, percent-encoded in the URL (osb.md H11).
		odd := newInstance(xsuaaServiceID, xsuaaApplicationID, "prov-odd")
		odd.ID = "odd id+ä:1"
		tb.mustProvision(t, odd, nil)
		status, body := tb.getInstance(odd)
		expectStatus(t, "GET odd instance", status, body, http.StatusOK)
		bid := "odd binding ü"
		creds := tb.mustBind(t, odd, bid, "", nil)
		if creds["serviceInstanceId"] != odd.ID {
			t.Errorf("serviceInstanceId %q, want %q", creds["serviceInstanceId"], odd.ID)
		}
		status, body = tb.getBinding(odd, bid)
		expectStatus(t, "GET odd binding", status, body, http.StatusOK)
		status, body = tb.unbind(odd, bid)
		expectStatus(t, "unbind odd binding", status, body, http.StatusOK)
		status, body = tb.deprovision(odd)
		expectStatus(t, "deprovision odd instance", status, body, http.StatusOK)
	})

	t.Run("maintenance_info", func(t *testing.T) {
		fresh := newInstance(xsuaaServiceID, xsuaaApplicationID, "prov-mi")
		body := fresh.provisionBody(bookshop("prov-mi"))
		body["maintenance_info"] = map[string]any{"version": "1.0.0", "description": "x"}
		status, resp := tb.osb(http.MethodPut, fresh.path(), body)
		expectStatus(t, "maintenance_info for a plan without one", status, resp, http.StatusUnprocessableEntity)
		if m := decodeObject(t, resp); m["error"] != "MaintenanceInfoConflict" {
			t.Errorf("error %v, want MaintenanceInfoConflict", m["error"])
		}
	})

	t.Run("identity parameters", func(t *testing.T) {
		idn := newInstance(identityServiceID, identityApplication, "prov-identity")
		cases := map[string]struct {
			params map[string]any
			key    string
		}{
			"display-name too long": {map[string]any{"display-name": strings.Repeat("d", 100)}, "display-name"},
			"http redirect uri": {map[string]any{"oauth2-configuration": map[string]any{
				"redirect-uris": []any{"http://example.com"}}}, "oauth2-configuration.redirect-uris[0]"},
			"token-validity": {map[string]any{"oauth2-configuration": map[string]any{
				"token-policy": map[string]any{"token-validity": 5}}}, "token-validity"},
			"missing consumed service": {map[string]any{"consumed-services": []any{
				map[string]any{"service-instance-name": "does-not-exist"}}}, "consumed-services[0]"},
		}
		for name, c := range cases {
			status, body := tb.provision(idn, c.params)
			expectError(t, name, status, body, http.StatusBadRequest, c.key)
		}
		tb.mustProvision(t, idn, map[string]any{
			"display-name": strings.Repeat("d", 99),
			"oauth2-configuration": map[string]any{
				"redirect-uris": []any{"https://bookshop.example.com/login/callback", "http://localhost:5000/**"},
			},
		})
	})
}

func TestOSBUpdate(t *testing.T) {
	tb := startBroker(t, nil)
	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "upd-main")
	params := bookshop("upd-main")
	tb.mustProvision(t, in, params)

	t.Run("empty parameters change nothing", func(t *testing.T) {
		status, body := tb.update(in, nil)
		expectStatus(t, "update {}", status, body, http.StatusOK)
		expectEmptyObject(t, "update {}", body)
		if got := instanceParams(t, tb, in); !jsonEqual(t, got, params) {
			t.Errorf("parameters after update {}: %v", got)
		}
	})

	t.Run("added scope", func(t *testing.T) {
		next := bookshop("upd-main")
		next["scopes"] = append(next["scopes"].([]any), map[string]any{"name": "$XSAPPNAME.Delete"})
		status, body := tb.update(in, next)
		expectStatus(t, "update with added scope", status, body, http.StatusOK)
		expectEmptyObject(t, "update", body)
		got := instanceParams(t, tb, in)
		if !jsonEqual(t, got, next) {
			t.Errorf("parameters after update: %v", got)
		}
		params = next
	})

	t.Run("incompatible changes", func(t *testing.T) {
		renamed := bookshop("upd-other")
		status, body := tb.update(in, renamed)
		expectError(t, "changed xsappname", status, body, http.StatusBadRequest, "xsappname")

		retyped := bookshop("upd-main")
		retyped["attributes"] = []any{map[string]any{"name": "Country", "valueType": "int", "valueRequired": false}}
		status, body = tb.update(in, retyped)
		expectError(t, "changed valueType", status, body, http.StatusBadRequest, "attributes[0].valueType")

		invalid := bookshop("upd-main")
		invalid["oauth2-configuration"] = map[string]any{"token-validity": 10}
		status, body = tb.update(in, invalid)
		expectError(t, "invalid descriptor", status, body, http.StatusBadRequest, "oauth2-configuration.token-validity")

		replan := in
		replan.PlanID = xsuaaBrokerPlanID
		status, body = tb.update(replan, nil)
		expectError(t, "plan change", status, body, http.StatusBadRequest, "plan_id")

		status, body = tb.update(in, "not an object")
		expectError(t, "parameters not an object", status, body, http.StatusBadRequest, "parameters")

		if got := instanceParams(t, tb, in); !jsonEqual(t, got, params) {
			t.Errorf("a refused update changed the instance: %v", got)
		}
	})

	t.Run("unknown instance", func(t *testing.T) {
		ghost := newInstance(xsuaaServiceID, xsuaaApplicationID, "upd-ghost")
		for range 2 {
			status, body := tb.update(ghost, bookshop("upd-ghost"))
			expectError(t, "update of unknown instance", status, body, http.StatusNotFound)
		}
		if s, b := tb.getInstance(ghost); s != http.StatusNotFound {
			t.Fatalf("update created the instance: %d %s", s, b)
		}
	})

	t.Run("rename", func(t *testing.T) {
		renamed := in
		renamed.Name = "upd-renamed"
		status, body := tb.update(renamed, nil)
		expectStatus(t, "rename", status, body, http.StatusOK)
		if got := instanceParams(t, tb, in); !jsonEqual(t, got, params) {
			t.Errorf("rename changed the parameters: %v", got)
		}
		// $XSSERVICENAME now finds the instance under its new name only.
		ref := func(name string) map[string]any {
			d := bookshop("upd-ref")
			d["foreign-scope-references"] = []any{"$XSSERVICENAME(" + name + ").Display"}
			return d
		}
		user := newInstance(xsuaaServiceID, xsuaaApplicationID, "upd-user")
		status, body = tb.provision(user, ref("upd-main"))
		expectError(t, "reference to the old name", status, body, http.StatusBadRequest, "foreign-scope-references[0]")
		tb.mustProvision(t, user, ref("upd-renamed"))
	})

	t.Run("malformed body", func(t *testing.T) {
		for name, raw := range map[string]string{
			"truncated":   `{"service_id": "` + in.ServiceID + `", "parameters": {`,
			"wrong types": `{"service_id": "` + in.ServiceID + `", "plan_id": 7}`,
			"array":       `[]`,
		} {
			status, body := tb.osb(http.MethodPatch, in.path(), raw)
			expectError(t, name, status, body, http.StatusBadRequest)
		}
	})

	t.Run("descriptor without xsappname after rename", func(t *testing.T) {
		// Provisioned without parameters, the xsappname comes from the
		// instance name. After a rename, a descriptor that still leaves
		// xsappname out must keep the original one, not derive a new one
		// from the new name (which CheckUpdate would refuse).
		nameless := newInstance(xsuaaServiceID, xsuaaApplicationID, "upd-nameless")
		tb.mustProvision(t, nameless, nil)
		renamed := nameless
		renamed.Name = "upd-nameless-renamed"
		status, body := tb.update(renamed, nil)
		expectStatus(t, "rename", status, body, http.StatusOK)
		desc := map[string]any{"scopes": []any{map[string]any{"name": "$XSAPPNAME.Read"}}}
		status, body = tb.update(renamed, desc)
		expectStatus(t, "update without xsappname", status, body, http.StatusOK)
		creds := tb.mustBind(t, renamed, newUUID(), "", nil)
		if x, _ := creds["xsappname"].(string); !strings.HasPrefix(x, "upd-nameless!t") {
			t.Errorf("xsappname %q, want the one derived from the original name", x)
		}
	})

	t.Run("rename when a referenced instance is gone", func(t *testing.T) {
		// A context-only update (rename) must succeed (osb.md U10), also
		// when an instance this one references was deleted meanwhile.
		target := newInstance(xsuaaServiceID, xsuaaApplicationID, "upd-target")
		tb.mustProvision(t, target, bookshop("upd-target"))
		dep := newInstance(xsuaaServiceID, xsuaaApplicationID, "upd-dependent")
		d := bookshop("upd-dependent")
		d["foreign-scope-references"] = []any{"$XSSERVICENAME(upd-target).Display", "$XSAPPNAME(application,upd-target).Edit"}
		tb.mustProvision(t, dep, d)
		status, body := tb.deprovision(target)
		expectStatus(t, "deprovision target", status, body, http.StatusOK)
		renamed := dep
		renamed.Name = "upd-dependent-renamed"
		status, body = tb.update(renamed, nil)
		expectStatus(t, "rename of the dependent", status, body, http.StatusOK)
	})

	t.Run("identity", func(t *testing.T) {
		idn := newInstance(identityServiceID, identityApplication, "upd-identity")
		p := map[string]any{"display-name": "Bookshop"}
		tb.mustProvision(t, idn, p)
		status, body := tb.update(idn, nil)
		expectStatus(t, "identity update {}", status, body, http.StatusOK)
		p2 := map[string]any{"display-name": "Bookshop 2", "oauth2-configuration": map[string]any{
			"redirect-uris": []any{"https://bookshop.example.com/cb"}}}
		status, body = tb.update(idn, p2)
		expectStatus(t, "identity update", status, body, http.StatusOK)
		status, body = tb.update(idn, map[string]any{"display-name": strings.Repeat("x", 100)})
		expectError(t, "identity invalid update", status, body, http.StatusBadRequest, "display-name")
		if got := instanceParams(t, tb, idn); !jsonEqual(t, got, p2) {
			t.Errorf("identity parameters %v, want %v", got, p2)
		}
	})
}

func TestOSBCrossInstance(t *testing.T) {
	tb := startBroker(t, nil)
	other := newInstance(xsuaaServiceID, xsuaaApplicationID, "xi-other")
	tb.mustProvision(t, other, bookshop("xi-other"))

	t.Run("missing $XSAPPNAME target", func(t *testing.T) {
		in := newInstance(xsuaaServiceID, xsuaaApplicationID, "xi-missing")
		d := bookshop("xi-missing")
		d["authorities"] = []any{"$XSAPPNAME(application,missing).x"}
		status, body := tb.provision(in, d)
		expectError(t, "authorities", status, body, http.StatusBadRequest, "authorities[0]", "missing")

		d = bookshop("xi-missing")
		d["scopes"] = []any{
			map[string]any{"name": "$XSAPPNAME.Display", "granted-apps": []any{"$XSAPPNAME(application,missing)"}},
		}
		status, body = tb.provision(in, d)
		expectError(t, "granted-apps", status, body, http.StatusBadRequest, "scopes[0].granted-apps[0]")

		// The same reference to an existing app works.
		d["scopes"] = []any{
			map[string]any{"name": "$XSAPPNAME.Display", "granted-apps": []any{"$XSAPPNAME(application,xi-other)"}},
		}
		tb.mustProvision(t, in, d)
	})

	t.Run("$XSSERVICENAME", func(t *testing.T) {
		d := bookshop("xi-svc")
		d["foreign-scope-references"] = []any{"$XSSERVICENAME(xi-other).Display"}
		same := newInstance(xsuaaServiceID, xsuaaApplicationID, "xi-svc")
		tb.mustProvision(t, same, d)

		elsewhere := newInstance(xsuaaServiceID, xsuaaApplicationID, "xi-svc2")
		elsewhere.SpaceGUID = "space-guid-2"
		d2 := bookshop("xi-svc2")
		d2["foreign-scope-references"] = []any{"$XSSERVICENAME(xi-other).Display"}
		status, body := tb.provision(elsewhere, d2)
		expectError(t, "other space", status, body, http.StatusBadRequest, "foreign-scope-references[0]", "xi-other")
	})

	t.Run("duplicate xsappname", func(t *testing.T) {
		dup := newInstance(xsuaaServiceID, xsuaaApplicationID, "xi-dup")
		status, body := tb.provision(dup, bookshop("xi-other"))
		expectError(t, "same xsappname and plan", status, body, http.StatusBadRequest, "xsappname")
		// Another plan may use the name: the suffix differs.
		dup.PlanID = xsuaaBrokerPlanID
		tb.mustProvision(t, dup, bookshop("xi-other"))
	})

	t.Run("role collections", func(t *testing.T) {
		withRC := func(xsappname, rc string) map[string]any {
			d := bookshop(xsappname)
			d["role-collections"] = []any{map[string]any{
				"name": rc, "description": "viewers", "role-template-references": []any{"$XSAPPNAME.Viewer"},
			}}
			return d
		}
		a := newInstance(xsuaaServiceID, xsuaaApplicationID, "rc-a")
		pa := withRC("rc-a", "Bookshop Viewer")
		tb.mustProvision(t, a, pa)

		b := newInstance(xsuaaServiceID, xsuaaApplicationID, "rc-b")
		status, body := tb.provision(b, withRC("rc-b", "Bookshop Viewer"))
		expectError(t, "clashing role collection", status, body, http.StatusBadRequest, "role-collections[0].name", "Bookshop Viewer")
		if s, r := tb.getInstance(b); s != http.StatusNotFound {
			t.Fatalf("refused provision created the instance: %d %s", s, r)
		}

		// Nothing changed: a is still there with its collection.
		status, body = tb.provision(a, pa)
		expectStatus(t, "identical provision of a", status, body, http.StatusOK)
		pa2 := withRC("rc-a", "Bookshop Viewer")
		pa2["description"] = "updated"
		status, body = tb.update(a, pa2)
		expectStatus(t, "update of a", status, body, http.StatusOK)

		// b with its own name works; an update of b to a's name does not.
		pb := withRC("rc-b", "Bookshop Viewer B")
		tb.mustProvision(t, b, pb)
		status, body = tb.update(b, withRC("rc-b", "Bookshop Viewer"))
		expectError(t, "update to a clashing name", status, body, http.StatusBadRequest, "role-collections[0].name")
		if got := instanceParams(t, tb, b); !jsonEqual(t, got, pb) {
			t.Errorf("refused update changed b: %v", got)
		}

		// Once a is gone, its collection is released.
		status, body = tb.deprovision(a)
		expectStatus(t, "deprovision a", status, body, http.StatusOK)
		status, body = tb.update(b, withRC("rc-b", "Bookshop Viewer"))
		expectStatus(t, "update after release", status, body, http.StatusOK)
	})
}

func TestOSBDeprovisionAndLastOperation(t *testing.T) {
	tb := startBroker(t, nil)
	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "del-main")
	tb.mustProvision(t, in, bookshop("del-main"))
	bid := newUUID()
	tb.mustBind(t, in, bid, newUUID(), nil)

	t.Run("last_operation", func(t *testing.T) {
		status, body := tb.osb(http.MethodGet, in.path()+"/last_operation?"+in.query(), nil)
		expectStatus(t, "instance last_operation", status, body, http.StatusOK)
		if m := decodeObject(t, body); m["state"] != "succeeded" {
			t.Errorf("instance state %v", m["state"])
		}
		status, body = tb.osb(http.MethodGet, bindingPath(in, bid)+"/last_operation?"+in.query(), nil)
		expectStatus(t, "binding last_operation", status, body, http.StatusOK)
		if m := decodeObject(t, body); m["state"] != "succeeded" {
			t.Errorf("binding state %v", m["state"])
		}
		ghost := newInstance(xsuaaServiceID, xsuaaApplicationID, "ghost")
		status, body = tb.osb(http.MethodGet, ghost.path()+"/last_operation?"+ghost.query(), nil)
		expectStatus(t, "unknown instance last_operation", status, body, http.StatusNotFound)
		status, body = tb.osb(http.MethodGet, bindingPath(in, newUUID())+"/last_operation?"+in.query(), nil)
		expectStatus(t, "unknown binding last_operation", status, body, http.StatusNotFound)
		// A binding asked for under the wrong instance is unknown there.
		status, body = tb.osb(http.MethodGet, bindingPath(ghost, bid)+"/last_operation?"+ghost.query(), nil)
		expectStatus(t, "binding under another instance", status, body, http.StatusNotFound)
	})

	t.Run("unbind of a binding that never existed", func(t *testing.T) {
		status, body := tb.unbind(in, newUUID())
		expectStatus(t, "unbind unknown", status, body, http.StatusGone)
		expectEmptyObject(t, "unbind unknown", body)
	})

	t.Run("orphan mitigation of a never created instance", func(t *testing.T) {
		ghost := newInstance(xsuaaServiceID, xsuaaApplicationID, "ghost")
		status, body := tb.osb(http.MethodDelete, ghost.path()+"?accepts_incomplete=true&"+ghost.query(), nil,
			"X-Broker-API-Originating-Identity", "")
		expectStatus(t, "orphan DELETE", status, body, http.StatusGone)
		expectEmptyObject(t, "orphan DELETE", body)
		status, body = tb.osb(http.MethodDelete, bindingPath(ghost, newUUID())+"?accepts_incomplete=true&"+ghost.query(), nil,
			"X-Broker-API-Originating-Identity", "")
		expectStatus(t, "orphan binding DELETE", status, body, http.StatusGone)
	})

	t.Run("deprovision with bindings", func(t *testing.T) {
		status, body := tb.deprovision(in)
		expectStatus(t, "deprovision", status, body, http.StatusOK)
		expectEmptyObject(t, "deprovision", body)
		status, body = tb.getBinding(in, bid)
		expectStatus(t, "GET binding after deprovision", status, body, http.StatusNotFound)
		status, body = tb.getInstance(in)
		expectStatus(t, "GET instance after deprovision", status, body, http.StatusNotFound)
		status, body = tb.unbind(in, bid)
		expectStatus(t, "unbind after deprovision", status, body, http.StatusGone)
		status, body = tb.deprovision(in)
		expectStatus(t, "deprovision again", status, body, http.StatusGone)
		expectEmptyObject(t, "deprovision again", body)
		// The xsappname is free again.
		again := newInstance(xsuaaServiceID, xsuaaApplicationID, "del-main")
		tb.mustProvision(t, again, bookshop("del-main"))
	})
}

func TestOSBConcurrency(t *testing.T) {
	tb := startBroker(t, nil)
	const n = 10

	in := newInstance(xsuaaServiceID, xsuaaApplicationID, "conc-main")
	params := bookshop("conc-main")
	statuses := parallel(t, n, func() (osbResponse, error) {
		return tb.try(http.MethodPut, in.path(), in.provisionBody(params))
	})
	if count(statuses, http.StatusCreated) != 1 || count(statuses, http.StatusOK) != n-1 {
		t.Fatalf("concurrent identical provisions: %v, want one 201 and %d 200", codes(statuses), n-1)
	}

	bid := newUUID()
	app := newUUID()
	results := parallel(t, n, func() (osbResponse, error) {
		return tb.try(http.MethodPut, bindingPath(in, bid), in.appBindBody(app, nil))
	})
	if count(results, http.StatusCreated) != 1 || count(results, http.StatusOK) != n-1 {
		t.Fatalf("concurrent identical binds: %v, want one 201 and %d 200", codes(results), n-1)
	}
	first := credentialsOf(t, results[0].Body)
	for _, r := range results[1:] {
		if c := credentialsOf(t, r.Body); !reflect.DeepEqual(c, first) {
			t.Fatalf("concurrent binds returned different credentials: %v vs %v", c["clientsecret"], first["clientsecret"])
		}
	}
	status, body := tb.getBinding(in, bid)
	expectStatus(t, "GET binding", status, body, http.StatusOK)
	if c := credentialsOf(t, body); !reflect.DeepEqual(c, first) {
		t.Fatalf("GET binding differs from the bind responses")
	}
}

// parallel runs fn n times at once and returns the responses.
func parallel(t *testing.T, n int, fn func() (osbResponse, error)) []osbResponse {
	t.Helper()
	out := make([]osbResponse, n)
	errs := make([]error, n)
	var start, wg sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start.Wait()
			out[i], errs[i] = fn()
		}()
	}
	start.Done()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func count(rs []osbResponse, status int) int {
	n := 0
	for _, r := range rs {
		if r.Status == status {
			n++
		}
	}
	return n
}

func codes(rs []osbResponse) []int {
	out := make([]int, len(rs))
	for i, r := range rs {
		out[i] = r.Status
	}
	return out
}
