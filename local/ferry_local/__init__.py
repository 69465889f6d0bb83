"""The local environment: a real Kubernetes control plane and its helpers on one machine.

Ferry's development and test wing, a distribution of its own (ferry-local, local/pyproject.toml)
that the operator's image does not carry: it imports the product (`ferry`), never the reverse.
It holds the control plane's build from Go (`toolchain`), its certificates (`pki`) and
kubeconfigs, the supervisor that starts and restarts every component (`supervisor`,
`components`, `processes`, `cluster`), moto's server for AWS (`aws`), the node agent that runs
pods as local processes (`agent`), a client that reaches a Service as kube-proxy would (`client`),
the waits tests use (`wait`), the demo, and `ferry local` (`cli`, contributed to the `ferry`
command through the entry-point group `ferry.commands`).
"""
