("Layer 2: the training engine: `dls` that are true permutations, fastai's `Learner` on the fast and sparse paths, the optimizers, "
 "and the one module that touches fastai's internals (`fastai_glue`).")
