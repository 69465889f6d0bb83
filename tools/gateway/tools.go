//go:build tools

// Envoy Gateway, the local environment's Gateway API implementation, built from its own module
// (its dependency graph is apart from the control plane's). The Gateway API module is required
// here too: the standard channel's CRDs the local environment installs come from its source.
package tools

import (
	_ "github.com/envoyproxy/gateway/cmd/envoy-gateway"
	_ "sigs.k8s.io/gateway-api/apis/v1"
)
