// Package btpsecuritybroker holds files that live at the top of the
// repository and are compiled into the broker binary.
package btpsecuritybroker

import _ "embed"

// CatalogYAML is catalog.yml, the OSB catalog.
//
//go:embed catalog.yml
var CatalogYAML []byte
