package broker

import (
	"encoding/json"
	"fmt"

	"github.com/pivotal-cf/brokerapi/v10/domain"
	"gopkg.in/yaml.v3"
)

// Offering names as Cloud Foundry shows them in VCAP_SERVICES labels. SAP's
// libraries look bindings up by these labels, so they are fixed.
const (
	ServiceXsuaa    = "xsuaa"
	ServiceIdentity = "identity"
)

// Catalog is the parsed catalog.yml with lookups by id.
type Catalog struct {
	Services []domain.Service
}

// ParseCatalog reads catalog.yml. YAML is converted to JSON first so that the
// brokerapi types (which carry JSON tags) decode it exactly as they encode it.
func ParseCatalog(data []byte) (*Catalog, error) {
	var doc struct {
		Services []any `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("catalog.yml: %w", err)
	}
	raw, err := json.Marshal(jsonable(doc.Services))
	if err != nil {
		return nil, fmt.Errorf("catalog.yml: %w", err)
	}
	c := &Catalog{}
	if err := json.Unmarshal(raw, &c.Services); err != nil {
		return nil, fmt.Errorf("catalog.yml: %w", err)
	}
	seen := map[string]bool{}
	for _, s := range c.Services {
		if s.ID == "" || s.Name == "" || len(s.Plans) == 0 {
			return nil, fmt.Errorf("catalog.yml: service %q needs id, name and plans", s.Name)
		}
		for _, p := range s.Plans {
			if p.ID == "" || seen[p.ID] {
				return nil, fmt.Errorf("catalog.yml: plan %q of %q needs a unique id", p.Name, s.Name)
			}
			seen[p.ID] = true
		}
	}
	return c, nil
}

// jsonable turns the map[string]any trees of yaml.v3 into values
// encoding/json accepts (it already uses string keys; this keeps it explicit).
func jsonable(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			t[k] = jsonable(e)
		}
		return t
	case []any:
		for i, e := range t {
			t[i] = jsonable(e)
		}
		return t
	default:
		return v
	}
}

// Plan returns the offering and plan for the given ids, and false if the plan
// does not exist or does not belong to that offering.
func (c *Catalog) Plan(serviceID, planID string) (domain.Service, domain.ServicePlan, bool) {
	for _, s := range c.Services {
		if s.ID != serviceID {
			continue
		}
		for _, p := range s.Plans {
			if p.ID == planID {
				return s, p, true
			}
		}
	}
	return domain.Service{}, domain.ServicePlan{}, false
}

// HasService reports whether serviceID names an offering.
func (c *Catalog) HasService(serviceID string) bool {
	for _, s := range c.Services {
		if s.ID == serviceID {
			return true
		}
	}
	return false
}
