"""How command payloads reach a register: `session` (the blocking loop over a port, one for every
vendor's link), `ports` (opening a port by URL), `tcp` and `usb` (ports of our own), `inprocess`
(an emulated register in this process)."""
