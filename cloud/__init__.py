"""`kkt cloud`: an ATOL Online compatible cloud register service over the driver (issue 18)."""
