"Layer 5: how good a model is: rating accuracy on the canonical splits, top-N ranking metrics, honest blends, peers from other libraries."
