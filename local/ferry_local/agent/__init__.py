"""A node agent for the local environment: a Node whose pods run as processes on this machine.

It registers a Node (tainted so only pods that ask for it land there), keeps its Lease, and runs
each pod bound to it: init containers in order, then the containers, each a process group with
the pod's environment, on a loopback address of the pod's own, with real probes, restarts with
the kubelet's back-off, and SIGTERM plus grace period at deletion. Modules, in the order data
flows: settings, images, network, env, volumes, probes, backoff, runner, status, pods, node,
watch, agent, main.
"""
