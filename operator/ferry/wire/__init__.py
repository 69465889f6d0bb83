"""What Ferry's processes say to each other on the wire, owned once for both ends.

`ferry.wire.stats`: the proxy's /stats document (its version, its fields, how it is encoded and
decoded) and the HTTP framing of the scraper's exchange with the proxy's admin port. The proxy
(the data plane) writes it and the operator's scraper (the control plane) reads it; neither
imports the other, and this package imports nothing else of Ferry's.
"""
