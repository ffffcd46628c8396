"""One `Device` per vendor: `base` (the contract and what every vendor does alike), `shtrih`,
`atol`."""
