"""``kkt.cloud``: a cloud register service (ATOL Online compatible) over a pool of registers."""
