//go:build tools

// CoreDNS, the cluster's DNS server, built from its own module with its default plugins (the
// kubernetes plugin among them); a module of its own keeps its dependency graph apart from the
// control plane's.
package tools

import (
	_ "github.com/coredns/coredns"
)
