"""clusterip: Kubernetes ClusterIP Services in Python.

A stable virtual IP and DNS name for a set of pods, and layer-4 load balancing to the ones that are
ready now. See the README for the layers; `clusterip.core` is the pure heart of it.
"""

__version__ = "0.1.0"
