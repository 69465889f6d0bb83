//go:build tools

// The command built from this module; importing it here keeps go.sum complete.
package tools

import (
	_ "knative.dev/serving/cmd/queue"
)
