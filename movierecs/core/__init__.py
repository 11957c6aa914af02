"Layer 0: what every layer shares: the errors, the argument checks, atomic file writes. No torch, fastai or pandas."
