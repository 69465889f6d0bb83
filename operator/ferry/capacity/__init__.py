"""The capacity loop's pure core: pending pods, nodes and Auto Scaling groups in; which group to
grow and which idle node to remove out. No I/O.

Modules: `quantity` (Kubernetes quantities), `resources` (what a pod asks for and a node
offers), `cluster` (what the loop reads from Pods and Nodes), `asg` (an Auto Scaling group and
its bounds), `binpack` (how many new nodes a set of pods needs), `plan` (the decision).
Nothing is re-exported here: the operator's settings import `resources`, and `plan` imports
the settings.
"""
