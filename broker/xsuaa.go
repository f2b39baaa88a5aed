package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/grants"
	"github.com/ossbroker/btp-security-broker/store"
)

// planSuffix is the xsappname suffix letter per plan (xsuaa.md §1.4).
var planSuffix = map[string]string{"application": "!t", "broker": "!b", "apiaccess": "!a"}

// configureXsuaa parses and validates params as xs-security.json for in
// (old is the current descriptor on update, nil on create), checks every
// cross-instance reference against the store, and syncs the role collections
// the descriptor declares. On success in carries the new configuration.
func (b *Broker) configureXsuaa(tx store.Tx, in *store.Instance, params []byte, old *descriptor.Descriptor) error {
	suffix := ""
	if old == nil {
		n, err := tx.NextSequence("xsappname")
		if err != nil {
			return err
		}
		suffix = planSuffix[in.Plan] + strconv.FormatUint(n, 10)
	} else {
		suffix = in.XSAppName[len(old.XSAppName):]
	}
	def := in.InstanceName
	if def == "" {
		def = "app-" + in.ID
	}
	if old != nil {
		// A descriptor without xsappname keeps the one the instance has:
		// deriving it from the (possibly renamed) instance name again
		// would be refused as a change of xsappname.
		def = old.XSAppName
	}
	d, err := descriptor.Parse(params, descriptor.Options{DefaultXSAppName: def, AppSuffix: suffix})
	if err != nil {
		return badRequest("%v", err)
	}
	if old != nil {
		if err := descriptor.CheckUpdate(old, d); err != nil {
			return badRequest("%v", err)
		}
	}
	in.XSAppName = d.XSAppName + suffix
	in.ClientID = "sb-" + in.XSAppName
	cfg, err := json.Marshal(d)
	if err != nil {
		return err
	}
	in.Config = cfg

	same, err := tx.ListInstancesByAppName(in.Plan, d.XSAppName)
	if err != nil {
		return err
	}
	for _, other := range same {
		if other.ID != in.ID && other.Service == ServiceXsuaa {
			return badRequest("xsappname: an instance with xsappname %q and plan %q already exists in this zone (instance %q)", d.XSAppName, in.Plan, other.InstanceName)
		}
	}
	dir, self, err := directoryWith(tx, in, d)
	if err != nil {
		return err
	}
	if err := checkRefs(dir, self, d); err != nil {
		return err
	}
	return syncRoleCollections(tx, dir, self, d)
}

func checkRefs(dir *grants.Directory, self *grants.App, d *descriptor.Descriptor) error {
	for _, lr := range d.CrossInstanceRefs() {
		if _, ok := dir.Resolve(self, lr.Ref); !ok {
			switch lr.Ref.Kind {
			case descriptor.Service:
				return badRequest("%s: $XSSERVICENAME(%s) does not name an xsuaa instance in this space", lr.Key, lr.Ref.Service)
			default:
				return badRequest("%s: $XSAPPNAME(%s,%s) does not name an existing xsuaa instance of plan %q with xsappname %q", lr.Key, lr.Ref.Plan, lr.Ref.App, lr.Ref.Plan, lr.Ref.App)
			}
		}
	}
	return nil
}

// directoryWith builds a grants directory of in (carrying descriptor d in
// place of its stored version) and of the xsuaa instances its cross-instance
// references can point at, found through the store's indexes. For every
// question the broker asks about d's references (Resolve, Expand,
// FindTemplate of an expanded reference) it answers as a directory of the
// whole zone would, while a provision reads a handful of instances instead
// of all of them.
func directoryWith(tx store.Tx, in *store.Instance, d *descriptor.Descriptor) (*grants.Directory, *grants.App, error) {
	seen := map[string]bool{in.ID: true}
	apps := []grants.App{AppFor(in, d)}
	for _, lr := range d.CrossInstanceRefs() {
		var found []*store.Instance
		var err error
		switch lr.Ref.Kind {
		case descriptor.App:
			found, err = tx.ListInstancesByAppName(lr.Ref.Plan, lr.Ref.App)
		case descriptor.Service:
			found, err = tx.ListInstancesByServiceName(in.SpaceGUID, lr.Ref.Service)
		}
		if err != nil {
			return nil, nil, err
		}
		for _, other := range found {
			if other.Service != ServiceXsuaa || seen[other.ID] {
				continue
			}
			seen[other.ID] = true
			app, err := AppOf(other)
			if err != nil {
				return nil, nil, err
			}
			apps = append(apps, app)
		}
	}
	dir := grants.NewDirectory(apps)
	self, _ := dir.Lookup(in.ID)
	return dir, self, nil
}

// AppOf converts a stored xsuaa instance to its grants view.
func AppOf(in *store.Instance) (grants.App, error) {
	var d descriptor.Descriptor
	if err := json.Unmarshal(in.Config, &d); err != nil {
		return grants.App{}, fmt.Errorf("instance %s: stored descriptor: %w", in.ID, err)
	}
	return AppFor(in, &d), nil
}

// AppFor is the grants view of an xsuaa instance whose descriptor is d.
func AppFor(in *store.Instance, d *descriptor.Descriptor) grants.App {
	return grants.App{
		InstanceID: in.ID, Plan: in.Plan, BaseName: d.XSAppName, FullName: in.XSAppName, ClientID: in.ClientID,
		OrgGUID: in.OrganizationGUID, SpaceGUID: in.SpaceGUID, InstanceName: in.InstanceName, Descriptor: d,
	}
}

// syncRoleCollections makes the zone's role collections owned by self equal
// to those d declares. Names are zone-wide: a name held by another instance
// or by the admin API is refused rather than taken over.
func syncRoleCollections(tx store.Tx, dir *grants.Directory, self *grants.App, d *descriptor.Descriptor) error {
	declared := map[string]bool{}
	for i, rc := range d.RoleCollections {
		key := fmt.Sprintf("role-collections[%d]", i)
		existing, err := tx.GetRoleCollection(rc.Name)
		switch {
		case err == nil && existing.Owner != self.InstanceID:
			owner := "the role-collection API"
			if existing.Owner != "" {
				owner = "another instance"
				if o, err := tx.GetInstance(existing.Owner); err == nil {
					owner = fmt.Sprintf("instance %q", o.InstanceName)
				}
			}
			return badRequest("%s.name: role collection %q already exists in this zone (declared by %s); role-collection names are zone-wide", key, rc.Name, owner)
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return err
		}
		refs := make([]string, 0, len(rc.RoleTemplateReferences))
		for j, ref := range rc.RoleTemplateReferences {
			full, ok := dir.Expand(self, ref)
			if !ok {
				return badRequest("%s.role-template-references[%d]: %q does not resolve to a role template", key, j, ref)
			}
			owner, _, ok := dir.FindTemplate(full)
			if !ok {
				return badRequest("%s.role-template-references[%d]: role template %q does not exist", key, j, full)
			}
			if owner.OrgGUID != self.OrgGUID {
				// The org is the subaccount boundary: a collection must not
				// hand out another org's roles to whoever holds its name.
				return badRequest("%s.role-template-references[%d]: role template %q belongs to an instance of another org", key, j, full)
			}
			refs = append(refs, full)
		}
		declared[rc.Name] = true
		if err := tx.PutRoleCollection(&store.RoleCollection{Name: rc.Name, Description: rc.Description, RoleTemplates: refs, Owner: self.InstanceID}); err != nil {
			return err
		}
	}
	owned, err := tx.ListRoleCollectionsByOwner(self.InstanceID)
	if err != nil {
		return err
	}
	for _, rc := range owned {
		if !declared[rc.Name] {
			if err := tx.DeleteRoleCollection(rc.Name); err != nil {
				return err
			}
		}
	}
	return nil
}
