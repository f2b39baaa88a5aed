package broker

import (
	"encoding/json"
	"fmt"

	"github.com/ossbroker/btp-security-broker/credentials"
	"github.com/ossbroker/btp-security-broker/descriptor"
	"github.com/ossbroker/btp-security-broker/store"
)

// configureIdentity validates identity instance parameters and resolves
// consumed-services against the identity instances of the same space.
func (b *Broker) configureIdentity(tx store.Tx, in *store.Instance, params []byte) error {
	name := in.InstanceName
	if name == "" {
		name = in.ID
	}
	cfg, err := descriptor.ParseIdentity(params, name)
	if err != nil {
		return badRequest("%v", err)
	}
	if len(cfg.ConsumedServices) > 0 {
		for i, cs := range cfg.ConsumedServices {
			same, err := tx.ListInstancesByServiceName(in.SpaceGUID, cs.ServiceInstanceName)
			if err != nil {
				return err
			}
			found := false
			for _, other := range same {
				if other.Service == ServiceIdentity && other.SpaceGUID == in.SpaceGUID && other.InstanceName == cs.ServiceInstanceName && other.ID != in.ID {
					found = true
					break
				}
			}
			if !found {
				return badRequest("consumed-services[%d].service-instance-name: no identity instance named %q in this space", i, cs.ServiceInstanceName)
			}
		}
	}
	if in.ClientID == "" {
		in.ClientID = credentials.NewID()
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return fmt.Errorf("identity config: %w", err)
	}
	in.Config = raw
	return nil
}
