"""The capacity loop's pure core: pending pods, nodes and Auto Scaling groups in; which group to
grow and which idle node to remove out. No I/O.

Modules: `quantity` (Kubernetes quantities), `resources` (what a pod asks for and a node
offers), `node_group` (a pool of nodes and its bounds, as the operator is configured with it),
`cluster` (what the loop reads from Pods and Nodes), `asg` (an Auto Scaling group and its
bounds), `binpack` (how many new nodes a set of pods needs), `plan` (the decision).
Nothing is re-exported here. The operator's settings import `node_group` and `resources`;
nothing here imports the settings.
"""
