"Layer 6: what a trained model tells people: biases, similar movies and users, recommendations, fold-in for someone new."
