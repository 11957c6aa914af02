"Layer 1: MovieLens as pandas frames: ML-100k and every release, found, verified and read; random and temporal splits; synthetic ratings."
