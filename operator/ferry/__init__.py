"""Ferry: machine-learning models served as autoscaling realtime HTTP APIs on Kubernetes.

This package is the product, all that the operator's image carries:

- the operator (`app`, `settings`, `metrics`): `handlers` (kopf decorators, a few lines each) call
  `services` (reconcile, status, rollouts, autoscaling ticks, the capacity loop), which hold the
  logic over the pure core (`spec`, `render`, `status`, `autoscaling`, `capacity`, `artifacts`)
  and the `adapters` (the Kubernetes client, AWS, the `/stats` scraper);
- the data plane in every API's pod: `proxy` (ferry-proxy), `runtime` (ferry-runtime) and `model`
  (`ferry fetch-model`);
- `cli`, the `ferry` command.

The local environment (a real control plane on one machine, its node agent, moto) is another
distribution, ferry-local (package `ferry_local`, under local/); nothing here imports it, and
`ferry local` reaches it through the `ferry.commands` entry points.
"""

__version__ = "0.1.0"
